package policies

import (
	"math"
	"strings"
	"testing"
	"time"
)

// step is one observation at t seconds after the start, and whether the
// rule under test must produce a decision on it.
type step struct {
	t    float64
	name string
	v    float64
	fire bool
}

var nan, inf = math.NaN(), math.Inf(1)

func f64(v float64) *float64 { return &v }

func sec(t float64) time.Duration { return time.Duration(t * float64(time.Second)) }

func runSteps(t *testing.T, r Rule, steps []step) []Decision {
	t.Helper()
	e := mustEngine(t, r)
	var all []Decision
	for i, s := range steps {
		src := SourceStdout
		if s.name == NameElapsed {
			src = SourceClock
		}
		o := Observation{Time: t0.Add(sec(s.t)), Source: src, Name: s.name, Value: s.v}
		if s.name == NameHealth {
			o.Text, o.Value = "xid:79", 0
			if s.v == 1 {
				o.Text = "ecc:double-bit"
			}
		}
		got := e.Observe(o)
		if (len(got) > 0) != s.fire {
			t.Fatalf("step %d (t=%gs %s=%g): decisions %+v, want fire=%v", i, s.t, s.name, s.v, got, s.fire)
		}
		all = append(all, got...)
	}
	return all
}

// must unwraps a rule constructor in a test table (f(g()) needs g's results
// to be f's parameters exactly, so no *testing.T here).
func must[R Rule](r R, err error) R {
	if err != nil {
		panic(err)
	}
	return r
}

var m = Meta{Name: "r", Severity: SeverityLow}

func TestThreshold(t *testing.T) {
	tests := []struct {
		name  string
		rule  func() (*Threshold, error)
		meta  Meta
		steps []step
	}{
		{"last above", func() (*Threshold, error) { return NewThreshold(m, "lat", f64(5), nil, AggLast, 0, 0) }, m, []step{
			{0, "lat", 3, false}, {1, "lat", 5, false}, {2, "lat", 5.1, true},
			{3, "lat", 6, false},                      // same episode: once per episode by default
			{4, "lat", 1, false}, {5, "lat", 9, true}, // a new episode
			{6, "other", 99, false}, {7, NameElapsed, 7, false},
		}},
		{"below", func() (*Threshold, error) { return NewThreshold(m, "util", nil, f64(0.8), AggLast, 0, 0) }, m, []step{
			{0, "util", 0.9, false}, {1, "util", 0.79, true},
		}},
		{"NaN fails closed, Inf compares", func() (*Threshold, error) { return NewThreshold(m, "loss", f64(10), nil, AggLast, 0, 0) }, m, []step{
			{0, "loss", 1, false}, {1, "loss", nan, true}, {2, "loss", 1, false}, {3, "loss", inf, true},
			{4, "loss", math.Inf(-1), false},
		}},
		{"mean over 3", func() (*Threshold, error) { return NewThreshold(m, "x", f64(5), nil, AggMean, 3, 0) }, m, []step{
			{0, "x", 9, true}, {1, "x", 0, false}, {2, "x", 0, false}, {3, "x", 15, false}, {4, "x", 1, true},
		}},
		{"mean with Inf in and out of the window", func() (*Threshold, error) { return NewThreshold(m, "x", f64(5), nil, AggMean, 2, 0) }, m, []step{
			{0, "x", inf, true}, {1, "x", 1, false}, // still holding (mean +Inf): same episode
			{2, "x", 1, false}, {3, "x", 20, true}, // the Inf left no trace in the running sum
		}},
		{"p99 over 100", func() (*Threshold, error) { return NewThreshold(m, "x", f64(5), nil, AggP99, 100, 0) }, m,
			// One outlier in 100 is the 1 % a p99 ignores; two are not.
			append(repeatStep(0, "x", 1, 99), step{99, "x", 50, false}, step{100, "x", 50, true})},
		{"max over a duration", func() (*Threshold, error) { return NewThreshold(m, "x", f64(5), nil, AggMax, 0, 10*time.Second) }, m, []step{
			{0, "x", 9, true}, {5, "x", 1, false}, {10, "x", 1, false}, {10.5, "x", 1, false}, {11, "x", 1, false},
		}},
		{"time going backwards", func() (*Threshold, error) { return NewThreshold(m, "x", f64(5), nil, AggMax, 0, 10*time.Second) }, m, []step{
			{100, "x", 9, true}, {50, "x", 1, false}, {111, "x", 1, false},
		}},
		{"huge window", func() (*Threshold, error) { return NewThreshold(m, "x", f64(5), nil, AggMean, MaxWindowCount, 0) }, m, []step{
			{0, "x", 1, false}, {1, "x", 100, true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runSteps(t, must(tt.rule()), tt.steps)
		})
	}
}

func repeatStep(t float64, name string, v float64, n int) []step {
	out := make([]step, n)
	for i := range out {
		out[i] = step{t + float64(i), name, v, false}
	}
	return out
}

func TestThresholdValidation(t *testing.T) {
	bad := []func() (*Threshold, error){
		func() (*Threshold, error) { return NewThreshold(m, "", f64(1), nil, AggLast, 0, 0) },
		func() (*Threshold, error) { return NewThreshold(m, "x", nil, nil, AggLast, 0, 0) },
		func() (*Threshold, error) { return NewThreshold(m, "x", f64(1), nil, AggLast, MaxWindowCount+1, 0) },
		func() (*Threshold, error) { return NewThreshold(m, "x", f64(1), nil, AggLast, 0, -time.Second) },
	}
	for i, f := range bad {
		if _, err := f(); err == nil {
			t.Errorf("case %d accepted", i)
		}
	}
}

func TestFor(t *testing.T) {
	meta := m
	meta.For = 3 * time.Second
	r := must(NewThreshold(meta, "util", nil, f64(0.8), AggLast, 0, 0))
	d := runSteps(t, r, []step{
		{0, "util", 0.5, false}, {2, "util", 0.5, false},
		{2.5, "util", 0.9, false}, // breaks the hold
		{3, "util", 0.5, false}, {5, NameElapsed, 5, false},
		{6, NameElapsed, 6, true}, // held 3s: a clock tick is enough
		{7, "util", 0.1, false},
	})
	if !strings.Contains(d[0].Reason, "held 3s") {
		t.Errorf("reason %q does not say how long it held", d[0].Reason)
	}
}

func TestEscalate(t *testing.T) {
	meta := Meta{Name: "gpu-mem", Severity: SeverityHigh, Action: ActionDegrade, What: "free-memory",
		Escalate: ActionStop, EscalateAfter: 5 * time.Second}
	r := must(NewThreshold(meta, "mem", f64(8), nil, AggLast, 0, 0))
	d := runSteps(t, r, []step{
		{0, "mem", 9, true},
		{2, "mem", 9, false},
		{5, NameElapsed, 5, true}, // still over 5s after the degrade
		{6, "mem", 9, false},      // escalates once
		{7, "mem", 1, false},
		{8, "mem", 9, true}, // a new episode starts from the first action again
	})
	if d[0].Action != ActionDegrade || d[1].Action != ActionStop || d[2].Action != ActionDegrade {
		t.Errorf("actions %s %s %s, want degrade stop degrade", d[0].Action, d[1].Action, d[2].Action)
	}
	if !strings.Contains(d[1].Reason, "still holding") {
		t.Errorf("escalation reason %q", d[1].Reason)
	}
}

func TestMonotonic(t *testing.T) {
	up := must(NewMonotonic(Meta{Name: "entropy", Repeat: RepeatEvery}, "entropy", 1e-10, true))
	runSteps(t, up, []step{
		{0, "entropy", 1, false}, {1, "entropy", 1 - 1e-11, false}, {2, "entropy", 2, false},
		{3, "entropy", 1.5, true}, {4, "entropy", 1.4, true}, {5, "entropy", nan, true}, {6, "entropy", 7, false},
		{7, "entropy", 6, true},
	})
	down := must(NewMonotonic(Meta{Name: "loss"}, "loss", 0, false))
	runSteps(t, down, []step{{0, "loss", 5, false}, {1, "loss", 4, false}, {2, "loss", 4.5, true}})
}

func TestStall(t *testing.T) {
	r := must(NewStall(m, "loss", 3, 1e-6, false))
	runSteps(t, r, []step{
		{0, "loss", 1, false}, {1, "loss", 0.5, false},
		{2, "loss", 0.5 - 1e-7, false}, {3, "loss", 0.6, false}, {4, "loss", nan, true},
		{5, "other", 0, false}, {6, "loss", 0.1, false}, // improvement ends the stall
	})
	colors := must(NewStall(Meta{Name: "colors", Repeat: RepeatEvery}, "colors", 2, 1, false))
	runSteps(t, colors, []step{{0, "colors", 90, false}, {1, "colors", 89.5, false}, {2, "colors", 90, true}, {3, "colors", 88, false}})
	up := must(NewStall(m, "acc", 2, 0.01, true))
	runSteps(t, up, []step{{0, "acc", 0.5, false}, {1, "acc", 0.505, false}, {2, "acc", 0.7, false}, {3, "acc", 0.7, false}, {4, "acc", 0.7, true}})
}

func TestConvergeBy(t *testing.T) {
	r := must(NewConvergeBy(m, "iter", "converged", 3))
	runSteps(t, r, []step{
		{0, "iter", 1, false}, {1, "converged", 0, false}, {2, "iter", 3, false},
		{3, "iter", 4, true}, {4, NameElapsed, 4, false},
		{5, "converged", 1, false}, {6, "iter", 5, false},
	})
	never := must(NewConvergeBy(m, "iter", "converged", 3))
	runSteps(t, never, []step{{0, NameElapsed, 0, false}, {100, NameElapsed, 100, false}}) // a metric that never appears
}

func TestMaxBudget(t *testing.T) {
	runSteps(t, must(NewMax(m, "iter", 1e6)), []step{{0, "iter", 1e6, false}, {1, "iter", 1e6 + 1, true}, {2, "iter", nan, false}})
	runSteps(t, must(NewBudget(m, "eps", 0.25, false)), []step{{0, "eps", 0.1, false}, {1, "eps", 0.1, false}, {2, "eps", 0.1, true}})
	runSteps(t, must(NewBudget(m, "privacy_spent", 0.95, true)), []step{
		{0, "privacy_spent", 0.5, false}, {1, "privacy_spent", 0.9, false}, {2, "privacy_spent", 1.0, true},
	})
}

func TestRatio(t *testing.T) {
	r := must(NewRatio(Meta{Name: "uptime", Repeat: RepeatEvery}, "lat", f64(5), nil, 0.9, 10*time.Second))
	runSteps(t, r, []step{
		{0, "lat", 1, false},
		{5, "lat", 9, false},             // bad from 5s on, but the window is not full yet
		{9, "lat", 1, false},             // good again from 9s
		{10, "lat", 1, true},             // [0,10]: bad 5..9, good 60% < 90%
		{11, "lat", 1, true},             // [1,11]: good 60% still
		{18, NameElapsed, 18, false},     // [8,18]: bad 8..9 only: 90%, not below
		{17.5, NameElapsed, 17.5, false}, // time going backwards: clamped to 18
		{19, "lat", nan, false},          // NaN counts as out of bounds from now on...
		{20, NameElapsed, 20, false},     // [10,20]: bad 19..20: 90%
		{21, NameElapsed, 21, true},      // [11,21]: bad 19..21: 80%
	})
	if _, err := NewRatio(m, "x", f64(1), nil, 1.5, time.Second); err == nil {
		t.Error("at_least 1.5 accepted")
	}
	if _, err := NewRatio(m, "x", nil, nil, 0.5, time.Second); err == nil {
		t.Error("a ratio without a bound accepted")
	}
}

func TestHeartbeat(t *testing.T) {
	any := must(NewHeartbeat(m, "", 10*time.Second))
	runSteps(t, any, []step{
		{5, NameElapsed, 5, false}, {9, "iter", 1, false}, {19, NameElapsed, 19, false},
		{19.5, NameElapsed, 19.5, true}, {25, NameElapsed, 25, false}, {26, "iter", 2, false},
		{40, NameElapsed, 40, true},
	})
	// A metric that never appears trips it from the start.
	one := must(NewHeartbeat(m, "heartbeat", time.Second))
	runSteps(t, one, []step{{0.5, "iter", 1, false}, {1.5, "iter", 2, true}})
}

func TestHealth(t *testing.T) {
	all := must(NewHealth(Meta{Name: "h", Repeat: RepeatEvery}, nil))
	runSteps(t, all, []step{{0, "iter", 1, false}, {1, NameHealth, 0, true}, {2, NameHealth, 1, true}})
	ecc := must(NewHealth(Meta{Name: "h"}, []string{"ecc"}))
	runSteps(t, ecc, []step{{0, NameHealth, 0, false}, {1, NameHealth, 1, true}})
}
