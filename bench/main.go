// Command bench measures prism-run against baselines run in the same
// process, on this machine, now (make bench), and writes BENCHMARKS.md:
// start to exit beside a minimal Go os/exec wrapper (bench/gowrap),
// timeout(1) and tini; prism-run's own CPU while its child sleeps; output
// throughput beside `cat | cat`; the marker -> SIGUSR1 reaction, idle and
// beside two CPU hogs; peak RSS; replay. Each figure has its target
// (issue 13); a missed one is marked, never hidden.
//
// It needs hyperfine (Debian's package); timeout and tini are shown when
// present.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// row is one figure of the table.
type row struct {
	figure, prism, baseline, target string
	met                             bool
}

type bench struct {
	prism, gowrap, child, work string
	mb, starts, trials         int
	cpuSeconds                 int
	rows                       []row
	notes                      []string
	goBench                    []string // the Go benchmarks' result lines
	// the every-line-a-marker log, kept for replay
	replayFile, replayPolicy string
	replayLines              float64
}

func main() {
	b := &bench{}
	out := flag.String("out", "BENCHMARKS.md", "write the table to this file (- for stdout only)")
	flag.StringVar(&b.prism, "prism", "bin/prism-run", "the prism-run binary to measure")
	quick := flag.Bool("quick", false, "a short round (CI): smaller files, fewer runs; figures are rough")
	gate := flag.Bool("gate", false, "exit 3 when a figure misses its target")
	gobench := flag.String("gobench", "", "also run the Go benchmarks of these packages (space-separated) and keep their lines")
	only := flag.String("only", "", "run only these steps, comma-separated: start,cpu,throughput,reaction,rss,replay")
	flag.Parse()
	b.mb, b.starts, b.trials, b.cpuSeconds = 200, 100, 300, 10
	if *quick {
		b.mb, b.starts, b.trials, b.cpuSeconds = 16, 15, 40, 2
	}
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "out" })
	if (*quick || *only != "") && !explicit {
		*out = "-" // a short or partial round never replaces BENCHMARKS.md
	}
	if err := checkSteps(*only); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	if _, err := exec.LookPath("hyperfine"); err != nil {
		fmt.Fprintln(os.Stderr, "bench: needs hyperfine (apt-get install hyperfine)")
		os.Exit(1)
	}
	if *gobench != "" {
		if err := b.goBenchmarks(strings.Fields(*gobench)); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
	}
	if err := b.run(*only); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	md := b.markdown(strings.Join(append([]string{"go run ./bench"}, os.Args[1:]...), " "))
	fmt.Print(md)
	if *out != "-" {
		if err := os.WriteFile(*out, []byte(md), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
	}
	for _, r := range b.rows {
		if !r.met && *gate {
			os.Exit(3)
		}
	}
}

// stepNames are the steps -only may name, in the order they run.
var stepNames = []string{"start", "cpu", "throughput", "reaction", "rss", "replay"}

// checkSteps refuses an -only list naming a step that does not exist, or
// replay without throughput (it replays throughput's marker log).
func checkSteps(only string) error {
	if only == "" {
		return nil
	}
	names := strings.Split(only, ",")
	for _, n := range names {
		if !slices.Contains(stepNames, n) {
			return fmt.Errorf("-only: no step %q (steps: %s)", n, strings.Join(stepNames, ","))
		}
	}
	if slices.Contains(names, "replay") && !slices.Contains(names, "throughput") {
		return fmt.Errorf("-only: replay replays throughput's marker log: name both")
	}
	return nil
}

func (b *bench) run(only string) error {
	var err error
	if b.prism, err = filepath.Abs(b.prism); err != nil {
		return err
	}
	if b.work, err = os.MkdirTemp("", "prism-bench-"); err != nil {
		return err
	}
	defer os.RemoveAll(b.work)
	b.gowrap, b.child = filepath.Join(b.work, "gowrap"), filepath.Join(b.work, "benchchild")
	for bin, pkg := range map[string]string{b.gowrap: "./bench/gowrap", b.child: "./bench/benchchild"} {
		if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	steps := []struct {
		name string
		run  func() error
	}{{"start", b.start}, {"cpu", b.ownCPU}, {"throughput", b.throughput}, {"reaction", b.reaction}, {"rss", b.peakRSS}, {"replay", b.replay}}
	for _, step := range steps {
		if only != "" && !strings.Contains(","+only+",", ","+step.name+",") {
			continue
		}
		if err := step.run(); err != nil {
			return err
		}
	}
	return nil
}

func (b *bench) add(figure, prism, baseline, target string, met bool) {
	b.rows = append(b.rows, row{figure, prism, baseline, target, met})
}

func (b *bench) markdown(command string) string {
	var s strings.Builder
	fmt.Fprintf(&s, "# Benchmarks\n\nMeasured by `make bench` (`%s`) on %s.\n\n", command, time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&s, "Machine: %s, %d cores, %s, %s, cgroup %s.\n\n", cpuModel(), runtime.NumCPU(), kernel(), runtime.Version(), cgroupMode())
	s.WriteString("Each figure is measured beside its baseline in the same run; the machine is shared, so figures move between runs.\n\n")
	s.WriteString("| figure | prism-run | baseline (same run) | target | met |\n|---|---|---|---|---|\n")
	for _, r := range b.rows {
		met := "yes"
		if !r.met {
			met = "**no**"
		}
		cell := func(c string) string { return strings.ReplaceAll(c, "|", `\|`) }
		fmt.Fprintf(&s, "| %s | %s | %s | %s | %s |\n", cell(r.figure), cell(r.prism), cell(r.baseline), cell(r.target), met)
	}
	if len(b.goBench) > 0 {
		s.WriteString("\nThe Go benchmarks of the same run (`go test -bench . -benchmem`; the pump's baseline is the same child read straight from a pipe):\n\n```\n")
		for _, l := range b.goBench {
			s.WriteString(l + "\n")
		}
		s.WriteString("```\n")
	}
	if len(b.notes) > 0 {
		s.WriteString("\n")
		for _, n := range b.notes {
			fmt.Fprintf(&s, "- %s\n", n)
		}
	}
	return s.String()
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
		}
	}
	return runtime.GOARCH
}

func kernel() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return "Linux " + strings.TrimSpace(string(b))
}

func cgroupMode() string {
	out, err := exec.Command("stat", "-fc", "%T", "/sys/fs/cgroup").Output()
	if err != nil {
		return "unknown"
	}
	if strings.TrimSpace(string(out)) == "cgroup2fs" {
		return "v2"
	}
	return "v1 (or hybrid)"
}

// goBenchmarks runs the packages' Go benchmarks, printing their output as
// it comes, and keeps their result lines for the table's page.
func (b *bench) goBenchmarks(pkgs []string) error {
	cmd := exec.Command("go", append([]string{"test", "-run", "^$", "-bench", ".", "-benchmem"}, pkgs...)...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	os.Stdout.Write(out)
	if err != nil {
		return fmt.Errorf("go test -bench: %w", err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "Benchmark") || strings.HasPrefix(l, "pkg: ") {
			b.goBench = append(b.goBench, l)
		}
	}
	return nil
}
