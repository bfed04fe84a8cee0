package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"image/color"
	"image/png"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/rogpeppe/go-internal/testscript"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/prism-run/prism-run/examples/colorer"
	"github.com/prism-run/prism-run/examples/ensemble"
	"github.com/prism-run/prism-run/examples/tracker"
	"github.com/prism-run/prism-run/internal/cli"
	"github.com/prism-run/prism-run/internal/procfs"
	"github.com/prism-run/prism-run/internal/testchild"
	"github.com/prism-run/prism-run/limits"

	"github.com/prism-run/prism-run/probes/gpu"
	"github.com/prism-run/prism-run/probes/gpu/gputest"
)

// TestMain installs this test binary as the commands the scripts run:
// prism-run itself (a real process, so signals, Pdeathsig and exit codes
// are the real ones) and the testchild helper.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"prism-run": func() { countChaosRun(); os.Exit(run(os.Args, cli.Deps{NVML: gpu.System})) },
		"testchild": func() { os.Exit(testchild.Main(os.Args[1:])) },
		"colorer":   func() { os.Exit(colorer.Main(os.Args[1:], os.Stdout, os.Stderr)) },
		// prism-run with a simulated DGX H100 in place of NVML: the
		// test-only build of the binary for GPU rules end to end.
		"prism-run-mockgpu": func() {
			countChaosRun()
			os.Exit(run(os.Args, cli.Deps{NVML: mockGPU}))
		},
		"tracker":  func() { os.Exit(tracker.Main(os.Args[1:], os.Stdout, os.Stderr)) },
		"ensemble": func() { os.Exit(ensemble.Main(os.Args[1:], os.Stdout, os.Stderr)) },
	})
}

func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Condition:           scriptCondition,
		Setup:               scriptSetup,
		Cmds:                scriptCmds(),
	})
}

// scriptCondition answers the scripts' conditions ([root], [cgroup], [kmsg]).
func scriptCondition(cond string) (bool, error) {
	switch cond {
	case "root":
		return os.Getuid() == 0, nil
	case "cgroup":
		// Root, and a cgroup hierarchy with the memory, cpu and
		// pids controllers (v1 here; v2 where delegated).
		return os.Getuid() == 0 && cgroupUsable(), nil
	case "kmsg":
		// The kernel log can be read: OOM victims can be named.
		kl, err := limits.OpenKernelLog("/dev/kmsg")
		if err == nil {
			_ = kl.Close()
		}
		return err == nil, nil
	}
	return false, fmt.Errorf("unknown condition %q", cond)
}

func scriptSetup(env *testscript.Env) error {
	// A -race child sleeps 1s before exiting unless told not to.
	env.Setenv("GORACE", "atexit_sleep_ms=0")
	// testscript's root folder is 0700 (os.MkdirTemp); a --user
	// child must pass through it to its checkpoint folder under
	// $TMPDIR, or prism-run rightly refuses the start.
	return os.Chmod(filepath.Dir(env.WorkDir), 0o711)
}

// scriptCmds are the scripts' own commands (TestScripts and TestChaos).
func scriptCmds() map[string]func(ts *testscript.TestScript, neg bool, args []string) {
	return map[string]func(ts *testscript.TestScript, neg bool, args []string){
		"waitfile":    cmdWaitFile,
		"waitline":    cmdWaitLine,
		"sendsig":     cmdSendSig,
		"gone":        cmdGone,
		"bytesmatch":  cmdBytesMatch,
		"allbytes":    cmdAllBytes,
		"atleast":     cmdAtLeast,
		"enforced":    cmdEnforced,
		"noleftovers": cmdNoLeftovers,
		"elapsed":     cmdElapsed,
		"smaller":     cmdSmaller,
		"jsonlines":   cmdJSONLines,
		"freeport":    cmdFreePort,
		"promquery":   cmdPromQuery,
		"httpsink":    cmdHTTPSink,
		"validreport": cmdValidReport,
		"ptyrun":      cmdPtyRun,
		"screen":      cmdScreen,
		"notblank":    cmdNotBlank,
	}
}

const waitLimit = 20 * time.Second

func poll(ts *testscript.TestScript, what string, cond func() bool) {
	for end := time.Now().Add(waitLimit); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	ts.Fatalf("timed out after %s waiting for %s", waitLimit, what)
}

// waitfile FILE: wait until FILE exists.
func cmdWaitFile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: waitfile FILE")
	}
	poll(ts, args[0], func() bool { _, err := os.Stat(ts.MkAbs(args[0])); return err == nil })
}

// waitline FILE TEXT: wait until FILE contains TEXT.
func cmdWaitLine(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: waitline FILE TEXT")
	}
	poll(ts, fmt.Sprintf("%q in %s", args[1], args[0]), func() bool {
		b, _ := os.ReadFile(ts.MkAbs(args[0]))
		return bytes.Contains(b, []byte(args[1]))
	})
}

// pidFrom reads field n (1-based) of the first line of a pid file.
func pidFrom(ts *testscript.TestScript, file, field string) int {
	n, err := strconv.Atoi(field)
	ts.Check(err)
	// A shell's `echo $$ > FILE` makes the file before it writes the
	// line: wait for the whole line, not just the file.
	var f []string
	poll(ts, fmt.Sprintf("field %d of %s", n, file), func() bool {
		b, err := os.ReadFile(ts.MkAbs(file))
		f = strings.Fields(string(b))
		return err == nil && strings.HasSuffix(string(b), "\n") && n >= 1 && n <= len(f)
	})
	pid, err := strconv.Atoi(f[n-1])
	ts.Check(err)
	return pid
}

var signalNames = map[string]syscall.Signal{
	"HUP": syscall.SIGHUP, "INT": syscall.SIGINT, "QUIT": syscall.SIGQUIT, "KILL": syscall.SIGKILL,
	"USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2, "TERM": syscall.SIGTERM, "STOP": syscall.SIGSTOP,
}

// sendsig SIG FILE FIELD: send SIG to the pid in field FIELD of FILE.
func cmdSendSig(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: sendsig SIG FILE FIELD")
	}
	sig, ok := signalNames[args[0]]
	if !ok {
		ts.Fatalf("unknown signal %s", args[0])
	}
	ts.Check(syscall.Kill(pidFrom(ts, args[1], args[2]), sig))
}

// gone FILE FIELD: wait until the pid in FILE no longer runs (a zombie
// counts as gone: it has exited and only waits for its reaper).
func cmdGone(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: gone FILE FIELD")
	}
	pid := pidFrom(ts, args[0], args[1])
	poll(ts, fmt.Sprintf("process %d to end", pid), func() bool {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return true
		}
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
		if err != nil {
			return true
		}
		i := bytes.LastIndexByte(b, ')')
		return i > 0 && i+2 < len(b) && b[i+2] == 'Z'
	})
}

// bytesmatch FILE N SEED: FILE holds exactly testchild's `randbytes N SEED`.
func cmdBytesMatch(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 {
		ts.Fatalf("usage: bytesmatch FILE N SEED")
	}
	n, err := strconv.Atoi(args[1])
	ts.Check(err)
	seed, err := strconv.ParseUint(args[2], 10, 64)
	ts.Check(err)
	match := bytes.Equal([]byte(ts.ReadFile(args[0])), testchild.RandomBytes(n, seed))
	if match == neg {
		ts.Fatalf("%s: content matches=%v, want %v (%d bytes)", args[0], match, !neg, len(ts.ReadFile(args[0])))
	}
}

// allbytes FILE N C: FILE is exactly N bytes, each C.
func cmdAllBytes(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 || len(args[2]) != 1 {
		ts.Fatalf("usage: allbytes FILE N C")
	}
	n, err := strconv.Atoi(args[1])
	ts.Check(err)
	got := ts.ReadFile(args[0])
	if len(got) != n || strings.Count(got, args[2]) != n {
		ts.Fatalf("%s: %d bytes (%d of %q), want %d", args[0], len(got), strings.Count(got, args[2]), args[2], n)
	}
}

func cgroupUsable() bool {
	h, err := limits.ReadHost()
	if err != nil {
		return false
	}
	name := h.RunCgroupName("probe")
	cg, err := limits.NewCgroup(h, name, limits.CgroupSpec{Memory: 1 << 30, CPUs: 1, Pids: 100})
	if err != nil {
		return false
	}
	_ = cg.Delete()
	return true
}

// mockGPU is the simulated GPU server of prism-run-mockgpu: GPU 0 shows
// every process below this prism-run using $PRISM_TEST_GPU_BYTES, and
// $PRISM_TEST_GPU_XID, if set, arrives as a critical Xid on GPU 1 once a
// child is there.
func mockGPU() gpu.Library {
	s := gputest.New()
	bytes, _ := strconv.ParseUint(os.Getenv("PRISM_TEST_GPU_BYTES"), 10, 64)
	// PRISM_TEST_GPU_AFTER=FILE: the child's processes hold GPU memory only
	// once FILE exists (testchild writes it when its signal handlers are
	// in place), so a rule cannot trip before the child can answer it.
	after := os.Getenv("PRISM_TEST_GPU_AFTER")
	s.PidsFunc = func(g int) map[uint32]uint64 {
		out := map[uint32]uint64{}
		if g != 0 {
			return out
		}
		if after != "" {
			if _, err := os.Stat(after); err != nil {
				return out
			}
		}
		for _, pid := range descendants(os.Getpid()) {
			out[uint32(pid)] = bytes
		}
		return out
	}
	if d, err := time.ParseDuration(os.Getenv("PRISM_TEST_GPU_SLOW_INIT")); err == nil {
		initDone := s.InitFunc
		s.InitFunc = func() nvml.Return {
			time.Sleep(d) // nvmlInit waking a driver without persistence mode
			return initDone()
		}
	}
	if g, err := strconv.Atoi(os.Getenv("PRISM_TEST_GPU_LOSE")); err == nil {
		go func() {
			for len(descendants(os.Getpid())) == 0 {
				time.Sleep(20 * time.Millisecond)
			}
			time.Sleep(200 * time.Millisecond)
			s.Lose(g)
		}()
	}
	if xid, err := strconv.ParseUint(os.Getenv("PRISM_TEST_GPU_XID"), 10, 64); err == nil {
		go func() {
			for len(descendants(os.Getpid())) == 0 {
				time.Sleep(20 * time.Millisecond)
			}
			time.Sleep(200 * time.Millisecond)
			s.Xid(1, xid)
		}()
	}
	failGPU(s) // PRISM_TEST_GPU_FAIL: NVML failing mid-run (chaos_test.go)
	return s
}

// descendants lists the live processes below pid, from /proc.
func descendants(pid int) []int {
	procs, err := procfs.List(procfs.Root)
	if err != nil {
		return nil
	}
	return procfs.LiveDescendants(procs, pid)
}

// atleast FILE KEY MIN: the JSON FILE has "KEY": N somewhere with N >= MIN.
func cmdAtLeast(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: atleast FILE KEY MIN")
	}
	min, err := strconv.ParseFloat(args[2], 64)
	ts.Check(err)
	re := regexp.MustCompile(`"` + regexp.QuoteMeta(args[1]) + `":\s*([-0-9.eE+]+)`)
	m := re.FindStringSubmatch(ts.ReadFile(args[0]))
	if m == nil {
		ts.Fatalf("%s has no %q", args[0], args[1])
	}
	v, err := strconv.ParseFloat(m[1], 64)
	ts.Check(err)
	if v < min {
		ts.Fatalf("%s: %s = %v, want at least %v", args[0], args[1], v, min)
	}
}

// freeport VAR: sets VAR to a TCP port on the loopback interface that was
// free a moment ago.
func cmdFreePort(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: freeport VAR")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	ts.Check(err)
	port := ln.Addr().(*net.TCPAddr).Port
	ts.Check(ln.Close())
	ts.Setenv(args[0], strconv.Itoa(port))
}

// promquery URL QUERY: polls a Prometheus server's instant query API
// until QUERY returns at least one series (waitLimit), and prints the
// first one's value.
func cmdPromQuery(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: promquery URL QUERY")
	}
	u := args[0] + "/api/v1/query?query=" + url.QueryEscape(args[1])
	poll(ts, "a series for "+args[1], func() bool {
		resp, err := http.Get(u)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var r struct {
			Status string
			Data   struct {
				Result []struct {
					Metric map[string]string
					Value  []any
				}
			}
		}
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || r.Status != "success" || len(r.Data.Result) == 0 {
			return false
		}
		ts.Logf("%v %v", r.Data.Result[0].Metric, r.Data.Result[0].Value)
		fmt.Fprintf(ts.Stdout(), "%v\n", r.Data.Result[0].Value[1])
		return true
	})
}

// httpsink VAR FILE [STATUS]: serves HTTP on loopback until the script
// ends, sets VAR to its URL, and appends each request's body as a line to
// FILE; it answers STATUS (default 200).
func cmdHTTPSink(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 || len(args) > 3 {
		ts.Fatalf("usage: httpsink VAR FILE [STATUS]")
	}
	status := http.StatusOK
	if len(args) == 3 {
		var err error
		status, err = strconv.Atoi(args[2])
		ts.Check(err)
	}
	path := ts.MkAbs(args[1])
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err == nil {
			_, _ = f.Write(append(b, '\n'))
			_ = f.Close()
		}
		w.WriteHeader(status)
	}))
	ts.Defer(srv.Close)
	ts.Setenv(args[0], srv.URL)
}

// ptyrun FILE COLS PROG ARGS...: runs PROG in a real terminal (a pty of
// COLS columns: its stdin, stdout and stderr), and writes all it showed
// to FILE; fails when PROG fails, unless the command is negated.
func cmdPtyRun(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 3 {
		ts.Fatalf("usage: ptyrun FILE COLS PROG [ARGS...]")
	}
	cols, err := strconv.Atoi(args[1])
	ts.Check(err)
	prog, err := exec.LookPath(args[2])
	if err != nil {
		// The script's PATH, where testscript puts prism-run.
		for _, dir := range filepath.SplitList(ts.Getenv("PATH")) {
			if p := filepath.Join(dir, args[2]); fileExists(p) {
				prog, err = p, nil
				break
			}
		}
	}
	ts.Check(err)
	cmd := exec.Command(prog, args[3:]...)
	cmd.Dir = ts.MkAbs(".")
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		cmd.Env = append(cmd.Env, k+"="+ts.Getenv(k))
	}
	cmd.Env = append(cmd.Env, "PATH="+ts.Getenv("PATH"), "TERM=xterm")
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 24, Cols: uint16(cols)})
	ts.Check(err)
	var out bytes.Buffer
	copied := make(chan struct{})
	go func() { _, _ = io.Copy(&out, f); close(copied) }() // EIO once the child side closes
	werr := cmd.Wait()
	<-copied
	_ = f.Close()
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), out.Bytes(), 0o644))
	if (werr != nil) != neg {
		ts.Fatalf("ptyrun %s: %v", args[2], werr)
	}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// screen FILE: prints what a terminal shows after FILE's bytes: "\r"
// goes back to the line's start, ESC[K erases to its end, "\n" (the pty
// writes "\r\n") starts the next; other escapes are dropped.
func cmdScreen(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: screen FILE")
	}
	var lines [][]rune
	var cur []rune
	col := 0
	b := []rune(ts.ReadFile(args[0]))
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case c == '\r':
			col = 0
		case c == '\n':
			lines, cur, col = append(lines, cur), nil, 0
		case c == 0x1b && i+1 < len(b) && b[i+1] == '[':
			j := i + 2
			for j < len(b) && (b[j] < '@' || b[j] > '~') {
				j++
			}
			if j < len(b) && b[j] == 'K' {
				cur = cur[:min(col, len(cur))]
			}
			i = j
		default:
			if col < len(cur) {
				cur[col] = c
			} else {
				cur = append(cur, c)
			}
			col++
		}
	}
	lines = append(lines, cur)
	for _, l := range lines {
		fmt.Fprintln(ts.Stdout(), string(l))
	}
}

// notblank PNG: the image shows something: at least 2 % of its pixels
// differ from its commonest colour, in at least 4 colours.
func cmdNotBlank(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: notblank PNG")
	}
	f, err := os.Open(ts.MkAbs(args[0]))
	ts.Check(err)
	defer f.Close()
	img, err := png.Decode(f)
	ts.Check(err)
	counts := map[color.RGBA]int{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, a := img.At(x, y).RGBA()
			counts[color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(bl >> 8), uint8(a >> 8)}]++
		}
	}
	total, top := b.Dx()*b.Dy(), 0
	for _, n := range counts {
		top = max(top, n)
	}
	if len(counts) < 4 || float64(total-top) < 0.02*float64(total) {
		ts.Fatalf("%s is blank: %d colours, %d of %d pixels differ from the commonest", args[0], len(counts), total-top, total)
	}
}

// validreport FILE: FILE is a run report valid under the schema in
// docs/report.schema.json.
func cmdValidReport(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: validreport FILE")
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	s, err := c.Compile(reportSchema)
	ts.Check(err)
	var v any
	ts.Check(json.Unmarshal([]byte(ts.ReadFile(args[0])), &v))
	if err := s.Validate(v); err != nil {
		ts.Fatalf("%s does not follow docs/report.schema.json: %v", args[0], err)
	}
}

// reportSchema is the report's JSON Schema, by absolute path (scripts
// run in a folder of their own).
var reportSchema = func() string {
	p, _ := filepath.Abs("docs/report.schema.json")
	return p
}()

// jsonlines FILE MIN: FILE is whole JSON objects, one per line, at least
// MIN of them (a line cut short by a kill would fail here).
func cmdJSONLines(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: jsonlines FILE MIN")
	}
	min, err := strconv.Atoi(args[1])
	ts.Check(err)
	text := ts.ReadFile(args[0])
	if text != "" && !strings.HasSuffix(text, "\n") {
		ts.Fatalf("%s ends in an unfinished line", args[0])
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if text == "" {
		lines = nil
	}
	for i, l := range lines {
		var v map[string]any
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			ts.Fatalf("%s line %d is not a whole JSON object: %v: %q", args[0], i+1, err, l)
		}
	}
	if len(lines) < min {
		ts.Fatalf("%s has %d lines, want at least %d", args[0], len(lines), min)
	}
}

// enforced DRYRUN CHILD REPORT: the dry run's enforced items and the run
// agree. Every rlimit, cgroup and isolation item of DRYRUN (prism-run
// --dry-run's output) is a line of CHILD (testchild enforced: what the
// kernel shows the child), every cgroup line of CHILD is an item of
// DRYRUN, and REPORT's "enforced" list is DRYRUN's items, all of them.
func cmdEnforced(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: enforced DRYRUN CHILD REPORT")
	}
	var dry []string
	for _, l := range strings.Split(ts.ReadFile(args[0]), "\n") {
		if item, ok := strings.CutPrefix(l, "#   "); ok && strings.Contains(item, " = ") {
			dry = append(dry, item)
		}
	}
	child := strings.Split(strings.TrimSpace(ts.ReadFile(args[1])), "\n")
	for _, item := range dry {
		kind, _, _ := strings.Cut(item, " ")
		if (kind == "rlimit" || kind == "cgroup" || kind == "isolation") && !slices.Contains(child, item) {
			ts.Fatalf("the dry run says %q; the child does not see it:\n%s", item, strings.Join(child, "\n"))
		}
	}
	for _, l := range child {
		if strings.HasPrefix(l, "cgroup ") && !slices.Contains(dry, l) {
			ts.Fatalf("the child's cgroup has %q, which the dry run did not list", l)
		}
	}
	var rep struct {
		Enforced []struct{ What, Name, Value string } `json:"enforced"`
	}
	ts.Check(json.Unmarshal([]byte(ts.ReadFile(args[2])), &rep))
	var got []string
	for _, e := range rep.Enforced {
		got = append(got, e.What+" "+e.Name+" = "+e.Value)
	}
	if !slices.Equal(got, dry) {
		ts.Fatalf("the report enforced\n  %s\nthe dry run printed\n  %s", strings.Join(got, "\n  "), strings.Join(dry, "\n  "))
	}
}

// noleftovers: every prism-run the script started left nothing behind: no
// run folder in $TMPDIR, and no run cgroup whose prism-run is gone.
// Cleanup after a SIGKILL is the watchdog's, which works as prism-run
// dies, so this waits a little for it.
func cmdNoLeftovers(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 0 {
		ts.Fatalf("usage: noleftovers")
	}
	var left []string
	check := func() bool {
		left = left[:0]
		entries, _ := os.ReadDir(ts.Getenv("TMPDIR"))
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), "prism-run-") {
				left = append(left, filepath.Join(ts.Getenv("TMPDIR"), e.Name()))
			}
		}
		if h, err := limits.ReadHost(); err == nil {
			stale, _ := limits.ListStale(h)
			left = append(left, stale...)
		}
		return len(left) == 0
	}
	for end := time.Now().Add(5 * time.Second); !check() && time.Now().Before(end); {
		time.Sleep(20 * time.Millisecond)
	}
	if len(left) > 0 {
		ts.Fatalf("left behind: %s", strings.Join(left, ", "))
	}
}

// elapsed REPORT MAX: the run in the JSON REPORT took at most MAX (a Go
// duration) from start to end.
func cmdElapsed(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: elapsed REPORT MAX")
	}
	max, err := time.ParseDuration(args[1])
	ts.Check(err)
	var rep struct{ Start, End time.Time }
	ts.Check(json.Unmarshal([]byte(ts.ReadFile(args[0])), &rep))
	if took := rep.End.Sub(rep.Start); took > max || took < 0 {
		ts.Fatalf("%s: the run took %s, more than %s", args[0], took, max)
	}
}

// smaller FILE BYTES: FILE is smaller than BYTES.
func cmdSmaller(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: smaller FILE BYTES")
	}
	limit, err := strconv.ParseInt(args[1], 10, 64)
	ts.Check(err)
	fi, err := os.Stat(ts.MkAbs(args[0]))
	ts.Check(err)
	if fi.Size() >= limit {
		ts.Fatalf("%s is %d bytes, not under %d", args[0], fi.Size(), limit)
	}
}
