package supervisor

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	testclock "k8s.io/utils/clock/testing"

	"github.com/prism-run/prism-run/policies"
	"github.com/prism-run/prism-run/telemetry"
)

var r0 = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

func plan(mut func(*policies.RecoveryPlan)) policies.RecoveryPlan {
	p := policies.Recovery{}.Plan()
	p.Restart, p.Jitter = policies.RestartOnFailure, 0
	if mut != nil {
		mut(&p)
	}
	return p
}

func crash(code int, ran time.Duration) ended {
	return ended{outcome: Outcome{Reason: telemetry.ReasonExited, Code: code}, ran: ran}
}

// Backoff: 10s doubling to the maximum, reset by a healthy attempt; the
// failure budget; on a fake clock (times are given, nothing sleeps).
func TestBudgetBackoffAndReset(t *testing.T) {
	b := newBudget(plan(func(p *policies.RecoveryPlan) { p.MaxRestarts, p.BackoffMax = 100, 45*time.Second }), nil)
	now := r0
	var got []time.Duration
	for range 5 {
		now = now.Add(time.Minute)
		s := b.decide(crash(1, time.Second), now)
		if s.kind != stepRestart || !s.counted {
			t.Fatalf("step %+v: want a counted restart", s)
		}
		got = append(got, s.delay)
	}
	want := []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 45 * time.Second, 45 * time.Second}
	if !slices.Equal(got, want) {
		t.Errorf("delays %v, want %v", got, want)
	}
	// An attempt that ran healthy_after (10 min) resets the backoff.
	if s := b.decide(crash(1, 10*time.Minute), now.Add(time.Hour)); s.delay != 10*time.Second {
		t.Errorf("after a healthy attempt: delay %s, want 10s", s.delay)
	}
}

func TestBudgetJitterStaysInBounds(t *testing.T) {
	b := newBudget(plan(func(p *policies.RecoveryPlan) { p.MaxRestarts, p.Jitter, p.BackoffMax = 1000, 0.5, 30*time.Second }), nil)
	for i := range 200 {
		s := b.decide(crash(1, 0), r0.Add(time.Duration(i)*time.Hour))
		interval := min(10*time.Second<<min(i, 10), 30*time.Second)
		if lo := interval / 2; s.delay < lo || s.delay > 30*time.Second {
			t.Fatalf("restart %d: delay %s outside [%s, 30s]", i, s.delay, lo)
		}
	}
}

func TestBudgetExhaustedAndCrashLoop(t *testing.T) {
	tests := []struct {
		name      string
		mut       func(*policies.RecoveryPlan)
		every     time.Duration
		restarts  int
		verdict   string
		failsOver bool
	}{
		{"max_restarts", func(p *policies.RecoveryPlan) { p.MaxRestarts = 2 }, time.Hour, 2, "restarts exhausted: 3 failure(s), max_restarts = 2", false},
		{"none allowed", func(p *policies.RecoveryPlan) { p.MaxRestarts = 0 }, time.Hour, 0, "restarts exhausted", false},
		{"crash loop", func(p *policies.RecoveryPlan) { p.MaxRestarts, p.MaxRestartsPerHour = 100, 3 }, 10 * time.Minute, 3, "crash loop: 4 failures within an hour", false},
		{"slow failures are no loop", func(p *policies.RecoveryPlan) { p.MaxRestarts, p.MaxRestartsPerHour = 5, 3 }, 30 * time.Minute, 5, "restarts exhausted", false},
		{"exhausted fails over", func(p *policies.RecoveryPlan) { p.MaxRestarts, p.Fallback = 1, []string{"./backup"} }, time.Hour, 1, "restarts exhausted", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBudget(plan(tt.mut), nil)
			now := r0
			for i := 0; ; i++ {
				now = now.Add(tt.every)
				s := b.decide(crash(2, time.Second), now)
				if s.kind == stepRestart {
					continue
				}
				if i != tt.restarts || !strings.HasPrefix(s.verdict, tt.verdict) || (s.kind == stepFailover) != tt.failsOver {
					t.Fatalf("after %d restarts: %+v; want %d restarts, verdict %q, failover %v", i, s, tt.restarts, tt.verdict, tt.failsOver)
				}
				return
			}
		})
	}
}

// The budget carries over from an earlier invocation's state.
func TestBudgetCarriesFailures(t *testing.T) {
	b := newBudget(plan(func(p *policies.RecoveryPlan) { p.MaxRestarts = 2 }), []time.Time{r0, r0.Add(time.Minute)})
	if s := b.decide(crash(1, 0), r0.Add(time.Hour)); s.kind != stepEnd || s.verdict == "" {
		t.Errorf("third failure over the job: %+v, want the end", s)
	}
}

// What ends a child decides what follows, and what uses the budget: a
// preemption-like stop does not; a crash, an OOM, a policy kill do.
func TestWhatFollowsAnEnd(t *testing.T) {
	stop := func(a policies.Action, kind string) *policies.Decision {
		return &policies.Decision{Rule: "r", Kind: kind, Action: a, Since: r0}
	}
	policy := Outcome{Reason: telemetry.ReasonPolicy}
	tests := []struct {
		name    string
		mode    policies.RestartMode
		fb      []string
		e       ended
		kind    stepKind
		from    resumeFrom
		counted bool
	}{
		{"exit 0 ends", policies.RestartOnFailure, nil, crash(0, 0), stepEnd, 0, false},
		{"exit 0 always restarts, free", policies.RestartAlways, nil, crash(0, 0), stepRestart, fromNewest, false},
		{"crash, never: ends, recorded for the job", policies.RestartNever, nil, crash(3, 0), stepEnd, 0, true},
		{"crash, on-failure", policies.RestartOnFailure, nil, crash(3, 0), stepRestart, fromNewest, true},
		{"oom", policies.RestartOnFailure, nil, ended{outcome: Outcome{Reason: telemetry.ReasonOOM, Signal: unix.SIGKILL}}, stepRestart, fromNewest, true},
		{"outside SIGTERM after a checkpoint", policies.RestartOnFailure, nil, ended{outcome: Outcome{Reason: telemetry.ReasonSignaled, Signal: unix.SIGTERM}, preempted: true}, stepRestart, fromNewest, false},
		{"signal to prism-run ends", policies.RestartAlways, nil, ended{outcome: Outcome{Reason: telemetry.ReasonSignaled, Signal: unix.SIGTERM}, outside: true}, stepEnd, 0, false},
		{"restart acknowledged", policies.RestartNever, nil, ended{outcome: policy, decision: stop(policies.ActionRestart, "max"), preempted: true}, stepRestart, fromNewest, false},
		{"restart not acknowledged", policies.RestartNever, nil, ended{outcome: policy, decision: stop(policies.ActionRestart, "max")}, stepRestart, fromNewest, true},
		{"rollback", policies.RestartNever, nil, ended{outcome: policy, decision: stop(policies.ActionRollback, "monotonic")}, stepRestart, fromBefore, true},
		{"rerun-seed", policies.RestartNever, nil, ended{outcome: policy, decision: stop(policies.ActionRerunSeed, "max")}, stepRestart, fromScratch, true},
		{"GPU health fails over", policies.RestartOnFailure, []string{"b"}, ended{outcome: policy, decision: stop(policies.ActionKill, policies.KindHealth)}, stepFailover, 0, true},
		{"a policy stop ends, a failure", policies.RestartAlways, nil, ended{outcome: policy, decision: stop(policies.ActionStop, "max")}, stepEnd, 0, true},
		{"an acknowledged checkpoint-stop ends, no failure", policies.RestartAlways, nil, ended{outcome: Outcome{Reason: telemetry.ReasonPolicy, Acked: true}, decision: stop(policies.ActionCheckpointStop, "deadline")}, stepEnd, 0, false},
		{"a failover rule", policies.RestartNever, []string{"b"}, ended{outcome: policy, decision: stop(policies.ActionFailover, "max")}, stepFailover, 0, true},
		{"the fallback's failure ends, recorded", policies.RestartAlways, []string{"b"}, ended{outcome: Outcome{Reason: telemetry.ReasonExited, Code: 1}, failover: true}, stepEnd, 0, true},
		{"the fallback's success ends", policies.RestartAlways, []string{"b"}, ended{outcome: Outcome{Reason: telemetry.ReasonExited}, failover: true}, stepEnd, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBudget(plan(func(p *policies.RecoveryPlan) { p.Restart, p.Fallback = tt.mode, tt.fb }), nil)
			s := b.decide(tt.e, r0)
			if s.kind != tt.kind || s.counted != tt.counted || (s.kind == stepRestart && s.from != tt.from) {
				t.Errorf("got %+v; want kind %d from %d counted %v", s, tt.kind, tt.from, tt.counted)
			}
			if got := len(b.failures); got != map[bool]int{true: 1, false: 0}[tt.counted] {
				t.Errorf("%d failures recorded, counted = %v", got, tt.counted)
			}
		})
	}
}

func touch(t *testing.T, path string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Only acknowledged checkpoints are resumed from: a .tmp or a log file
// newer than the last acknowledged one is not; one that is gone is not.
func TestLedgerResumesOnlyAcknowledged(t *testing.T) {
	dir := t.TempDir()
	l := ledger{dir: dir}
	if l.newest() != "" {
		t.Fatal("an empty ledger has a checkpoint")
	}
	a := touch(t, filepath.Join(dir, "ck-1"))
	b := touch(t, filepath.Join(dir, "ck-2"))
	l.add(telemetry.Checkpoint{Path: a, Time: r0})
	l.add(telemetry.Checkpoint{Path: b, Time: r0.Add(time.Minute)})
	touch(t, filepath.Join(dir, "ck-3.tmp")) // newer, half-written
	touch(t, filepath.Join(dir, "train.log"))
	if got := l.newest(); got != b {
		t.Errorf("newest = %q, want %q (the newest acknowledged)", got, b)
	}
	if err := os.Remove(b); err != nil {
		t.Fatal(err)
	}
	if got := l.newest(); got != a {
		t.Errorf("newest with ck-2 gone = %q, want %q", got, a)
	}
}

// Rollback takes the newest checkpoint acknowledged before the violation
// began, not the newest, and the ones after are never resumed from again.
func TestLedgerRollback(t *testing.T) {
	dir := t.TempDir()
	l := ledger{dir: dir}
	for i := range 5 {
		l.add(telemetry.Checkpoint{Path: touch(t, filepath.Join(dir, "ck-"+string(rune('0'+i)))), Time: r0.Add(time.Duration(i) * time.Minute)})
	}
	since := r0.Add(2*time.Minute + time.Second) // entropy began to fall just after ck-2
	if got := l.before(since); got != filepath.Join(dir, "ck-2") {
		t.Fatalf("before = %q, want ck-2", got)
	}
	l.abandonAfter(since)
	if got := l.newest(); got != filepath.Join(dir, "ck-2") {
		t.Errorf("after the rollback, newest = %q, want ck-2 (ck-3 and ck-4 hold the bad state)", got)
	}
	if got := l.before(r0); got != "" {
		t.Errorf("before the first = %q, want none (start from the beginning)", got)
	}
}

// Retention keeps the newest N acknowledged checkpoints and the one a
// rollback may still need, deletes the older ones the child announced,
// and never deletes what was not acknowledged or lies outside the folder.
func TestLedgerRetention(t *testing.T) {
	dir := t.TempDir()
	outside := touch(t, filepath.Join(t.TempDir(), "precious"))
	l := ledger{dir: dir}
	l.add(telemetry.Checkpoint{Path: outside, Time: r0})
	var paths []string
	for i := range 6 {
		p := touch(t, filepath.Join(dir, "ck-"+string(rune('0'+i))))
		paths = append(paths, p)
		l.add(telemetry.Checkpoint{Path: p, Time: r0.Add(time.Duration(i+1) * time.Minute)})
	}
	stray := touch(t, filepath.Join(dir, "ck-9.tmp"))
	deleted, refused := l.prune(2, []time.Time{r0.Add(2*time.Minute + time.Second)})
	if want := []string{paths[0], paths[2], paths[3]}; !slices.Equal(deleted, want) {
		t.Errorf("deleted %v, want %v (ck-1 kept for a rollback, ck-4 and ck-5 the newest 2)", deleted, want)
	}
	if !slices.Equal(refused, []string{outside}) {
		t.Errorf("refused %v, want the checkpoint outside the folder", refused)
	}
	for _, p := range []string{outside, stray, paths[1], paths[4], paths[5]} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s: %v (must be kept)", p, err)
		}
	}
	for _, p := range deleted {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there", p)
		}
	}
}

// A checkpoint folder swapped for a symlink out of the checkpoint folder
// is removed as the link, not followed.
func TestLedgerRetentionFollowsNoLink(t *testing.T) {
	dir := t.TempDir()
	victim := t.TempDir()
	touch(t, filepath.Join(victim, "keep-me"))
	link := filepath.Join(dir, "ck-0")
	if err := os.Symlink(victim, link); err != nil {
		t.Fatal(err)
	}
	l := ledger{dir: dir}
	l.add(telemetry.Checkpoint{Path: link, Time: r0})
	l.add(telemetry.Checkpoint{Path: touch(t, filepath.Join(dir, "ck-1")), Time: r0.Add(time.Minute)})
	l.prune(1, nil)
	if _, err := os.Stat(filepath.Join(victim, "keep-me")); err != nil {
		t.Errorf("retention followed a symlink out of the folder: %v", err)
	}
}

// Two prism-runs on one state folder: the second refuses (125); once the
// first lets go, the next one reads what it wrote.
func TestStateLockAndRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	s1, st, err := openState(dir)
	if err != nil || st != nil {
		t.Fatalf("first: %v, state %v", err, st)
	}
	if _, _, err := openState(dir); !errors.Is(err, ErrSetup) || !strings.Contains(err.Error(), "in use by another prism-run (pid ") {
		t.Fatalf("second on the same folder: %v, want ErrSetup naming the holder", err)
	}
	want := &State{Command: []string{"solver"}, Seed: 7, Failures: []time.Time{r0},
		Checkpoints: []telemetry.Checkpoint{{Path: "/ck/1", Time: r0, Attempt: 2}}}
	if err := s1.write(want); err != nil {
		t.Fatal(err)
	}
	s1.close()
	s2, got, err := openState(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.close()
	if got == nil || got.Seed != 7 || len(got.Checkpoints) != 1 || got.Checkpoints[0].Attempt != 2 || !got.Failures[0].Equal(r0) {
		t.Errorf("read back %+v", got)
	}
	if err := os.WriteFile(filepath.Join(dir, stateFileName), []byte("{half"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.read(); !errors.Is(err, ErrSetup) || !strings.Contains(err.Error(), "move it away") {
		t.Errorf("a corrupt state: %v", err)
	}
}

// The backoff waits on the run's clock (timers included): on a fake clock
// no second child starts until the clock has moved past the delay, and
// then it does, from the checkpoint the first one acknowledged.
func TestBackoffWaitsOnTheRunsClock(t *testing.T) {
	clk := testclock.NewFakeClock(time.Now())
	ck := t.TempDir()
	h := newHarness(t)
	h.cfg.Command = []string{"sh", "-c", `if [ "$PRISM_RESTART_COUNT" = 1 ]; then echo "resume=$PRISM_RESUME"; exit 0; fi
echo x > "$PRISM_CHECKPOINT_DIR/ck"; echo "PRISM checkpoint=\"$PRISM_CHECKPOINT_DIR/ck\""; exit 3`}
	h.cfg.CheckpointDir, h.cfg.Clock = ck, clk
	h.cfg.Recovery = plan(func(p *policies.RecoveryPlan) { p.BackoffInitial = 10 * time.Minute; p.BackoffMax = time.Hour })
	done := make(chan *telemetry.Report, 1)
	go func() { done <- h.run(t) }()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(h.logs.String(), "waiting before the restart") {
		if time.Now().After(deadline) {
			t.Fatalf("no backoff began:\n%s", h.logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	clk.Step(9 * time.Minute) // within the 10 min
	time.Sleep(300 * time.Millisecond)
	if n := strings.Count(h.logs.String(), "child started"); n != 1 {
		t.Fatalf("%d children started before the backoff ran out", n)
	}
	clk.Step(2 * time.Minute)
	var rep *telemetry.Report
	select {
	case rep = <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("no restart after the backoff:\n%s", h.logs)
	}
	if want := "resume=" + filepath.Join(ck, "ck") + "\n"; rep.Exit != 0 || rep.Attempts != 2 || h.stdout.String() != "PRISM checkpoint=\""+filepath.Join(ck, "ck")+"\"\n"+want {
		t.Errorf("exit %d, %d attempts, stdout %q", rep.Exit, rep.Attempts, h.stdout)
	}
	if got := rep.AttemptLog[1].BackoffSeconds; got != 600 {
		t.Errorf("backoff recorded as %gs, want 600", got)
	}
}

// Retention never deletes prism-run's own state, nor a folder holding
// it, whatever the child acknowledged.
func TestLedgerRetentionSparesTheState(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "mystate")
	touch(t, filepath.Join(state, stateFileName))
	l := ledger{dir: dir, own: []string{state}}
	l.add(telemetry.Checkpoint{Path: state, Time: r0})
	l.add(telemetry.Checkpoint{Path: touch(t, filepath.Join(dir, "ck")), Time: r0.Add(time.Minute)})
	deleted, refused := l.prune(1, nil)
	if len(deleted) != 0 || !slices.Equal(refused, []string{state}) {
		t.Errorf("deleted %v, refused %v; want nothing deleted, the state refused", deleted, refused)
	}
	if _, err := os.Stat(filepath.Join(state, stateFileName)); err != nil {
		t.Error(err)
	}
	for _, p := range []string{state, filepath.Join(state, lockFileName), dir} {
		if !l.holdsOwn(p) {
			t.Errorf("holdsOwn(%s) = false", p)
		}
	}
	if l.holdsOwn(filepath.Join(dir, "ck")) {
		t.Error("a checkpoint beside the state counts as the state's")
	}
}

// Retention keeps what a kept checkpoint is inside of, or points to.
func TestLedgerRetentionKeepsWhatHoldsAKeptOne(t *testing.T) {
	dir := t.TempDir()
	l := ledger{dir: dir}
	run := filepath.Join(dir, "run")
	touch(t, filepath.Join(run, "x"))
	l.add(telemetry.Checkpoint{Path: run, Time: r0})
	l.add(telemetry.Checkpoint{Path: touch(t, filepath.Join(run, "step2")), Time: r0.Add(time.Minute)})
	old := touch(t, filepath.Join(dir, "step-1"))
	l.add(telemetry.Checkpoint{Path: old, Time: r0.Add(2 * time.Minute)})
	latest := filepath.Join(dir, "latest")
	if err := os.Symlink(old, latest); err != nil {
		t.Fatal(err)
	}
	l.add(telemetry.Checkpoint{Path: latest, Time: r0.Add(3 * time.Minute)})
	l.add(telemetry.Checkpoint{Path: touch(t, filepath.Join(dir, "step-3")), Time: r0.Add(4 * time.Minute)})
	// keep 2: latest (-> step-1) and step-3; step2 is older, so it goes,
	// but not its folder's neighbour.
	if deleted, _ := l.prune(2, nil); slices.Contains(deleted, old) {
		t.Errorf("deleted %v: step-1 is what the kept ck/latest points to", deleted)
	}
	if _, err := os.Stat(latest); err != nil {
		t.Errorf("ck/latest dangles: %v", err)
	}
	l2 := ledger{dir: dir}
	run2 := filepath.Join(dir, "run2")
	touch(t, filepath.Join(run2, "x"))
	l2.add(telemetry.Checkpoint{Path: run2, Time: r0})
	l2.add(telemetry.Checkpoint{Path: touch(t, filepath.Join(run2, "step2")), Time: r0.Add(time.Minute)})
	l2.prune(1, nil)
	if _, err := os.Stat(filepath.Join(run2, "step2")); err != nil {
		t.Errorf("the newest checkpoint went with the older one holding it: %v", err)
	}
}

// The state folder is prism-run's: a symlink swapped in for it or for
// its lock, or a folder of another user, is refused, and nothing outside
// is written.
func TestStateFolderRefusesWhatIsNotItsOwn(t *testing.T) {
	base := t.TempDir()
	victim := touch(t, filepath.Join(t.TempDir(), "victim"))
	if err := os.WriteFile(victim, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	linked := filepath.Join(base, "linked")
	if err := os.Symlink(filepath.Dir(victim), linked); err != nil {
		t.Fatal(err)
	}
	if _, _, err := openState(linked); !errors.Is(err, ErrSetup) || !strings.Contains(err.Error(), "is a symlink: refused") {
		t.Errorf("a symlinked state folder: %v", err)
	}
	lockLink := filepath.Join(base, "locklink")
	if err := os.Mkdir(lockLink, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(lockLink, lockFileName)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := openState(lockLink); !errors.Is(err, ErrSetup) {
		t.Errorf("a lock file that is a symlink out of the folder: %v", err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "precious" {
		t.Errorf("the symlink's target was written: %q", b)
	}
	if os.Geteuid() != 0 {
		return
	}
	foreign := filepath.Join(base, "foreign")
	if err := os.Mkdir(foreign, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(foreign, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if _, _, err := openState(foreign); !errors.Is(err, ErrSetup) || !strings.Contains(err.Error(), "belongs to uid 65534") {
		t.Errorf("a folder of another user: %v", err)
	}
}

// Free restarts are bounded too: beyond max_restarts in a row, none of
// them running healthy_after, they are failures (a restart rule that trips
// again at once, an exit 0 under always); a healthy attempt starts the
// count over.
func TestFreeRestartsInARowAreBounded(t *testing.T) {
	b := newBudget(plan(func(p *policies.RecoveryPlan) { p.Restart, p.MaxRestarts = policies.RestartAlways, 2 }), nil)
	now := r0
	var kinds []bool // counted
	for range MaxFreeInARow + 5 {
		now = now.Add(time.Minute)
		s := b.decide(crash(0, time.Second), now)
		kinds = append(kinds, s.counted)
		if s.kind != stepRestart {
			break
		}
	}
	// MaxFreeInARow free, then counted, counted, and the third uses the
	// budget (2) up.
	want := append(make([]bool, MaxFreeInARow), true, true, true)
	if !slices.Equal(kinds, want) {
		t.Errorf("counted per end %v, want %v", kinds, want)
	}
	b = newBudget(plan(func(p *policies.RecoveryPlan) { p.Restart, p.MaxRestarts = policies.RestartAlways, 1 }), nil)
	for i := range 4 * MaxFreeInARow {
		ran := time.Second
		if i%2 == 1 {
			ran = time.Hour // healthy
		}
		if s := b.decide(crash(0, ran), r0.Add(time.Duration(i)*time.Hour)); s.counted || s.kind != stepRestart {
			t.Fatalf("end %d: %+v; healthy attempts in between keep free restarts free", i, s)
		}
	}
}
