package policies

import (
	"strings"
	"testing"
	"time"
)

func resolveSrc(t *testing.T, src string) (*Resolved, error) {
	t.Helper()
	p, err := Parse("p.toml", []byte(src))
	if err != nil {
		return nil, err
	}
	return Resolve(p)
}

func TestRecoveryDefaults(t *testing.T) {
	res, err := resolveSrc(t, "")
	if err != nil {
		t.Fatal(err)
	}
	want := RecoveryPlan{Strategy: ActionCheckpointStop, Restart: RestartNever, MaxRestarts: 3,
		BackoffInitial: 10 * time.Second, BackoffMax: 5 * time.Minute, Jitter: 0.2, HealthyAfter: 10 * time.Minute}
	if got := res.Recovery; got.Strategy != want.Strategy || got.Restart != want.Restart || got.MaxRestarts != want.MaxRestarts ||
		got.BackoffInitial != want.BackoffInitial || got.BackoffMax != want.BackoffMax || got.Jitter != want.Jitter ||
		got.HealthyAfter != want.HealthyAfter || got.Keep != 0 || got.Fallback != nil || got.MaxRestartsPerHour != 0 {
		t.Errorf("defaults = %+v, want %+v", got, want)
	}
	// A backoff_initial above the default maximum raises the maximum.
	res, err = resolveSrc(t, "[recovery]\nbackoff_initial = \"10min\"\n")
	if err != nil {
		t.Fatal(err)
	}
	if res.Recovery.BackoffMax != 10*time.Minute {
		t.Errorf("backoff_max = %s, want 10m (raised to backoff_initial)", res.Recovery.BackoffMax)
	}
}

// The strategy is what a high rule that names no action does; a rule that
// names its action, or another severity, keeps its own.
func TestStrategyIsTheHighDefault(t *testing.T) {
	src := `[recovery]
strategy = "rollback"

[[rule]]
name = "late"
kind = "deadline"
after = "1h"

[[rule]]
name = "entropy"
kind = "monotonic"
metric = "entropy"
direction = "increasing"
severity = "high"

[[rule]]
name = "own"
kind = "max"
metric = "iter"
max = 5
severity = "high"
action = "stop"

[[rule]]
name = "medium"
kind = "max"
metric = "x"
max = 5
`
	res, err := resolveSrc(t, src)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Action{"late": ActionRollback, "entropy": ActionRollback, "own": ActionStop, "medium": ""}
	for _, r := range res.Rules {
		if m := r.Meta(); m.Action != want[m.Name] {
			t.Errorf("rule %s: action %q, want %q", m.Name, m.Action, want[m.Name])
		}
	}
	if res.Policy.Rules[0].Action != nil {
		t.Error("the strategy was written into the policy's own rule table")
	}
}

func TestFailoverNeedsFallback(t *testing.T) {
	tests := []struct{ src, want string }{
		{"[recovery]\nstrategy = \"failover\"\n", "recovery.strategy: fails over, but [recovery] names no fallback command"},
		{"[[rule]]\nname = \"gpu\"\nkind = \"health\"\naction = \"failover\"\n", `rule "gpu".action: fails over`},
		{"[[rule]]\nname = \"a\"\nkind = \"deadline\"\nafter = \"1h\"\naction = \"stop\"\nescalate = \"failover\"\nescalate_after = \"1m\"\n", `rule "a".action: fails over`},
	}
	for _, tt := range tests {
		_, err := resolveSrc(t, tt.src)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: err = %v, want %q", tt.src, err, tt.want)
		}
	}
	// With a fallback, each is accepted.
	for _, src := range []string{"[recovery]\nstrategy = \"failover\"\nfallback = [\"./backup\"]\n",
		"[recovery]\nfallback = [\"./backup\"]\n[[rule]]\nname = \"gpu\"\nkind = \"health\"\naction = \"failover\"\n"} {
		if _, err := resolveSrc(t, src); err != nil {
			t.Errorf("%q with a fallback: %v", src, err)
		}
	}
}

func metric(d time.Duration, name string, v float64) Observation {
	return Observation{Time: t0.Add(d), Source: SourceStdout, Name: name, Value: v}
}

// A restart starts the child's rules afresh and keeps the run's: the new
// child is not judged on the old one's best loss or last heartbeat, while
// the deadline still counts from the run's start.
func TestNewAttemptRearmsTheChildsRules(t *testing.T) {
	stall, _ := NewStall(Meta{Name: "stall", Action: ActionStop}, "loss", 2, 0, false)
	beat, _ := NewHeartbeat(Meta{Name: "beat", Action: ActionStop}, "", 10*time.Second)
	late, _ := NewDeadline(Meta{Name: "late", Action: ActionStop}, time.Minute)
	e := mustEngine(t, stall, beat, late)
	fired := func(ds []Decision) map[string]bool {
		out := map[string]bool{}
		for _, d := range ds {
			out[d.Rule] = true
		}
		return out
	}
	e.Observe(metric(time.Second, "loss", 1))
	e.Observe(metric(2*time.Second, "loss", 1))
	if got := fired(e.Observe(metric(3*time.Second, "loss", 1))); !got["stall"] {
		t.Fatalf("stall did not fire before the restart: %v", got)
	}
	// The old child hung for 30s; the new one starts at 40s.
	e.NewAttempt(t0.Add(40 * time.Second))
	if got := fired(e.Observe(tick(45 * time.Second))); got["beat"] {
		t.Error("the heartbeat judged the new child on the old one's silence")
	}
	// The new child resumes at a worse loss: its own best starts there.
	for i, at := range []time.Duration{46 * time.Second, 47 * time.Second} {
		if got := fired(e.Observe(metric(at, "loss", 5-float64(i)))); got["stall"] {
			t.Errorf("stall fired on the new child's improving loss (observation %d)", i)
		}
	}
	if got := fired(e.Observe(tick(61 * time.Second))); !got["late"] {
		t.Error("the deadline forgot the run's start across the restart")
	}
}

// A decision says when its rule began to hold: rollback's "before the
// violation began".
func TestDecisionSince(t *testing.T) {
	th, _ := NewThreshold(Meta{Name: "hot", Action: ActionRollback, For: 2 * time.Second}, "temp", ptr(90), nil, "", 0, 0)
	e := mustEngine(t, th)
	e.Observe(metric(time.Second, "temp", 95))
	e.Observe(metric(2*time.Second, "temp", 96))
	ds := e.Observe(metric(3*time.Second, "temp", 97))
	if len(ds) != 1 || !ds[0].Since.Equal(t0.Add(time.Second)) {
		t.Fatalf("decisions %+v: want one, since t0+1s", ds)
	}
}

func ptr(v float64) *float64 { return &v }
