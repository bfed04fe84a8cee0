package supervisor

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"
	"k8s.io/utils/clock"

	"github.com/prism-run/prism-run/internal/procfs"
	"github.com/prism-run/prism-run/internal/testchild"
	"github.com/prism-run/prism-run/limits"
	"github.com/prism-run/prism-run/policies"
	"github.com/prism-run/prism-run/telemetry"
)

// The test binary doubles as the child (os/exec's helper-process pattern).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == limits.ShimArg {
		os.Exit(limits.ShimMain(os.Args[2:]))
	}
	if os.Getenv("PRISM_TESTCHILD") == "1" {
		os.Exit(testchild.Main(os.Args[1:]))
	}
	if mode := os.Getenv("PRISM_TEST_TTY"); mode != "" {
		os.Exit(ttyHelper(mode))
	}
	goleak.VerifyTestMain(m)
}

// syncBuffer is a bytes.Buffer safe for the pumps and the test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type harness struct {
	cfg            Config
	stdout, stderr *syncBuffer
	logs           *syncBuffer
}

func newHarness(t *testing.T, mode ...string) *harness {
	t.Helper()
	h := &harness{stdout: &syncBuffer{}, stderr: &syncBuffer{}, logs: &syncBuffer{}}
	h.cfg = Config{
		Command: append([]string{os.Args[0]}, mode...),
		// atexit_sleep_ms: a -race child otherwise sleeps 1s before exiting.
		Env:               append(os.Environ(), "PRISM_TESTCHILD=1", "GORACE=atexit_sleep_ms=0"),
		Stdout:            h.stdout,
		Stderr:            h.stderr,
		RunID:             "test-" + strings.ReplaceAll(t.Name(), "/", "-"),
		Seed:              42,
		KillAfter:         2 * time.Second,
		CheckpointTimeout: 2 * time.Second,
		TickInterval:      10 * time.Millisecond,
		Log:               zerolog.New(h.logs),
	}
	return h
}

func (h *harness) run(t *testing.T) *telemetry.Report {
	t.Helper()
	res, err := Run(context.Background(), h.cfg)
	if err != nil {
		t.Fatalf("Run: %v\nlogs:\n%s", err, h.logs)
	}
	return res
}

// onReady is a rule named name that fires when the test child prints its
// first marker ("PRISM iter=0"), which it does once its signal handlers
// are in place: a request it causes never races the child's start, however
// loaded the machine (before the handler, no request is sent at all).
func onReady(t *testing.T, name string, action policies.Action) policies.Rule {
	t.Helper()
	r, err := policies.NewMax(policies.Meta{Name: name, Severity: policies.SeverityHigh, Action: action}, "iter", -1)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func deadline(t *testing.T, d time.Duration, action policies.Action) policies.Rule {
	t.Helper()
	r, err := policies.NewDeadline(policies.Meta{Name: "timeout", Severity: policies.SeverityHigh, Action: action}, d)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestExitCodes(t *testing.T) {
	tests := []struct {
		name   string
		mode   []string
		code   int
		reason telemetry.Reason
		signal string
	}{
		{"success", []string{"exit", "0"}, 0, telemetry.ReasonExited, ""},
		{"own code", []string{"exit", "3"}, 3, telemetry.ReasonExited, ""},
		{"code 255", []string{"exit", "255"}, 255, telemetry.ReasonExited, ""},
		{"SIGKILL", []string{"kill-self", "9"}, 137, telemetry.ReasonSignaled, "SIGKILL"},
		{"SIGTERM", []string{"kill-self", "15"}, 143, telemetry.ReasonSignaled, "SIGTERM"},
		{"SIGHUP", []string{"kill-self", "1"}, 129, telemetry.ReasonSignaled, "SIGHUP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.mode...)
			res := h.run(t)
			if res.Exit != tt.code || res.Reason != tt.reason || res.Signal != tt.signal {
				t.Errorf("got exit %d reason %s signal %q, want %d %s %q", res.Exit, res.Reason, res.Signal, tt.code, tt.reason, tt.signal)
			}
			if res.PID == 0 || res.End.Before(res.Start) {
				t.Errorf("result lacks pid or times: %+v", res)
			}
		})
	}
}

func TestStartErrors(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "script.sh")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\necho hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		command []string
		code    int
		err     error
	}{
		{"not in PATH", []string{"prism-no-such-command-xyz"}, 127, ErrNotFound},
		{"missing path", []string{filepath.Join(dir, "missing")}, 127, ErrNotFound},
		{"not executable", []string{notExec}, 126, ErrCannotRun},
		{"a directory", []string{dir}, 126, ErrCannotRun},
		{"empty", []string{}, 125, ErrConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.cfg.Command = tt.command
			res, err := Run(context.Background(), h.cfg)
			if !errors.Is(err, tt.err) {
				t.Fatalf("error = %v, want %v", err, tt.err)
			}
			if res == nil || res.Exit != tt.code || res.Reason != telemetry.ReasonError || res.Message == "" {
				t.Fatalf("result = %+v, want exit %d reason error", res, tt.code)
			}
		})
	}
}

func TestOutputPassesThrough(t *testing.T) {
	const n = 8 << 20
	h := newHarness(t, "randbytes", strconv.Itoa(n), "7")
	res := h.run(t)
	if res.Exit != 0 {
		t.Fatalf("exit %d", res.Exit)
	}
	if got := h.stdout.String(); got != string(testchild.RandomBytes(n, 7)) {
		t.Fatalf("stdout differs from what the child wrote (%d bytes, want %d)", len(got), n)
	}
}

func TestMarkersAreRecordedAndHidden(t *testing.T) {
	for _, hide := range []bool{false, true} {
		h := newHarness(t, "print", "hello", "PRISM iter=5 loss=0.25", "PRISM loss=nan", "PRISM broken", `PRISM {"iter":6}`)
		h.cfg.HideMarkers = hide
		res := h.run(t)
		want := "hello\nPRISM iter=5 loss=0.25\nPRISM loss=nan\nPRISM broken\nPRISM {\"iter\":6}\n"
		if hide {
			want = "hello\nPRISM broken\n"
		}
		if got := h.stdout.String(); got != want {
			t.Errorf("hide=%v: stdout %q, want %q", hide, got, want)
		}
		if m := res.Markers["iter"]; m.Count != 2 || m.Last != 6 {
			t.Errorf("iter marker = %+v", m)
		}
		if res.MalformedMarkers != 1 {
			t.Errorf("malformed = %d, want 1", res.MalformedMarkers)
		}
		// The report must encode, NaN included.
		if _, err := json.Marshal(res); err != nil {
			t.Errorf("result does not encode: %v", err)
		}
	}
}

func TestChildEnvironment(t *testing.T) {
	h := newHarness(t, "env", EnvRunID, EnvSeed, EnvControl, EnvCheckpointDir, EnvRestartCount, EnvMission, EnvResume)
	h.cfg.Env = append(h.cfg.Env, "PRISM_RUN_ID=outer", "PRISM_RESUME=/stale")
	h.cfg.Mission = "world-record"
	res := h.run(t)
	out := h.stdout.String()
	for _, want := range []string{
		"PRISM_RUN_ID=" + h.cfg.RunID + "\n",
		"PRISM_SEED=42\n",
		"PRISM_RESTART_COUNT=0\n",
		"PRISM_MISSION=world-record\n",
		"PRISM_RESUME=<unset>\n",
		"PRISM_CONTROL=/",
		"PRISM_CHECKPOINT_DIR=/",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("child environment lacks %q:\n%s", want, out)
		}
	}
	// Nothing was checkpointed, so the per-run folder is gone.
	if res.CheckpointDir != "" || res.ControlFile != "" {
		t.Errorf("empty run folder kept: %+v", res)
	}
}

func TestTimeoutWithAcknowledgedCheckpointIsResumable(t *testing.T) {
	h := newHarness(t, "checkpoint", "ack")
	h.cfg.Rules = []policies.Rule{onReady(t, "timeout", policies.ActionCheckpointStop)}
	res := h.run(t)
	if res.Exit != ExitResumable || res.Reason != telemetry.ReasonPolicy || res.Rule != "timeout" {
		t.Fatalf("got %d %s %q, want 75 policy timeout\nlogs:\n%s", res.Exit, res.Reason, res.Rule, h.logs)
	}
	if len(res.Checkpoints) != 1 || res.Checkpoints[0].Rule != "timeout" {
		t.Fatalf("checkpoints = %+v", res.Checkpoints)
	}
	// The checkpoint is kept, and so is the run folder holding it.
	if _, err := os.Stat(res.Checkpoints[0].Path); err != nil {
		t.Errorf("checkpoint file: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(filepath.Dir(res.ControlFile)) })
	lines := readControl(t, res.ControlFile)
	if len(lines) != 2 || lines[0].Action != "checkpoint" || lines[0].Signal != "SIGUSR1" || lines[0].Rule != "timeout" ||
		lines[1].Action != "stop" || lines[1].Signal != "SIGTERM" {
		t.Errorf("control lines = %+v", lines)
	}
	// The child read the control line before acting on the signal.
	if !strings.Contains(h.stdout.String(), `control: {"seq":1,"action":"checkpoint","signal":"SIGUSR1","rule":"timeout"`) {
		t.Errorf("child did not see the control line:\n%s", h.stdout)
	}
}

func readControl(t *testing.T, path string) []ControlLine {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []ControlLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l ControlLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("control line %q: %v", sc.Text(), err)
		}
		out = append(out, l)
	}
	return out
}

// A shell wrapper that runs the program without exec does not handle
// SIGUSR1 (its default action would kill it): the checkpoint request goes
// to the program below it, which acknowledges it, and the wrapper is
// spared.
func TestCheckpointReachesTheProgramBelowAWrapper(t *testing.T) {
	h := newHarness(t)
	h.cfg.Command = []string{"sh", "-c", `"$0" checkpoint ack; echo wrapper-done`, os.Args[0]}
	h.cfg.Rules = []policies.Rule{onReady(t, "ready", policies.ActionCheckpointStop)}
	res := h.run(t)
	t.Cleanup(func() { os.RemoveAll(filepath.Dir(res.ControlFile)) })
	if res.Exit != ExitResumable || len(res.Checkpoints) != 1 {
		t.Fatalf("exit %d, %d checkpoints; want 75 with one\nlogs:\n%s", res.Exit, len(res.Checkpoints), h.logs)
	}
	if !strings.Contains(h.logs.String(), "sent to the processes below it that do") {
		t.Errorf("the log does not say where the signal went:\n%s", h.logs)
	}
	// The wrapper lived until the stop's SIGTERM: SIGUSR1 did not kill it.
	if res.Signal != "SIGTERM" {
		t.Errorf("the wrapper died of %q, want SIGTERM", res.Signal)
	}
}

// Neither the wrapper nor anything below it handles SIGUSR1: nothing is
// sent (a request must never be what kills the job), no control line is
// written for it, and the stop goes straight to SIGTERM.
func TestCheckpointWithNoHandlerInTheTree(t *testing.T) {
	h := newHarness(t)
	h.cfg.Command = []string{"sh", "-c", "sleep 30; echo never"}
	h.cfg.Rules = []policies.Rule{deadline(t, 200*time.Millisecond, policies.ActionCheckpointStop)}
	res := h.run(t)
	if res.Exit != ExitPolicy || len(res.Checkpoints) != 0 {
		t.Fatalf("exit %d, %d checkpoints; want 124 with none\nlogs:\n%s", res.Exit, len(res.Checkpoints), h.logs)
	}
	if !strings.Contains(h.logs.String(), "neither the child nor any process it started handles it") {
		t.Errorf("the log does not say why nothing was sent:\n%s", h.logs)
	}
}

// A program that never handles SIGUSR1 misses every periodic request;
// the log says so once at warning level, not once per period.
func TestNoHandlerWarnedOnce(t *testing.T) {
	every, _ := policies.NewPeriodic(policies.Meta{Name: "checkpoint-every", Action: policies.ActionCheckpoint}, 30*time.Millisecond)
	h := newHarness(t)
	h.cfg.Command = []string{"sh", "-c", "sleep 0.5"}
	h.cfg.Rules = []policies.Rule{every}
	h.run(t)
	warns, debugs := 0, 0
	for _, l := range strings.Split(h.logs.String(), "\n") {
		if strings.Contains(l, "not sent: neither the child") {
			switch {
			case strings.Contains(l, `"level":"warn"`):
				warns++
			case strings.Contains(l, `"level":"debug"`):
				debugs++
			}
		}
	}
	if warns != 1 || debugs == 0 {
		t.Errorf("%d warnings and %d debug lines for the unsent requests, want 1 and some\n%s", warns, debugs, h.logs)
	}
}

func TestTimeoutWithoutAcknowledgementIs124(t *testing.T) {
	h := newHarness(t, "checkpoint", "silent")
	h.cfg.CheckpointTimeout = 200 * time.Millisecond
	h.cfg.Rules = []policies.Rule{onReady(t, "timeout", policies.ActionCheckpointStop)}
	res := h.run(t)
	if res.Exit != ExitPolicy || res.Reason != telemetry.ReasonPolicy || len(res.Checkpoints) != 0 {
		t.Fatalf("got %+v", res)
	}
	if !strings.Contains(h.logs.String(), "checkpoint not acknowledged in time") {
		t.Errorf("the log does not say the checkpoint timed out:\n%s", h.logs)
	}
}

func TestChildDyingOfCheckpointSignalIsPolicyStop(t *testing.T) {
	h := newHarness(t, "checkpoint", "die")
	h.cfg.Rules = []policies.Rule{onReady(t, "timeout", policies.ActionCheckpointStop)}
	if res := h.run(t); res.Exit != ExitPolicy || res.Reason != telemetry.ReasonPolicy {
		t.Fatalf("got %d %s, want 124 policy", res.Exit, res.Reason)
	}
}

func TestKillAfterEscalates(t *testing.T) {
	h := newHarness(t, "ignore-term", "1h")
	h.cfg.KillAfter = 200 * time.Millisecond
	h.cfg.Rules = []policies.Rule{onReady(t, "timeout", policies.ActionStop)}
	res := h.run(t)
	if res.Exit != ExitPolicy || !res.Escalated || res.Signal != "SIGKILL" {
		t.Fatalf("got exit %d escalated %v signal %q\nlogs:\n%s", res.Exit, res.Escalated, res.Signal, h.logs)
	}
}

func TestKillActionIsImmediate(t *testing.T) {
	h := newHarness(t, "ignore-term", "1h")
	h.cfg.KillAfter = time.Hour // must not be waited for
	h.cfg.Rules = []policies.Rule{deadline(t, 50*time.Millisecond, policies.ActionKill)}
	res := h.run(t)
	if res.Exit != ExitPolicy || res.Signal != "SIGKILL" || res.Escalated {
		t.Fatalf("got %+v", res)
	}
}

func TestRuleExitCodeOverrides(t *testing.T) {
	zero := 0
	r, _ := policies.NewDeadline(policies.Meta{Name: "budget", Action: policies.ActionStop, ExitCode: &zero}, 50*time.Millisecond)
	h := newHarness(t, "checkpoint", "silent")
	h.cfg.Rules = []policies.Rule{r}
	if res := h.run(t); res.Exit != 0 || res.Reason != telemetry.ReasonPolicy || res.Rule != "budget" {
		t.Fatalf("got %d %s %q", res.Exit, res.Reason, res.Rule)
	}
}

func TestPeriodicCheckpoints(t *testing.T) {
	every, _ := policies.NewPeriodic(policies.Meta{Name: "checkpoint-every", Action: policies.ActionCheckpoint}, 100*time.Millisecond)
	h := newHarness(t, "checkpoint", "ack")
	// 1.5s: room for a slow start and still several periods. The test
	// child is a Go program: its runtime catches SIGUSR1 from its first
	// instruction (so the request is sent) and drops it until
	// signal.Notify runs, so a request that early is never acknowledged;
	// a short checkpoint timeout lets the next periods' requests go out.
	h.cfg.CheckpointTimeout = 300 * time.Millisecond
	h.cfg.Rules = []policies.Rule{every, deadline(t, 1500*time.Millisecond, policies.ActionStop)}
	res := h.run(t)
	t.Cleanup(func() { os.RemoveAll(filepath.Dir(res.ControlFile)) })
	if len(res.Checkpoints) < 3 {
		t.Fatalf("%d checkpoints in 1.5s at one per 100ms\nlogs:\n%s", len(res.Checkpoints), h.logs)
	}
	for _, c := range res.Checkpoints {
		if c.Rule != "checkpoint-every" {
			t.Errorf("checkpoint %+v not attributed to the periodic rule", c)
		}
	}
	// A plain stop sends no checkpoint request: not resumable.
	if res.Exit != ExitPolicy {
		t.Errorf("exit %d, want 124", res.Exit)
	}
}

// Signals sent to prism-run reach the child's group: USR2 is forwarded,
// USR1 is a checkpoint request, and a terminating one (HUP, INT, QUIT,
// TERM) is forwarded and starts the stop: a child that does not end gets
// SIGKILL after kill-after, and the code is the child's own.
func TestSignalsAreForwarded(t *testing.T) {
	for _, term := range []syscall.Signal{syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTERM} {
		t.Run(signame(term), func(t *testing.T) {
			dir := t.TempDir()
			ready := filepath.Join(dir, "ready")
			h := newHarness(t, "signals", ready)
			h.cfg.KillAfter = 300 * time.Millisecond
			sigs := make(chan os.Signal, 8)
			h.cfg.Signals = sigs
			done := make(chan *telemetry.Report)
			go func() {
				res, _ := Run(context.Background(), h.cfg)
				done <- res
			}()
			waitFor(t, func() bool { _, err := os.Stat(ready); return err == nil })
			for _, sig := range []syscall.Signal{syscall.SIGUSR2, syscall.SIGUSR1, term} {
				sigs <- sig
				// One at a time: signals that arrive together may be seen in any order.
				waitFor(t, func() bool { return strings.Contains(h.stdout.String(), "got "+signame(sig)) })
			}
			res := <-done
			if strings.Join(res.Forwarded, " ") != "SIGUSR2 SIGUSR1 "+signame(term) {
				t.Errorf("forwarded = %v", res.Forwarded)
			}
			if term == syscall.SIGTERM {
				// The child exits 0 by itself on TERM: its own code.
				if res.Exit != 0 || res.Reason != telemetry.ReasonExited || res.Killed {
					t.Errorf("got %d %s killed=%v", res.Exit, res.Reason, res.Killed)
				}
				return
			}
			// It handles the others and goes on: SIGKILL after kill-after.
			if res.Exit != 137 || res.Reason != telemetry.ReasonSignaled || !res.Killed || !res.Escalated {
				t.Errorf("got %d %s killed=%v escalated=%v\nlogs:\n%s", res.Exit, res.Reason, res.Killed, res.Escalated, h.logs)
			}
		})
	}
}

func signame(s syscall.Signal) string {
	return map[syscall.Signal]string{syscall.SIGHUP: "SIGHUP", syscall.SIGINT: "SIGINT", syscall.SIGQUIT: "SIGQUIT",
		syscall.SIGUSR1: "SIGUSR1", syscall.SIGUSR2: "SIGUSR2", syscall.SIGTERM: "SIGTERM"}[s]
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met in 10s")
}

func TestDetachedDescendantsAreKilled(t *testing.T) {
	pidfile := filepath.Join(t.TempDir(), "daemon.pid")
	h := newHarness(t, "escape", pidfile)
	h.cfg.KillAfter = 200 * time.Millisecond // the daemon ignores SIGTERM
	res := h.run(t)
	if res.Exit != 0 || res.Leftovers != 1 {
		t.Fatalf("got exit %d leftovers %d\nlogs:\n%s", res.Exit, res.Leftovers, h.logs)
	}
	requireGone(t, pidfile)
}

// requireGone checks that the daemon whose pid is in pidfile no longer
// runs once Run has returned: gone, or dead and not yet reaped (a zombie
// this test process adopted as subreaper, which its reaper takes
// asynchronously; kill(2) still finds a zombie).
func requireGone(t *testing.T, pidfile string) {
	t.Helper()
	b, err := os.ReadFile(pidfile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if st, err := procfs.ReadStat("/proc", pid); err == nil && !st.Dead() {
		t.Errorf("daemon %d still runs after Run returned (state %c)", pid, st.State)
	}
}

func TestDegradeSendsSIGUSR2WithWhat(t *testing.T) {
	r, _ := policies.NewMax(policies.Meta{Name: "slow", Action: policies.ActionDegrade, What: "reduce-precision"}, "iter", -1)
	h := newHarness(t, "checkpoint", "silent")
	h.cfg.Rules = []policies.Rule{r, deadline(t, time.Second, policies.ActionStop)}
	h.run(t)
	if !strings.Contains(h.stdout.String(), `"action":"degrade","signal":"SIGUSR2","rule":"slow","what":"reduce-precision"`) {
		t.Errorf("child did not get the degrade request:\n%s", h.stdout)
	}
}

func TestCancel(t *testing.T) {
	h := newHarness(t, "sleep", "1h")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	res, err := Run(ctx, h.cfg)
	if !errors.Is(err, ErrCancelled) || res.Exit != ExitInternal {
		t.Fatalf("got %v, %+v", err, res)
	}
}

func TestCheckpointDirGiven(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ck")
	h := newHarness(t, "checkpoint", "ack")
	h.cfg.CheckpointDir = dir
	h.cfg.Rules = []policies.Rule{onReady(t, "timeout", policies.ActionCheckpointStop)}
	res := h.run(t)
	if res.Exit != ExitResumable || filepath.Dir(res.Checkpoints[0].Path) != dir {
		t.Fatalf("got %d, checkpoints %+v", res.Exit, res.Checkpoints)
	}
	// The folder prism-run made for the control file is gone; the user's
	// checkpoint folder is not.
	if res.ControlFile != "" {
		t.Errorf("control file kept: %s", res.ControlFile)
	}
	if _, err := os.Stat(res.Checkpoints[0].Path); err != nil {
		t.Error(err)
	}
}

func rl(t *testing.T, name string, v uint64) limits.Rlimit {
	t.Helper()
	r, err := limits.NewRlimit(name, v)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// The child sees exactly the limits asked for, nofile included (Go would
// otherwise hand children its own saved soft limit back).
func TestRlimitsReachTheChild(t *testing.T) {
	h := newHarness(t, "rlimits")
	h.cfg.Rlimits = []limits.Rlimit{rl(t, "nofile", 77), rl(t, "core", 0), rl(t, "fsize", 1<<30), rl(t, "as", 8<<30), rl(t, "cpu_time", 3600), rl(t, "nproc", 5000)}
	res := h.run(t)
	out := h.stdout.String()
	for _, want := range []string{"nofile=77:77\n", "core=0:0\n", "fsize=1073741824:1073741824\n", "as=8589934592:8589934592\n", "cpu_time=3600:3600\n", "nproc=5000:5000\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("child's limits lack %q:\n%s", want, out)
		}
	}
	if res.Exit != 0 {
		t.Errorf("exit %d", res.Exit)
	}
}

// Without a nofile limit the child gets the soft limit prism-run itself
// was started with, not the one the Go runtime raised itself to, with and
// without the shim.
func TestNofileUnchangedWithoutTheFlag(t *testing.T) {
	// What this test process was given is what its parent has.
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", os.Getppid()))
	if err != nil {
		t.Skip(err)
	}
	var soft string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); strings.HasPrefix(line, "Max open files") && len(f) >= 5 {
			soft = f[3]
		}
	}
	for _, shim := range []bool{false, true} {
		h := newHarness(t, "rlimits")
		h.cfg.NoNewPrivs = shim // a setting that needs the shim
		h.run(t)
		if !strings.Contains(h.stdout.String(), "nofile="+soft+":") {
			t.Errorf("shim=%v: child has %q, want the original soft limit %s", shim, h.stdout, soft)
		}
	}
}

func TestNoNewPrivs(t *testing.T) {
	for _, on := range []bool{false, true} {
		h := newHarness(t, "status")
		h.cfg.NoNewPrivs = on
		h.run(t)
		want := "NoNewPrivs: 0\n"
		if on {
			want = "NoNewPrivs: 1\n"
		}
		if !strings.Contains(h.stdout.String(), want) {
			t.Errorf("no_new_privs=%v: child status %q", on, h.stdout)
		}
	}
}

func TestUser(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to change user")
	}
	uid, gid := 65534, 65534
	// The other user must be able to run the test binary: a copy in a
	// folder it can enter.
	dir, err := os.MkdirTemp("", "prism-user-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin := filepath.Join(dir, "child")
	data, err := os.ReadFile(os.Args[0])
	if err == nil {
		err = os.WriteFile(bin, data, 0o755)
	}
	if err == nil {
		err = os.Chmod(dir, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, "status")
	h.cfg.Command[0] = bin
	h.cfg.UID, h.cfg.GID = &uid, &gid
	h.run(t)
	if !strings.Contains(h.stdout.String(), "uid=65534 gid=65534") {
		t.Errorf("child ran as %q", h.stdout)
	}

	// The protocol works for that user: it reads the control file and
	// writes its checkpoint, so a checkpoint-stop is resumable (75), as
	// it is for root.
	h = newHarness(t, "checkpoint", "ack")
	h.cfg.Command[0] = bin
	h.cfg.UID, h.cfg.GID = &uid, &gid
	h.cfg.Rules = []policies.Rule{onReady(t, "ready", policies.ActionCheckpointStop)}
	res := h.run(t)
	t.Cleanup(func() { os.RemoveAll(filepath.Dir(res.CheckpointDir)) })
	if res.Exit != ExitResumable || len(res.Checkpoints) != 1 || !strings.Contains(h.stdout.String(), `control: {"seq":1,"action":"checkpoint"`) {
		t.Fatalf("as another user: exit %d, checkpoints %v\nstdout:\n%s\nlogs:\n%s", res.Exit, res.Checkpoints, h.stdout, h.logs)
	}
	if fi, err := os.Stat(res.Checkpoints[0].Path); err != nil || fi.Sys().(*syscall.Stat_t).Uid != uint32(uid) {
		t.Errorf("checkpoint %v not written by the child's user", res.Checkpoints[0].Path)
	}

	// A checkpoint folder prism-run makes, parents and all, is the
	// child's too (once only the last folder was, under root's 0700).
	h = newHarness(t, "checkpoint", "ack")
	h.cfg.Command[0] = bin
	h.cfg.UID, h.cfg.GID = &uid, &gid
	h.cfg.CheckpointDir = filepath.Join(dir, "new", "sub")
	h.cfg.Rules = []policies.Rule{onReady(t, "ready", policies.ActionCheckpointStop)}
	if res := h.run(t); res.Exit != ExitResumable {
		t.Errorf("nested checkpoint folder: exit %d\nstdout:\n%s", res.Exit, h.stdout)
	}

	// A $TMPDIR the child's user cannot pass through is refused before the
	// start, saying why, instead of checkpoints that never come.
	closed := t.TempDir() // 0700, root's
	t.Setenv("TMPDIR", closed)
	h = newHarness(t, "checkpoint", "ack")
	h.cfg.Command[0] = bin
	h.cfg.UID, h.cfg.GID = &uid, &gid
	res, err = Run(context.Background(), h.cfg)
	if !errors.Is(err, ErrSetup) || res.Exit != 125 || !strings.Contains(err.Error(), "cannot pass through "+filepath.Dir(closed)) {
		t.Errorf("unreachable TMPDIR: %v, exit %d", err, res.Exit)
	}
}

// Through the shim, 126 and 127 keep their meaning.
func TestShimStartErrors(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "script.sh")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		cmd  string
		code int
		err  error
	}{{filepath.Join(dir, "missing"), 127, ErrNotFound}, {notExec, 126, ErrCannotRun}, {"prism-no-such-command", 127, ErrNotFound}} {
		h := newHarness(t)
		h.cfg.Command = []string{tt.cmd}
		h.cfg.NoNewPrivs = true
		res, err := Run(context.Background(), h.cfg)
		if !errors.Is(err, tt.err) || res.Exit != tt.code {
			t.Errorf("%s: %v, exit %d; want %v, %d", tt.cmd, err, res.Exit, tt.err, tt.code)
		}
	}
}

// A confinement the shim cannot apply is prism-run's own failure (125,
// with the cause), never the command's 126 or 127: a limit the kernel
// refuses, a cgroup that cannot be joined (its cgroup.procs gone: ENOENT,
// which once read as "command not found").
func TestConfinementFailuresAre125(t *testing.T) {
	h := newHarness(t, "exit", "0")
	h.cfg.Rlimits = []limits.Rlimit{{Name: "nofile", Resource: syscall.RLIMIT_NOFILE, Cur: 10, Max: 5}}
	res, err := Run(context.Background(), h.cfg)
	if !errors.Is(err, ErrSetup) || !strings.Contains(err.Error(), "rlimit: nofile=10") || res.Exit != 125 {
		t.Errorf("bad rlimit: %v, exit %d", err, res.Exit)
	}
	h = newHarness(t, "exit", "0")
	h.cfg.Cgroup = &fakeCgroup{dir: filepath.Join(t.TempDir(), "gone")}
	res, err = Run(context.Background(), h.cfg)
	if !errors.Is(err, ErrSetup) || !strings.Contains(err.Error(), "cgroup: join") || res.Exit != 125 {
		t.Errorf("cgroup join: %v, exit %d", err, res.Exit)
	}
}

func TestCleanEnv(t *testing.T) {
	h := newHarness(t, "environ")
	h.cfg.Env = []string{"PATH=/usr/bin:/bin", "HOME=/root", "SECRET=hunter2", "LANG=C.UTF-8", "AWS_KEY=x", "PRISM_TESTCHILD=1", "GORACE=atexit_sleep_ms=0", "KEEP_ME=yes"}
	h.cfg.CleanEnv = true
	h.cfg.KeepEnv = []string{"KEEP_ME", "EXTRA=1", "HOME=/scratch"}
	h.run(t)
	out := h.stdout.String()
	for _, want := range []string{"PATH=/usr/bin:/bin\n", "LANG=C.UTF-8\n", "KEEP_ME=yes\n", "EXTRA=1\n", "HOME=/scratch\n", "PRISM_RUN_ID="} {
		if !strings.Contains(out, want) {
			t.Errorf("clean environment lacks %q:\n%s", want, out)
		}
	}
	for _, bad := range []string{"SECRET", "AWS_KEY", "GORACE", "HOME=/root"} {
		if strings.Contains(out, bad) {
			t.Errorf("clean environment has %s:\n%s", bad, out)
		}
	}
}

// fakeCgroup stands in for the run's cgroup: v1-like, so the shim joins
// it by writing its pid to files in a test folder.
type fakeCgroup struct {
	dir     string
	mu      sync.Mutex
	usage   limits.Usage // what it reports after the first read
	perRead uint64       // OOM kills added by every read after the first
	reads   int
	kills   int
	deleted bool
	// atDeath: the OOM kills happen as the child in cgroup.procs dies
	// (none are counted while it lives), as when it is the victim.
	atDeath bool
}

func (f *fakeCgroup) Mode() limits.Mode    { return limits.ModeV1 }
func (f *fakeCgroup) Path() string         { return "/fake/prism-run-test" }
func (f *fakeCgroup) Dir() string          { return "" }
func (f *fakeCgroup) ProcsFiles() []string { return []string{filepath.Join(f.dir, "cgroup.procs")} }
func (f *fakeCgroup) Procs() ([]int, error) {
	return nil, nil
}
func (f *fakeCgroup) Kill() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.kills++
	return nil
}
func (f *fakeCgroup) Usage() (limits.Usage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	if f.reads == 1 {
		return limits.Usage{OOMKills: 7}, nil // a count from before the run, not this run's
	}
	u := f.usage
	if f.atDeath && !f.childDead() {
		u.OOMKills = 0
	}
	u.OOMKills += 7 + f.perRead*uint64(f.reads-1)
	return u, nil
}

func (f *fakeCgroup) childDead() bool {
	b, err := os.ReadFile(f.ProcsFiles()[0])
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return err == nil && pid > 0 && procfs.IsDead(procfs.Root, pid)
}
func (f *fakeCgroup) Delete() error { f.deleted = true; return nil }

// The main child's death is the OOM killer's only when the evidence says
// so: the OOM count rose as it died (and the kernel log, when read, did
// not name another process for it). A worker's OOM kill earlier in the run
// is recorded, and does not make a later SIGKILL from someone else "oom".
func TestOOMAttribution(t *testing.T) {
	worker := &fakeKillLog{kills: []limits.OOMKill{kl0(11)}}
	tests := []struct {
		name    string
		mode    []string
		oom     uint64
		atDeath bool
		log     *fakeKillLog
		exit    int
		reason  telemetry.Reason
	}{
		{"main child OOM-killed", []string{"kill-self", "9", "200ms"}, 1, true, nil, 137, telemetry.ReasonOOM},
		{"SIGKILL without an OOM kill", []string{"kill-self", "9"}, 0, false, nil, 137, telemetry.ReasonSignaled},
		{"a worker OOM-killed, main exits", []string{"exit", "0"}, 1, false, nil, 0, telemetry.ReasonExited},
		{"a worker OOM-killed, then main killed by someone", []string{"kill-self", "9", "300ms"}, 1, false, nil, 137, telemetry.ReasonSignaled},
		{"a kill as main died, but the log names a worker", []string{"kill-self", "9", "200ms"}, 1, true, worker, 137, telemetry.ReasonSignaled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cg := &fakeCgroup{dir: t.TempDir(), usage: limits.Usage{OOMKills: tt.oom, MemoryPeak: 5 << 20}, atDeath: tt.atDeath}
			h := newHarness(t, tt.mode...)
			h.cfg.Cgroup, h.cfg.CgroupLimits = cg, limits.CgroupSpec{Memory: 4 << 20}
			if tt.log != nil {
				h.cfg.KillLog = tt.log
			}
			res := h.run(t)
			if res.Exit != tt.exit || res.Reason != tt.reason {
				t.Fatalf("exit %d reason %s, want %d %s (%s)", res.Exit, res.Reason, tt.exit, tt.reason, res.Message)
			}
			if res.Cgroup == nil || res.Cgroup.OOMKills != tt.oom || res.Cgroup.MemoryPeak != 5<<20 || res.Cgroup.MemoryLimit != 4<<20 {
				t.Errorf("cgroup report %+v", res.Cgroup)
			}
			if tt.reason == telemetry.ReasonOOM && !strings.Contains(res.Message, "memory limit 4194304 bytes, peak 5242880 bytes") {
				t.Errorf("message %q", res.Message)
			}
			oomDecisions := 0
			for _, d := range res.Decisions {
				if d.Rule == "oom" {
					oomDecisions++
				}
			}
			if oomDecisions != int(tt.oom) {
				t.Errorf("%d oom violations recorded, want %d", oomDecisions, tt.oom)
			}
			// The shim joined the child to the cgroup before exec, and the
			// cgroup was removed at the end.
			if b, _ := os.ReadFile(cg.ProcsFiles()[0]); strings.TrimSpace(string(b)) != strconv.Itoa(res.PID) {
				t.Errorf("cgroup.procs holds %q, want the child's pid %d", b, res.PID)
			}
			if !cg.deleted {
				t.Error("cgroup not deleted")
			}
		})
	}
}

// steppingClock advances by step on every reading: a run of a few hundred
// milliseconds spans minutes of its time.
type steppingClock struct {
	clock.RealClock // timers and tickers in real time
	mu              sync.Mutex
	now             time.Time
	step            time.Duration
}

func (c *steppingClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(c.step)
	return c.now
}

// Workers OOM-killed in a loop give one violation record at the first kill,
// then at most one per recordEvery, and the records together count
// every kill.
func TestOOMRecordsAreRateLimited(t *testing.T) {
	cg := &fakeCgroup{dir: t.TempDir(), perRead: 3}
	clock := &steppingClock{now: time.Unix(1e9, 0), step: 500 * time.Millisecond}
	h := newHarness(t, "sleep", "500ms")
	h.cfg.Cgroup, h.cfg.Clock = cg, clock
	start := clock.Now()
	res := h.run(t)
	span := clock.Now().Sub(start)

	killRe := regexp.MustCompile(`OOM-killed (\d+) process`)
	records, counted := 0, uint64(0)
	for _, d := range res.Decisions {
		if d.Rule != "oom" {
			continue
		}
		records++
		m := killRe.FindStringSubmatch(d.Reason)
		if m == nil {
			t.Fatalf("record without a count: %q", d.Reason)
		}
		n, _ := strconv.ParseUint(m[1], 10, 64)
		counted += n
	}
	if res.Cgroup.OOMKills < 10 {
		t.Fatalf("only %d OOM kills seen; the fake cgroup was read too rarely", res.Cgroup.OOMKills)
	}
	if counted != res.Cgroup.OOMKills {
		t.Errorf("records count %d kills, the run saw %d", counted, res.Cgroup.OOMKills)
	}
	// The first, one per interval of the clock's span, and the final flush.
	if most := 2 + int(span/recordEvery); records < 2 || records > most {
		t.Errorf("%d OOM records over %v of clock time, want 2..%d", records, span, most)
	}
}

// fakeKillLog hands out its kills on the first read.
type fakeKillLog struct {
	mu    sync.Mutex
	kills []limits.OOMKill
}

func (f *fakeKillLog) OOMKills() []limits.OOMKill {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := f.kills
	f.kills = nil
	return k
}

// The victims the kernel log names in the run's cgroup reach the report
// and the violation record; kills elsewhere on the host do not.
func TestOOMVictimsNamed(t *testing.T) {
	cg := &fakeCgroup{dir: t.TempDir(), usage: limits.Usage{OOMKills: 2}}
	kl := &fakeKillLog{kills: []limits.OOMKill{
		{PID: 11, Task: "worker", Cgroup: "/slurm/job_1/prism-run-test"},
		{PID: 12, Task: "other-job", Cgroup: "/slurm/job_2"},
		{PID: 13, Task: "worker", Cgroup: "/slurm/job_1/prism-run-test"},
	}}
	h := newHarness(t, "sleep", "100ms")
	h.cfg.Cgroup, h.cfg.KillLog = cg, kl
	res := h.run(t)
	want := []limits.OOMKill{kl0(11), kl0(13)}
	if got := res.Cgroup.OOMVictims; len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("victims %+v, want %+v", got, want)
	}
	named := false
	for _, d := range res.Decisions {
		named = named || (d.Rule == "oom" && strings.HasSuffix(d.Reason, "the kernel log names pid 11 (worker), pid 13 (worker)"))
	}
	if !named {
		t.Errorf("no OOM record names the victims: %+v", res.Decisions)
	}
}

func kl0(pid int) limits.OOMKill {
	return limits.OOMKill{PID: pid, Task: "worker", Cgroup: "/slurm/job_1/prism-run-test"}
}

// A kill log that names none of the run's kills (the kernel rate-limited
// its line) is said so in the record.
func TestOOMVictimsRateLimitedByTheKernel(t *testing.T) {
	cg := &fakeCgroup{dir: t.TempDir(), usage: limits.Usage{OOMKills: 1}}
	h := newHarness(t, "sleep", "100ms")
	h.cfg.Cgroup, h.cfg.KillLog = cg, &fakeKillLog{}
	res := h.run(t)
	found := false
	for _, d := range res.Decisions {
		found = found || (d.Rule == "oom" && strings.HasSuffix(d.Reason, "the kernel log named none (it rate-limits that line, host-wide)"))
	}
	if !found || len(res.Cgroup.OOMVictims) != 0 {
		t.Errorf("decisions %+v, victims %+v", res.Decisions, res.Cgroup.OOMVictims)
	}
}

// The running OOM-kill count reaches the rules: "stop after the third".
func TestOOMKillsReachRules(t *testing.T) {
	cg := &fakeCgroup{dir: t.TempDir(), perRead: 1}
	rule, err := policies.NewMax(policies.Meta{Name: "too-many-ooms", Action: policies.ActionStop}, policies.NameOOMKills, 3)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, "sleep", "30s")
	h.cfg.Cgroup, h.cfg.Rules = cg, []policies.Rule{rule}
	res := h.run(t)
	if res.Exit != 124 || res.Reason != telemetry.ReasonPolicy || res.Rule != "too-many-ooms" {
		t.Fatalf("exit %d reason %s rule %q, want 124 policy too-many-ooms (%s)", res.Exit, res.Reason, res.Rule, res.Message)
	}
}

// A real v2 cgroup, controllers aside: the unified hierarchy of a hybrid
// host (this project's CI machine has one; a pure v2 host runs the cgroup
// testscript instead). The child is in the run's cgroup from its start
// (clone3 CLONE_INTO_CGROUP), a daemon it detaches dies with the run, and
// the cgroup is removed.
func TestRealV2CgroupRun(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
	host, err := limits.ReadHost()
	if err != nil || host.Hierarchy.Mode != limits.ModeV1 || host.Hierarchy.Unified.Point == "" {
		t.Skipf("not a hybrid host (%v)", err)
	}
	v2 := limits.Host{Hierarchy: limits.Hierarchy{Mode: limits.ModeV2, Unified: host.Hierarchy.Unified}, OwnV2: host.OwnV2, Self: host.Self}
	name := v2.RunCgroupName("v2run-" + strconv.FormatInt(time.Now().UnixNano(), 36))
	cg, err := limits.NewCgroup(v2, name, limits.CgroupSpec{})
	if err != nil {
		t.Skipf("cannot create a cgroup in the unified hierarchy here: %v", err)
	}
	t.Cleanup(func() {
		if _, err := os.Stat(cg.Dir()); err == nil {
			_ = cg.Kill()
			_ = cg.Delete()
		}
	})

	pidfile := filepath.Join(t.TempDir(), "daemon.pid")
	h := newHarness(t)
	h.cfg.Command = []string{"sh", "-c", `grep ^0:: /proc/self/cgroup; "$0" escape "$1"`, os.Args[0], pidfile}
	h.cfg.Cgroup, h.cfg.KillAfter = cg, 200*time.Millisecond
	res := h.run(t)
	if res.Exit != 0 || res.Cgroup == nil || res.Cgroup.Mode != "v2" {
		t.Fatalf("exit %d, cgroup %+v\nlogs:\n%s", res.Exit, res.Cgroup, h.logs)
	}
	if want := "0::" + cg.Path() + "\n"; !strings.HasPrefix(h.stdout.String(), want) {
		t.Errorf("the child's cgroup: %q, want %q", h.stdout.String(), want)
	}
	requireGone(t, pidfile)
	if _, err := os.Stat(cg.Dir()); !os.IsNotExist(err) {
		t.Errorf("the run's cgroup %s was not removed", cg.Dir())
	}
}
