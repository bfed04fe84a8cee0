package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// hyperfine runs the commands under hyperfine and returns each one's
// median wall time in seconds, in order.
func (b *bench) hyperfine(args []string, cmds ...string) ([]float64, error) {
	out := filepath.Join(b.work, "hyperfine.json")
	all := append(append([]string{"--export-json", out, "--style", "none"}, args...), cmds...)
	if msg, err := exec.Command("hyperfine", all...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("hyperfine %v: %v\n%s", cmds, err, msg)
	}
	var res struct {
		Results []struct {
			Median float64 `json:"median"`
		} `json:"results"`
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(raw, &res); err != nil || len(res.Results) != len(cmds) {
		return nil, fmt.Errorf("hyperfine's results: %v", err)
	}
	med := make([]float64, len(cmds))
	for i, r := range res.Results {
		med[i] = r.Median
	}
	return med, nil
}

// runJSON runs argv (stdout discarded) and reads the JSON the child wrote to out.
func (b *bench) runJSON(out string, argv ...string) (map[string]float64, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr // a flood's stdout is not kept
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%v: %v\n%s", argv, err, tail([]byte(stderr.String())))
	}
	return readJSON(out)
}

// readJSON reads what benchchild wrote: its numbers, and, where it
// measured its parent, that the parent is prism-run or the baseline (a
// shell in between would be measured instead).
func readJSON(path string) (map[string]float64, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var all map[string]any
	if err := json.Unmarshal(raw, &all); err != nil {
		return nil, err
	}
	m := map[string]float64{}
	for k, v := range all {
		if f, ok := v.(float64); ok {
			m[k] = f
		}
	}
	if p, ok := all["parent"].(string); ok && p != "prism-run" && p != "gowrap" {
		return nil, fmt.Errorf("%s: measured %q, not prism-run or the baseline", path, p)
	}
	return m, nil
}

func tail(b []byte) string {
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

func (b *bench) file(name, content string) string {
	p := filepath.Join(b.work, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		panic(err)
	}
	return p
}

func ms(s float64) string { return fmt.Sprintf("%.1f ms", s*1000) }

// start: prism-run -- true, start to exit, beside the Go wrapper,
// timeout(1) and tini.
func (b *bench) start() error {
	cmds := []string{b.gowrap + " true", b.prism + " -- true", b.prism + " --gpus none -- true"}
	names := []string{"Go os/exec wrapper"}
	for _, extra := range [][2]string{{"timeout", "timeout 10 true"}, {"tini", "tini -s -- true"}} {
		if _, err := exec.LookPath(extra[0]); err == nil {
			cmds, names = append(cmds, extra[1]), append(names, "`"+extra[1]+"`")
		} else {
			b.notes = append(b.notes, extra[0]+" is not installed: not shown beside the start")
		}
	}
	med, err := b.hyperfine([]string{"-N", "-w", "10", "-r", strconv.Itoa(b.starts)}, cmds...)
	if err != nil {
		return err
	}
	base := []string{names[0] + " " + ms(med[0])}
	for i, n := range names[1:] {
		base = append(base, n+" "+ms(med[3+i]))
	}
	made := "no run cgroup here"
	if out, _ := exec.Command(b.prism, "--log-level", "debug", "--", "true").CombinedOutput(); strings.Contains(string(out), "run cgroup created") {
		made = "the run's cgroup made"
	}
	b.add(fmt.Sprintf("`prism-run -- true`, start to exit, median of %d (%s)", b.starts, made),
		fmt.Sprintf("%s, %.1fx the Go wrapper (`--gpus none`: %s)", ms(med[1]), med[1]/med[0], ms(med[2])),
		strings.Join(base, "; "), fmt.Sprintf("at most 2x the Go wrapper (%s)", ms(2*med[0])), med[1] <= 2*med[0])
	return nil
}

// ownCPU: prism-run's CPU time (all threads) while its child sleeps,
// beside the Go wrapper's, read by the child from /proc/PPID/task/*/schedstat.
func (b *bench) ownCPU() error {
	for _, c := range []struct {
		interval string
		target   float64
	}{{"100ms", 0.3}, {"10ms", 2}} {
		out := filepath.Join(b.work, "cpu.json")
		secs := strconv.Itoa(b.cpuSeconds)
		p, err := b.runJSON(out, b.prism, "--sample-interval", c.interval, "--", b.child, "cpu", "2", secs, out)
		if err != nil {
			return err
		}
		g, err := b.runJSON(out, b.gowrap, b.child, "cpu", "2", secs, out)
		if err != nil {
			return err
		}
		ticking := exec.Command(b.gowrap, b.child, "cpu", "2", secs, out)
		ticking.Env = append(os.Environ(), "GOWRAP_TICK="+c.interval)
		if msg, err := ticking.CombinedOutput(); err != nil {
			return fmt.Errorf("gowrap with a ticker: %v\n%s", err, msg)
		}
		t, err := readJSON(out)
		if err != nil {
			return err
		}
		b.add(fmt.Sprintf("own CPU while the child sleeps, %s sampling, over %s s", c.interval, secs),
			fmt.Sprintf("%.2f %% of a core", p["percent"]),
			fmt.Sprintf("Go os/exec wrapper %.3f %%; the same with an empty %s ticker %.2f %%", g["percent"], c.interval, t["percent"]),
			fmt.Sprintf("at most %.1f %%", c.target), p["percent"] <= c.target)
	}
	return nil
}

// throughput: the child's output through prism-run beside `cat | cat`,
// for every line a marker, plain lines, and one marker in 100 lines.
func (b *bench) throughput() error {
	policy := b.file("flood.toml", "[[rule]]\nname = \"never\"\nkind = \"threshold\"\nmetric = \"bench_i\"\nabove = 1e300\nseverity = \"low\"\naction = \"log\"\n")
	runs := []string{"-w", "1", "-r", "3"}
	for _, mode := range []string{"marker", "plain", "mixed100"} {
		f := filepath.Join(b.work, mode+".log")
		out, err := exec.Command(b.child, "gen", mode, strconv.Itoa(b.mb), f).Output()
		if err != nil {
			return fmt.Errorf("gen: %v", err)
		}
		lines, _ := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
		med, err := b.hyperfine(runs, "cat "+f+" | cat", b.prism+" --policy "+policy+" -- cat "+f)
		if err != nil {
			return err
		}
		ratio := med[1] / med[0]
		switch mode {
		case "marker":
			lost, err := b.lost(policy, f, lines)
			if err != nil {
				return err
			}
			b.add(fmt.Sprintf("every line a marker (%d MiB, %.1f M lines)", b.mb, lines/1e6),
				fmt.Sprintf("%.2f M lines/s (%.1fx the time of cat | cat), %d observations lost", lines/med[1]/1e6, ratio, lost),
				fmt.Sprintf("`cat | cat` %.1f M lines/s", lines/med[0]/1e6), "at least 5 M lines/s, none lost", lines/med[1] >= 5e6 && lost == 0)
			b.replayFile, b.replayLines, b.replayPolicy = f, lines, policy
		default:
			what := map[string]string{"plain": "plain lines", "mixed100": "1 marker in 100 lines"}[mode]
			b.add(fmt.Sprintf("%s (%d MiB)", what, b.mb), fmt.Sprintf("%s, %.2fx the time of cat | cat", ms(med[1]), ratio),
				"`cat | cat` "+ms(med[0]), "no slower than cat | cat", ratio <= 1.0)
			if mode == "plain" {
				_ = os.Remove(f)
			}
		}
	}
	return nil
}

// lost runs the marker file once more with a report and counts what the
// report saw against the lines written.
func (b *bench) lost(policy, f string, lines float64) (int64, error) {
	rep := filepath.Join(b.work, "flood.json")
	cmd := exec.Command(b.prism, "--policy", policy, "--report", rep, "--", "cat", f)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("flood with a report: %v\n%s", err, tail(msg))
	}
	out, err := exec.Command(b.child, "count", rep, "bench_i").Output()
	if err != nil {
		return 0, err
	}
	seen, _ := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	return int64(lines) - seen, nil
}

// reaction: marker -> SIGUSR1, measured by the child, idle and beside two
// busy processes.
func (b *bench) reaction() error {
	policy := b.file("react.toml", "[[rule]]\nname = \"bench-trigger\"\nkind = \"threshold\"\nmetric = \"bench_trigger\"\nabove = 0.5\nseverity = \"medium\"\naction = \"checkpoint\"\n")
	out := filepath.Join(b.work, "react.json")
	for _, c := range []struct {
		hogs   int
		target float64
	}{{0, 0.5}, {2, 2}} {
		var hogs []*exec.Cmd
		for range c.hogs {
			h := exec.Command(b.child, "hog")
			if err := h.Start(); err != nil {
				return err
			}
			hogs = append(hogs, h)
		}
		m, err := b.runJSON(out, b.prism, "--policy", policy, "--", b.child, "react", strconv.Itoa(b.trials), out)
		var g map[string]float64
		if err == nil {
			base := exec.Command(b.gowrap, b.child, "react", strconv.Itoa(b.trials), out)
			base.Env = append(os.Environ(), "GOWRAP_REACT=PRISM bench_trigger=1")
			if msg, berr := base.CombinedOutput(); berr != nil {
				err = fmt.Errorf("gowrap reacting: %v\n%s", berr, tail(msg))
			} else {
				g, err = readJSON(out)
			}
		}
		for _, h := range hogs {
			_ = h.Process.Signal(syscall.SIGKILL)
			_ = h.Wait()
		}
		if err != nil {
			return err
		}
		load := "idle"
		if c.hogs > 0 {
			load = fmt.Sprintf("beside %d CPU hogs", c.hogs)
		}
		b.add(fmt.Sprintf("marker -> SIGUSR1 reaction p99, %s, %d trials", load, b.trials),
			fmt.Sprintf("p99 %.3f ms (p50 %.3f, max %.3f, %d missed)", m["p99_ms"], m["p50_ms"], m["max_ms"], int(m["missed"])),
			fmt.Sprintf("a Go wrapper that reads the child's lines and signals: p99 %.3f ms (p50 %.3f)", g["p99_ms"], g["p50_ms"]),
			fmt.Sprintf("at most %g ms", c.target), m["p99_ms"] <= c.target && m["missed"] == 0)
	}
	return nil
}

// peakRSS: prism-run's VmHWM, read by its child, for an ordinary run and
// a child that prints a 64 MiB line and a million distinct marker names.
func (b *bench) peakRSS() error {
	out := filepath.Join(b.work, "hwm.json")
	for _, c := range []struct {
		what, cmd string
		target    float64
	}{{"an ordinary run", "hwm", 12}, {"a 64 MiB line, then 1 M distinct marker names", "flood", 64}} {
		p, err := b.runJSON(out, b.prism, "--", b.child, c.cmd, out)
		if err != nil {
			return err
		}
		g, err := b.runJSON(out, b.gowrap, b.child, c.cmd, out)
		if err != nil {
			return err
		}
		b.add("peak RSS, "+c.what, fmt.Sprintf("%.1f MiB (at the end: %.1f MiB its own, %.1f MiB pages of its executable)", p["hwm_kib"]/1024, p["anon_kib"]/1024, p["file_kib"]/1024),
			fmt.Sprintf("Go os/exec wrapper %.1f MiB", g["hwm_kib"]/1024),
			fmt.Sprintf("at most %g MiB", c.target), p["hwm_kib"]/1024 <= c.target)
	}
	return nil
}

// replay: prism-run replay over the every-line-a-marker file.
func (b *bench) replay() error {
	med, err := b.hyperfine([]string{"-w", "1", "-r", "3"}, "wc -l "+b.replayFile,
		b.prism+" replay --policy "+b.replayPolicy+" "+b.replayFile)
	if err != nil {
		return err
	}
	b.add(fmt.Sprintf("replay, every line a marker (%.1f M lines)", b.replayLines/1e6),
		fmt.Sprintf("%.2f M lines/s", b.replayLines/med[1]/1e6), fmt.Sprintf("`wc -l` %.0f M lines/s", b.replayLines/med[0]/1e6),
		"at least 5 M lines/s", b.replayLines/med[1] >= 5e6)
	return nil
}
