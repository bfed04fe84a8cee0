// Command benchchild is the child of prism-run's benchmarks (make bench):
// it measures from inside the run what only the child can see (how soon
// a signal answers a marker, its parent's CPU time and peak memory), and
// writes the outputs the throughput figures are timed on.
//
//	benchchild gen marker|plain|mixed100 MB FILE   write a log of MB MiB
//	benchchild react N OUT                         N marker -> SIGUSR1 trials
//	benchchild cpu WARMUP SECONDS OUT              the parent's CPU time over SECONDS
//	benchchild flood OUT                           a 64 MiB line, 1 M distinct marker names, then the parent's peak RSS
//	benchchild hwm OUT                             the parent's peak RSS after a short run
//	benchchild hog                                 one busy CPU, until killed
//	benchchild count REPORT NAME                   a marker's count in a run report
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fail(fmt.Errorf("usage: benchchild gen|react|cpu|flood|hwm|hog|count [ARGS]"))
	}
	var err error
	args := os.Args[2:]
	switch os.Args[1] {
	case "gen":
		err = gen(args)
	case "react":
		err = react(args)
	case "cpu":
		err = cpu(args)
	case "flood":
		err = flood(args)
	case "hwm":
		time.Sleep(time.Second)
		err = writeJSON(args, parentMem())
	case "hog":
		for i := 0; ; i++ {
			_ = i * i
		}
	case "count":
		err = count(args)
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "benchchild:", err)
	os.Exit(2)
}

// gen writes mb MiB of lines: every line a marker, none, or one in 100.
func gen(args []string) error {
	if len(args) != 3 {
		return fmt.Errorf("gen MODE MB FILE")
	}
	mb, err := strconv.Atoi(args[1])
	if err != nil {
		return err
	}
	f, err := os.Create(args[2])
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var size, lines int
	for i := 0; size < mb<<20; i++ {
		var n int
		switch {
		case args[0] == "marker" || (args[0] == "mixed100" && i%100 == 0):
			n, _ = fmt.Fprintf(w, "PRISM bench_i=%d loss=%.4f\n", i, 1/float64(i%997+1))
		default:
			n, _ = fmt.Fprintf(w, "step %d: batch 32 done, lr 0.0003, tokens/s %d\n", i, 81234+i%977)
		}
		size += n
		lines++
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Println(lines)
	return f.Close()
}

// react runs n trials: print a marker that trips the bench policy's
// checkpoint rule, wait for SIGUSR1, acknowledge, and record the time
// from the write to the signal's arrival.
func react(args []string) error {
	if len(args) != 2 {
		return fmt.Errorf("react N OUT")
	}
	n, err := strconv.Atoi(args[0])
	if err != nil {
		return err
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1)
	dir, err := os.MkdirTemp("", "benchchild-ck-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var lat []float64
	missed := 0
	for i := range n {
		t0 := time.Now()
		_, _ = os.Stdout.WriteString("PRISM bench_trigger=1\n")
		select {
		case <-sig:
			lat = append(lat, float64(time.Since(t0).Microseconds())/1000)
		case <-time.After(2 * time.Second):
			missed++
		}
		ck := filepath.Join(dir, fmt.Sprintf("ck-%d", i))
		if err := os.WriteFile(ck, []byte("x"), 0o600); err != nil {
			return err
		}
		_, _ = fmt.Fprintf(os.Stdout, "PRISM checkpoint=%q bench_trigger=0\n", ck)
		time.Sleep(15 * time.Millisecond)
	}
	slices.Sort(lat)
	return writeJSON(args[1:], map[string]any{"trials": n, "missed": missed,
		"p50_ms": pct(lat, 0.50), "p99_ms": pct(lat, 0.99), "max_ms": pct(lat, 1)})
}

func pct(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return -1
	}
	i := int(p*float64(len(sorted))+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// cpu measures the parent's CPU time (every thread's, schedstat's
// nanoseconds on a CPU) over seconds, after warmup (the start's cost
// left out).
func cpu(args []string) error {
	if len(args) != 3 {
		return fmt.Errorf("cpu WARMUP SECONDS OUT")
	}
	warm, err1 := time.ParseDuration(args[0] + "s")
	span, err2 := time.ParseDuration(args[1] + "s")
	if err1 != nil || err2 != nil {
		return fmt.Errorf("cpu: bad seconds")
	}
	time.Sleep(warm)
	parent := parentComm()
	a, t0 := parentCPU(), time.Now()
	time.Sleep(span)
	b, wall := parentCPU(), time.Since(t0)
	return writeJSON(args[2:], map[string]any{"cpu_ns": b - a, "wall_ns": wall.Nanoseconds(),
		"percent": 100 * float64(b-a) / float64(wall.Nanoseconds()), "parent": parent})
}

func parentCPU() int64 {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", os.Getppid()))
	if len(tasks) == 0 {
		fail(fmt.Errorf("cannot read the parent's (%d) schedstat", os.Getppid()))
	}
	var sum int64
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		if f := strings.Fields(string(b)); len(f) > 0 {
			ns, _ := strconv.ParseInt(f[0], 10, 64)
			sum += ns
		}
	}
	return sum
}

// parentMem is the parent's peak resident set (VmHWM), and what its
// resident set is made of now (RssAnon: its own memory; RssFile: pages
// of its executable and libraries, shared and clean), KiB.
func parentMem() map[string]any {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", os.Getppid()))
	if err != nil {
		fail(err)
	}
	out := map[string]any{"parent": parentComm()}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmHWM" && k != "RssAnon" && k != "RssFile") {
			continue
		}
		kib, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		out[map[string]string{"VmHWM": "hwm_kib", "RssAnon": "anon_kib", "RssFile": "file_kib"}[k]] = kib
	}
	return out
}

// flood prints what a hostile child might: a 64 MiB line, then a million
// markers each with a name of its own; then the parent's peak RSS.
func flood(args []string) error {
	w := bufio.NewWriterSize(os.Stdout, 1<<20)
	line := make([]byte, 64<<20)
	for i := range line {
		line[i] = 'a' + byte(i%26)
	}
	_, _ = w.Write(line)
	_ = w.WriteByte('\n')
	for i := range 1_000_000 {
		fmt.Fprintf(w, "PRISM name_%d=%d\n", i, i)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	time.Sleep(300 * time.Millisecond) // let the parent read the last of it
	return writeJSON(args, parentMem())
}

// count prints a marker's count in a run report (its "markers" object).
func count(args []string) error {
	if len(args) != 2 {
		return fmt.Errorf("count REPORT NAME")
	}
	b, err := os.ReadFile(args[0])
	if err != nil {
		return err
	}
	var rep struct {
		Markers map[string]struct {
			Count int64 `json:"count"`
		} `json:"markers"`
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		return err
	}
	fmt.Println(rep.Markers[args[1]].Count)
	return nil
}

func writeJSON(args []string, v any) error {
	if len(args) != 1 {
		return fmt.Errorf("missing OUT")
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(args[0], append(b, '\n'), 0o644)
}

// parentComm is the parent's name: the driver checks it measured prism-run
// (or the baseline), not a shell in between.
func parentComm() string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", os.Getppid()))
	if err != nil {
		fail(err)
	}
	return strings.TrimSpace(string(b))
}
