package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
	"github.com/rogpeppe/go-internal/testscript"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/prism-run/prism-run/internal/procfs"
	"github.com/prism-run/prism-run/internal/testchild"
	"github.com/prism-run/prism-run/limits"
	"github.com/prism-run/prism-run/probes/gpu/gputest"
)

// The fault suite (issue 13, `make chaos`): testdata/chaos/*.txtar, each
// a fault a long job meets (a child that ignores SIGTERM, a fork bomb, a
// SIGKILLed prism-run, 200 runs at once, ...), run by TestChaos only with
// PRISM_CHAOS=1. Each case holds every run to the same invariants: no
// process of its tree is left (every process a script starts carries
// CHAOS_TAG=$WORK in its environment, which prism-run passes on to the
// child and all below it: once the script's runs have ended, no process
// may carry it), the child's output arrived byte for byte (chaosout),
// every violation line is whole JSON and none is lost (chaosviolations),
// the report is valid (chaosreport), and no cgroup and no run folder is
// left (chaosclean). The figures each case comes to are printed at the
// end, and written to $CHAOS_SUMMARY when set.

// chaosFigures are what one case came to.
type chaosFigures struct {
	mu             sync.Mutex
	runs           int   // prism-run invocations (CHAOS_RUNLOG)
	leftovers      int   // processes, cgroups and run folders left behind
	bytesChecked   int64 // child output compared byte for byte
	bytesLost      int64 // of it, what did not arrive intact
	records        int64 // violation lines the reports say were decided
	recordsLost    int64 // decided, neither written whole nor counted as dropped
	recordsDropped int64 // counted as dropped by the run itself (violations_dropped)
	what           []string
}

func (f *chaosFigures) add(fn func(f *chaosFigures)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

var chaosCases = struct {
	sync.Mutex
	m map[string]*chaosFigures
}{m: map[string]*chaosFigures{}}

func chaosCase(name string) *chaosFigures {
	chaosCases.Lock()
	defer chaosCases.Unlock()
	if chaosCases.m[name] == nil {
		chaosCases.m[name] = &chaosFigures{}
	}
	return chaosCases.m[name]
}

// countChaosRun appends this process's pid to $CHAOS_RUNLOG when it is a
// prism-run invocation of a chaos script (not its shim or watchdog).
func countChaosRun() {
	path := os.Getenv("CHAOS_RUNLOG")
	if path == "" || len(os.Args) > 1 && (os.Args[1] == limits.ShimArg || os.Args[1] == limits.WatchArg) {
		return
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err == nil {
		_, _ = fmt.Fprintf(f, "%d\n", os.Getpid())
		_ = f.Close()
	}
}

func TestChaos(t *testing.T) {
	if os.Getenv("PRISM_CHAOS") != "1" {
		t.Skip("the fault suite runs with PRISM_CHAOS=1 (make chaos)")
	}
	// After every script (they run in parallel, after this function).
	start := time.Now()
	t.Cleanup(func() { chaosSummary(t, time.Since(start)) })
	cmds := scriptCmds()
	for name, c := range map[string]func(*testscript.TestScript, bool, []string){
		"chaosout":        cmdChaosOut,
		"chaosrc":         cmdChaosRC,
		"chaosgrep":       cmdChaosGrep,
		"chaosmax":        cmdChaosMax,
		"chaosreport":     cmdChaosReport,
		"chaosviolations": cmdChaosViolations,
		"chaosclean":      cmdChaosClean,
		"waitsize":        cmdWaitSize,
		"waitlines":       cmdWaitLines,
		"slowsink":        cmdSlowSink,
		"cpuwatch":        cmdCPUWatch,
	} {
		cmds[name] = c
	}
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/chaos",
		RequireExplicitExec: true,
		Condition:           scriptCondition,
		Setup:               chaosSetup,
		Cmds:                cmds,
	})
}

func chaosSetup(env *testscript.Env) error {
	if err := scriptSetup(env); err != nil {
		return err
	}
	env.Setenv("CHAOS_RUNS", chaosRuns())
	env.Setenv("CHAOS_TAG", env.WorkDir)
	runlog := filepath.Join(env.WorkDir, ".chaos-runs")
	env.Setenv("CHAOS_RUNLOG", runlog)
	fig := chaosCase(strings.TrimPrefix(filepath.Base(env.WorkDir), "script-"))
	tmp := env.Getenv("TMPDIR")
	env.Defer(func() {
		// Whatever the script checked, nothing of its may outlive it.
		left := chaosLeftovers(env.WorkDir, tmp, 10*time.Second)
		b, _ := os.ReadFile(runlog)
		fig.add(func(f *chaosFigures) {
			f.runs = bytes.Count(b, []byte("\n"))
			f.leftovers += len(left)
			f.what = append(f.what, left...)
		})
	})
	return nil
}

// chaosSummary prints every case's figures (to $CHAOS_SUMMARY when set,
// else to stdout), and fails the test for any leftover the scripts did not
// already fail on.
func chaosSummary(t *testing.T, took time.Duration) {
	chaosCases.Lock()
	defer chaosCases.Unlock()
	var names []string
	for n := range chaosCases.m {
		names = append(names, n)
	}
	sort.Strings(names)
	var out strings.Builder
	line := func(name string, f *chaosFigures) {
		fmt.Fprintf(&out, "%-14s %6d %10d %14d %10d %8d %8d %8d\n", name, f.runs, f.leftovers,
			f.bytesChecked, f.bytesLost, f.records, f.recordsLost, f.recordsDropped)
	}
	fmt.Fprintf(&out, "%-14s %6s %10s %14s %10s %8s %8s %8s\n", "chaos case", "runs", "leftovers",
		"bytes checked", "bytes lost", "records", "lost", "dropped")
	var total chaosFigures
	for _, n := range names {
		f := chaosCases.m[n]
		line(n, f)
		total.runs, total.leftovers = total.runs+f.runs, total.leftovers+f.leftovers
		total.bytesChecked, total.bytesLost = total.bytesChecked+f.bytesChecked, total.bytesLost+f.bytesLost
		total.records, total.recordsLost = total.records+f.records, total.recordsLost+f.recordsLost
		total.recordsDropped += f.recordsDropped
		for _, w := range f.what {
			t.Errorf("chaos case %s left behind: %s", n, w)
		}
	}
	line("total", &total)
	fmt.Fprintf(&out, "chaos: %d cases in %s (CHAOS_RUNS=%s); leftovers %d, bytes lost %d, violation records lost %d\n",
		len(names), took.Round(time.Second), chaosRuns(), total.leftovers, total.bytesLost, total.recordsLost)
	if p := os.Getenv("CHAOS_SUMMARY"); p != "" {
		if err := os.WriteFile(p, []byte(out.String()), 0o644); err != nil {
			t.Error(err)
		}
		return
	}
	fmt.Print(out.String())
}

// chaosRuns is the size of the concurrent case: $CHAOS_RUNS, else 200.
func chaosRuns() string {
	if n, err := strconv.Atoi(os.Getenv("CHAOS_RUNS")); err == nil && n >= 1 {
		return strconv.Itoa(n)
	}
	return "200"
}

// expand replaces %d in s by i (the -n form of the commands).
func expand(s string, i int) string { return strings.ReplaceAll(s, "%d", strconv.Itoa(i)) }

// repeated parses "[-n N] ARGS...": the commands run once per i in 1..N
// (1 without -n), %d in their arguments standing for i.
func repeated(ts *testscript.TestScript, args []string) (int, []string) {
	if len(args) >= 2 && args[0] == "-n" {
		n, err := strconv.Atoi(args[1])
		ts.Check(err)
		return n, args[2:]
	}
	return 1, args
}

// chaosout [-n N] FILE PIECE...: FILE holds exactly the bytes the pieces
// describe, in order: rand:SIZE:SEED (testchild's randbytes), x:SIZE
// (SIZE bytes 'x'), file:NAME (a file's contents), str:TEXT (TEXT),
// line:TEXT (TEXT and a newline). The bytes compared and those lost (the
// expected bytes from the first difference on) go into the case's figures.
func cmdChaosOut(ts *testscript.TestScript, neg bool, args []string) {
	n, args := repeated(ts, args)
	if neg || len(args) < 1 {
		ts.Fatalf("usage: chaosout [-n N] FILE PIECE...")
	}
	fig := chaosCase(ts.Name())
	var bad []string
	for i := 1; i <= n; i++ {
		var want []byte
		for _, p := range args[1:] {
			want = append(want, chaosPiece(ts, expand(p, i))...)
		}
		name := expand(args[0], i)
		got := []byte(ts.ReadFile(name))
		same := 0
		for same < len(got) && same < len(want) && got[same] == want[same] {
			same++
		}
		fig.add(func(f *chaosFigures) {
			f.bytesChecked += int64(len(want))
			f.bytesLost += int64(len(want) - same)
		})
		if !bytes.Equal(got, want) {
			bad = append(bad, fmt.Sprintf("%s: %d bytes, want %d; they differ from byte %d on", name, len(got), len(want), same))
		}
	}
	if len(bad) > 0 {
		ts.Fatalf("output not byte-exact:\n%s", strings.Join(bad, "\n"))
	}
}

// chaosrc [-n N] FILE CODE: FILE holds the exit code CODE and a newline
// (what `echo $? >FILE` writes after a run in the background).
func cmdChaosRC(ts *testscript.TestScript, neg bool, args []string) {
	n, args := repeated(ts, args)
	if neg || len(args) != 2 {
		ts.Fatalf("usage: chaosrc [-n N] FILE CODE")
	}
	var bad []string
	for i := 1; i <= n; i++ {
		if got := ts.ReadFile(expand(args[0], i)); got != args[1]+"\n" {
			bad = append(bad, fmt.Sprintf("%s: exit code %q, want %s", expand(args[0], i), strings.TrimSpace(got), args[1]))
		}
	}
	if len(bad) > 0 {
		ts.Fatalf("%s", strings.Join(bad, "\n"))
	}
}

// chaosgrep [-n N] PATTERN FILE: each FILE (%d standing for 1..N)
// matches the regular expression PATTERN.
func cmdChaosGrep(ts *testscript.TestScript, neg bool, args []string) {
	n, args := repeated(ts, args)
	if neg || len(args) != 2 {
		ts.Fatalf("usage: chaosgrep [-n N] PATTERN FILE")
	}
	re, err := regexp.Compile("(?m)" + args[0])
	ts.Check(err)
	for i := 1; i <= n; i++ {
		if name := expand(args[1], i); !re.MatchString(ts.ReadFile(name)) {
			ts.Fatalf("%s does not match %q", name, args[0])
		}
	}
}

// chaosmax [-n N] FILE MAX: FILE holds one integer, at most MAX.
func cmdChaosMax(ts *testscript.TestScript, neg bool, args []string) {
	n, args := repeated(ts, args)
	if neg || len(args) != 2 {
		ts.Fatalf("usage: chaosmax [-n N] FILE MAX")
	}
	most, err := strconv.ParseInt(args[1], 10, 64)
	ts.Check(err)
	for i := 1; i <= n; i++ {
		name := expand(args[0], i)
		v, err := strconv.ParseInt(strings.TrimSpace(ts.ReadFile(name)), 10, 64)
		ts.Check(err)
		if v > most {
			ts.Fatalf("%s: %d, more than %d", name, v, most)
		}
	}
}

func chaosPiece(ts *testscript.TestScript, p string) []byte {
	f := strings.Split(p, ":")
	num := func(s string) int {
		v, err := strconv.Atoi(s)
		ts.Check(err)
		return v
	}
	switch {
	case f[0] == "rand" && len(f) == 3:
		seed, err := strconv.ParseUint(f[2], 10, 64)
		ts.Check(err)
		return testchild.RandomBytes(num(f[1]), seed)
	case f[0] == "x" && len(f) == 2:
		return bytes.Repeat([]byte("x"), num(f[1]))
	case f[0] == "file" && len(f) == 2:
		return []byte(ts.ReadFile(f[1]))
	case f[0] == "line":
		return []byte(strings.TrimPrefix(p, "line:") + "\n")
	case f[0] == "str":
		return []byte(strings.TrimPrefix(p, "str:"))
	}
	ts.Fatalf("chaosout: unknown piece %q", p)
	return nil
}

// chaosreport [-n N] FILE [PATH=VALUE...]: FILE is a run report valid
// under docs/report.schema.json, and each dotted PATH (exit_code,
// alerts.sent) has VALUE (as fmt prints it; "absent" for none); PATH may
// be a sum of paths (alerts.sent+alerts.failed).
func cmdChaosReport(ts *testscript.TestScript, neg bool, args []string) {
	n, args := repeated(ts, args)
	if neg || len(args) < 1 {
		ts.Fatalf("usage: chaosreport [-n N] FILE [PATH=VALUE...]")
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	s, err := c.Compile(reportSchema)
	ts.Check(err)
	for i := 1; i <= n; i++ {
		name := expand(args[0], i)
		var v any
		if err := json.Unmarshal([]byte(ts.ReadFile(name)), &v); err != nil {
			ts.Fatalf("%s is not JSON: %v", name, err)
		}
		if err := s.Validate(v); err != nil {
			ts.Fatalf("%s does not follow docs/report.schema.json: %v", name, err)
		}
		d := json.NewDecoder(strings.NewReader(ts.ReadFile(name)))
		d.UseNumber() // numbers as written: 67108864, not 6.7108864e+07
		ts.Check(d.Decode(&v))
		for _, kv := range args[1:] {
			path, want, _ := strings.Cut(expand(kv, i), "=")
			if got := jsonSum(v, path); got != want {
				ts.Fatalf("%s: %s = %s, want %s", name, path, got, want)
			}
		}
	}
}

// jsonSum is the value at a dotted path of v, as fmt prints it ("absent"
// when there is none), or the sum of the numbers at paths joined by "+".
func jsonSum(v any, path string) string {
	if !strings.Contains(path, "+") {
		return jsonAt(v, path)
	}
	sum := int64(0)
	for _, p := range strings.Split(path, "+") {
		n, err := strconv.ParseInt(jsonAt(v, p), 10, 64)
		if err != nil {
			return "not a sum of integers: " + p + " = " + jsonAt(v, p)
		}
		sum += n
	}
	return strconv.FormatInt(sum, 10)
}

func jsonAt(v any, path string) string {
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return "absent"
		}
		if v, ok = m[k]; !ok {
			return "absent"
		}
	}
	return fmt.Sprint(v)
}

// chaosviolations [-n N] FILE REPORT|- [MIN]: FILE (--violations) is whole
// JSON objects, one per line, at least MIN; with a REPORT, every decision
// it counts is a line of FILE or counted in its violations_dropped. The
// lines, those lost (neither written whole nor counted) and those dropped
// go into the case's figures.
func cmdChaosViolations(ts *testscript.TestScript, neg bool, args []string) {
	n, args := repeated(ts, args)
	if neg || len(args) < 2 || len(args) > 3 {
		ts.Fatalf("usage: chaosviolations [-n N] FILE REPORT|- [MIN]")
	}
	min := 0
	if len(args) == 3 {
		var err error
		min, err = strconv.Atoi(args[2])
		ts.Check(err)
	}
	fig := chaosCase(ts.Name())
	var bad []string
	for i := 1; i <= n; i++ {
		name := expand(args[0], i)
		whole, broken := violationLines(ts, name)
		decided, dropped := int64(whole+broken), int64(0)
		if args[1] != "-" {
			var rep struct {
				Decisions         []json.RawMessage `json:"decisions"`
				DecisionsDropped  int64             `json:"decisions_dropped"`
				ViolationsDropped int64             `json:"violations_dropped"`
			}
			ts.Check(json.Unmarshal([]byte(ts.ReadFile(expand(args[1], i))), &rep))
			decided, dropped = int64(len(rep.Decisions))+rep.DecisionsDropped, rep.ViolationsDropped
		}
		lost := max(0, decided-int64(whole)-dropped)
		fig.add(func(f *chaosFigures) {
			f.records += decided
			f.recordsLost += lost
			f.recordsDropped += dropped
		})
		switch {
		case broken > 0:
			bad = append(bad, fmt.Sprintf("%s: %d lines are not whole JSON objects", name, broken))
		case lost > 0:
			bad = append(bad, fmt.Sprintf("%s: %d lines for %d decisions (%d counted as dropped)", name, whole, decided, dropped))
		case args[1] != "-" && int64(whole) > decided-dropped:
			// A line no decision accounts for: a duplicate, or another run's.
			bad = append(bad, fmt.Sprintf("%s: %d lines for %d decisions (%d counted as dropped): more lines than decisions", name, whole, decided, dropped))
		case whole < min:
			bad = append(bad, fmt.Sprintf("%s: %d lines, want at least %d", name, whole, min))
		}
	}
	if len(bad) > 0 {
		ts.Fatalf("violation records:\n%s", strings.Join(bad, "\n"))
	}
}

// violationLines counts the whole JSON objects of a --violations file and
// the lines that are not (an unfinished last line included).
func violationLines(ts *testscript.TestScript, name string) (whole, broken int) {
	b, err := os.ReadFile(ts.MkAbs(name))
	if os.IsNotExist(err) {
		return 0, 0
	}
	ts.Check(err)
	if i := bytes.LastIndexByte(b, '\n'); i < len(b)-1 {
		broken++ // an unfinished last line, whatever it holds
		b = b[:i+1]
	}
	for _, l := range bytes.SplitAfter(b, []byte("\n")) {
		var v map[string]any
		switch {
		case len(l) == 0:
		case json.Unmarshal(l, &v) == nil && v["run_id"] != nil && v["rule"] != nil:
			whole++
		default:
			broken++
		}
	}
	return whole, broken
}

// chaosclean: nothing of the script's runs is left: no process that
// carries its CHAOS_TAG, no run folder in $TMPDIR, no run cgroup of a
// prism-run that is gone (nor of a PID namespace that is). Run it once
// every prism-run it started has ended. What is found is counted as
// leftovers, and its processes are killed.
func cmdChaosClean(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 0 {
		ts.Fatalf("usage: chaosclean")
	}
	left := chaosLeftovers(ts.Getenv("CHAOS_TAG"), ts.Getenv("TMPDIR"), 5*time.Second)
	if len(left) > 0 {
		chaosCase(ts.Name()).add(func(f *chaosFigures) { f.leftovers += len(left) })
		ts.Fatalf("left behind:\n%s", strings.Join(left, "\n"))
	}
}

// chaosLeftovers waits up to limit for the processes tagged tag, the run
// folders in tmp and the stale run cgroups to go (a SIGKILLed prism-run's
// watchdog cleans up as prism-run dies), then lists what is left and
// kills the processes among it.
func chaosLeftovers(tag, tmp string, limit time.Duration) []string {
	var procs []int
	var left []string
	for end := time.Now().Add(limit); ; time.Sleep(50 * time.Millisecond) {
		procs = taggedProcs(tag)
		left = left[:0]
		for _, pid := range procs {
			cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			left = append(left, fmt.Sprintf("process %d: %s", pid, bytes.ReplaceAll(bytes.TrimSuffix(cmd, []byte{0}), []byte{0}, []byte(" "))))
		}
		entries, _ := os.ReadDir(tmp)
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), "prism-run-") {
				left = append(left, "run folder "+filepath.Join(tmp, e.Name()))
			}
		}
		for _, cg := range staleCgroups() {
			left = append(left, "cgroup "+cg)
		}
		if len(left) == 0 || time.Now().After(end) {
			break
		}
	}
	for _, pid := range procs {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	return left
}

// taggedProcs lists the processes whose environment holds CHAOS_TAG=tag.
func taggedProcs(tag string) []int {
	want := []byte("CHAOS_TAG=" + tag + "\x00")
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err == nil && (bytes.HasPrefix(env, want) || bytes.Contains(env, append([]byte{0}, want...))) {
			out = append(out, pid)
		}
	}
	return out
}

// staleCgroups lists the run cgroups under this process's cgroup whose
// prism-run is provably gone (limits.ListStale), and those whose owner's
// PID namespace no process is in any longer (its prism-run is gone with
// it; ListStale cannot judge another namespace's pids).
func staleCgroups() []string {
	h, err := limits.ReadHost()
	if err != nil {
		return nil
	}
	stale, unknown := limits.ListStale(h)
	live := map[uint64]bool{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		var ns uint64
		if l, err := os.Readlink(filepath.Join("/proc", e.Name(), "ns", "pid")); err == nil {
			if _, err := fmt.Sscanf(l, "pid:[%d]", &ns); err == nil {
				live[ns] = true
			}
		}
	}
	for _, dir := range unknown {
		o, _, ok := procfs.ParseOwner(strings.TrimPrefix(filepath.Base(dir), "prism-run."))
		if ok && o.NS != 0 && !live[o.NS] {
			stale = append(stale, dir)
		}
	}
	return stale
}

// waitsize [-n N] FILE SIZE: wait until FILE holds at least SIZE bytes.
func cmdWaitSize(ts *testscript.TestScript, neg bool, args []string) {
	n, args := repeated(ts, args)
	if neg || len(args) != 2 {
		ts.Fatalf("usage: waitsize [-n N] FILE SIZE")
	}
	size, err := strconv.ParseInt(args[1], 10, 64)
	ts.Check(err)
	for i := 1; i <= n; i++ {
		name := ts.MkAbs(expand(args[0], i))
		poll(ts, fmt.Sprintf("%d bytes in %s", size, name), func() bool {
			fi, err := os.Stat(name)
			return err == nil && fi.Size() >= size
		})
	}
}

// waitlines [-n N] FILE LINES: wait until FILE holds at least LINES lines.
func cmdWaitLines(ts *testscript.TestScript, neg bool, args []string) {
	n, args := repeated(ts, args)
	if neg || len(args) != 2 {
		ts.Fatalf("usage: waitlines [-n N] FILE LINES")
	}
	lines, err := strconv.Atoi(args[1])
	ts.Check(err)
	for i := 1; i <= n; i++ {
		name := ts.MkAbs(expand(args[0], i))
		poll(ts, fmt.Sprintf("%d lines in %s", lines, name), func() bool {
			b, _ := os.ReadFile(name)
			return bytes.Count(b, []byte("\n")) >= lines
		})
	}
}

// slowsink VAR FILE DELAY: like httpsink, but each request is answered
// (200) only after DELAY; what it received is appended to FILE as it
// arrives.
func cmdSlowSink(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: slowsink VAR FILE DELAY")
	}
	delay, err := time.ParseDuration(args[2])
	ts.Check(err)
	path := ts.MkAbs(args[1])
	var mu sync.Mutex
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err == nil {
			_, _ = f.Write(append(b, '\n'))
			_ = f.Close()
		}
		mu.Unlock()
		select {
		case <-time.After(delay):
		case <-done:
		}
	}))
	ts.Defer(func() { close(done); srv.Close() })
	ts.Setenv(args[0], srv.URL)
}

// cpuwatch [-n N] FILE FIELD DUR MAX: each process whose pid is field
// FIELD of FILE uses at most MAX cores (its user and system time) over the
// same DUR.
func cmdCPUWatch(ts *testscript.TestScript, neg bool, args []string) {
	n, args := repeated(ts, args)
	if neg || len(args) != 4 {
		ts.Fatalf("usage: cpuwatch [-n N] FILE FIELD DUR MAX")
	}
	d, err := time.ParseDuration(args[2])
	ts.Check(err)
	most, err := strconv.ParseFloat(args[3], 64)
	ts.Check(err)
	pids := make([]int, n)
	for i := range pids {
		pids[i] = pidFrom(ts, expand(args[0], i+1), args[1])
	}
	seconds := func(pid int) float64 {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			ts.Fatalf("process %d ended before the end of the measure: %v", pid, err)
		}
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
		u, _ := strconv.ParseFloat(f[11], 64) // utime, field 14
		s, _ := strconv.ParseFloat(f[12], 64) // stime, field 15
		return (u + s) / 100                  // USER_HZ
	}
	before, start := make([]float64, n), time.Now()
	for i, pid := range pids {
		before[i] = seconds(pid)
	}
	time.Sleep(d)
	for i, pid := range pids {
		cores := (seconds(pid) - before[i]) / time.Since(start).Seconds()
		ts.Logf("process %d used %.3f cores over %s", pid, cores, d)
		if cores > most {
			ts.Fatalf("process %d used %.3f cores over %s, more than %v", pid, cores, d, most)
		}
	}
}

// failGPU makes the simulated GPU server of prism-run-mockgpu fail as a
// driver does mid-run when PRISM_TEST_GPU_FAIL=RETURN[:DUR] is set
// (unknown or lost): once a child is there (and DUR more), every device
// query and every wait for an event answers that error at once.
func failGPU(s *gputest.Server) {
	how, after, _ := strings.Cut(os.Getenv("PRISM_TEST_GPU_FAIL"), ":")
	ret := map[string]nvml.Return{"unknown": nvml.ERROR_UNKNOWN, "lost": nvml.ERROR_GPU_IS_LOST}[how]
	if ret == nvml.SUCCESS {
		return
	}
	delay, _ := time.ParseDuration(after)
	var failing atomic.Bool
	go func() {
		for len(descendants(os.Getpid())) == 0 {
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(delay)
		failing.Store(true)
	}()
	for _, d := range s.Devices {
		failDevice(d.(*server.Device), &failing, ret)
	}
	create := s.EventSetCreateFunc
	s.EventSetCreateFunc = func() (nvml.EventSet, nvml.Return) {
		es, r := create()
		if m, ok := es.(*mock.EventSet); ok {
			wait := m.WaitFunc
			m.WaitFunc = func(ms uint32) (nvml.EventData, nvml.Return) {
				if failing.Load() {
					return nvml.EventData{}, ret
				}
				return wait(ms)
			}
		}
		return es, r
	}
}

// failDevice makes the device queries the probe makes answer ret once
// failing is set.
func failDevice(d *server.Device, failing *atomic.Bool, ret nvml.Return) {
	compute, graphics, util := d.GetComputeRunningProcessesFunc, d.GetGraphicsRunningProcessesFunc, d.GetUtilizationRatesFunc
	d.GetComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) {
		if failing.Load() {
			return nil, ret
		}
		return compute()
	}
	d.GetGraphicsRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) {
		if failing.Load() {
			return nil, ret
		}
		return graphics()
	}
	d.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) {
		if failing.Load() {
			return nvml.Utilization{}, ret
		}
		return util()
	}
	meminfo, temp, power := d.GetMemoryInfoFunc, d.GetTemperatureFunc, d.GetPowerUsageFunc
	d.GetMemoryInfoFunc = func() (nvml.Memory, nvml.Return) {
		if failing.Load() {
			return nvml.Memory{}, ret
		}
		return meminfo()
	}
	d.GetTemperatureFunc = func(s nvml.TemperatureSensors) (uint32, nvml.Return) {
		if failing.Load() {
			return 0, ret
		}
		return temp(s)
	}
	d.GetPowerUsageFunc = func() (uint32, nvml.Return) {
		if failing.Load() {
			return 0, ret
		}
		return power()
	}
}
