package policies

import (
	"errors"
	"math"
	"testing"
	"time"
)

type fixedClock struct{ t time.Time }

func (c *fixedClock) Now() time.Time { return c.t }

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func tick(d time.Duration) Observation {
	return Observation{Time: t0.Add(d), Source: SourceClock, Name: NameElapsed, Value: d.Seconds()}
}

func mustEngine(t *testing.T, rules ...Rule) *Engine {
	t.Helper()
	e, err := NewEngine(&fixedClock{t0}, rules)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestDeadline(t *testing.T) {
	tests := []struct {
		name  string
		at    []time.Duration
		fires []bool
	}{
		{"before", []time.Duration{0, time.Second, 9999 * time.Millisecond}, []bool{false, false, false}},
		{"exactly at", []time.Duration{10 * time.Second}, []bool{true}},
		{"once only", []time.Duration{11 * time.Second, 12 * time.Second, time.Hour}, []bool{true, false, false}},
		{"time going backwards", []time.Duration{-time.Hour, 10 * time.Second, 5 * time.Second}, []bool{false, true, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := NewDeadline(Meta{Name: "timeout", Action: ActionCheckpointStop}, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			e := mustEngine(t, d)
			for i, at := range tt.at {
				got := e.Observe(tick(at))
				if (len(got) == 1) != tt.fires[i] {
					t.Fatalf("observation %d at %s: decisions %v, want fire=%v", i, at, got, tt.fires[i])
				}
				if len(got) == 1 {
					if got[0].Action != ActionCheckpointStop || got[0].Rule != "timeout" || got[0].Kind != "deadline" {
						t.Errorf("decision = %+v", got[0])
					}
				}
			}
		})
	}
}

func TestDeadlineRejectsNonPositive(t *testing.T) {
	for _, d := range []time.Duration{0, -time.Second} {
		if _, err := NewDeadline(Meta{Name: "x"}, d); !errors.Is(err, ErrInvalid) {
			t.Errorf("NewDeadline(%s) error = %v, want ErrInvalid", d, err)
		}
	}
}

func TestPeriodic(t *testing.T) {
	p, err := NewPeriodic(Meta{Name: "checkpoint-every", Action: ActionCheckpoint}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	e := mustEngine(t, p)
	steps := []struct {
		at   time.Duration
		fire bool
	}{
		{time.Second, false},
		{10 * time.Second, true},
		{15 * time.Second, false},
		{20 * time.Second, true},
		// A long silence fires once, not once per missed period...
		{95 * time.Second, true},
		{99 * time.Second, false},
		// ...and the schedule stays on the original grid.
		{100 * time.Second, true},
	}
	for _, s := range steps {
		got := e.Observe(tick(s.at))
		if (len(got) == 1) != s.fire {
			t.Fatalf("at %s: %v, want fire=%v", s.at, got, s.fire)
		}
	}
}

func TestPeriodicHugeGapIsCheap(t *testing.T) {
	p, _ := NewPeriodic(Meta{Name: "p", Action: ActionCheckpoint}, time.Nanosecond)
	e := mustEngine(t, p)
	if got := e.Observe(tick(100 * 365 * 24 * time.Hour)); len(got) != 1 {
		t.Fatalf("got %v", got)
	}
	if got := e.Observe(tick(100 * 365 * 24 * time.Hour)); len(got) != 0 {
		t.Fatalf("same instant fired again: %v", got)
	}
}

// holds is a rule whose condition is the observation's value being > 0.
type holds struct{ m Meta }

func (h holds) Meta() Meta { return h.m }
func (h holds) Eval(_ time.Time, o Observation) Verdict {
	return Verdict{Holds: o.Value > 0 || math.IsInf(o.Value, 1), Fresh: true}
}

func (h holds) Reason() string { return "positive" }

func TestRepeat(t *testing.T) {
	values := []float64{1, 1, 0, 1, 1, 1, math.NaN(), math.Inf(1)}
	tests := []struct {
		repeat Repeat
		want   int
	}{
		{RepeatOnce, 1},
		{RepeatEvery, 6},
		// Holds at 0,1 | 3,4,5 | 7 s: three episodes. A cooldown fires at
		// the start of each and again 2s into one: 0, 3, 5, 7.
		{Repeat(2 * time.Second), 4},
	}
	for _, tt := range tests {
		t.Run(tt.repeat.String(), func(t *testing.T) {
			e := mustEngine(t, holds{Meta{Name: "h", Kind: "test", Severity: SeverityLow, Repeat: tt.repeat}})
			n := 0
			for i, v := range values {
				n += len(e.Observe(Observation{Time: t0.Add(time.Duration(i) * time.Second), Name: "m", Value: v}))
			}
			if n != tt.want {
				t.Errorf("fired %d times, want %d", n, tt.want)
			}
		})
	}
}

func TestDefaultActionFromSeverity(t *testing.T) {
	tests := []struct {
		sev  Severity
		want Action
	}{
		{SeverityCritical, ActionKill},
		{SeverityHigh, ActionCheckpointStop},
		{SeverityMedium, ActionAlert},
		{SeverityLow, ActionLog},
	}
	for _, tt := range tests {
		e := mustEngine(t, holds{Meta{Name: "h", Severity: tt.sev}})
		got := e.Observe(Observation{Time: t0, Value: 1})
		if len(got) != 1 || got[0].Action != tt.want || got[0].Severity != tt.sev {
			t.Errorf("severity %s: %+v, want action %s", tt.sev, got, tt.want)
		}
	}
}

func TestEngineStampsTimelessObservations(t *testing.T) {
	clock := &fixedClock{t0}
	d, _ := NewDeadline(Meta{Name: "d"}, time.Minute)
	e, err := NewEngine(clock, []Rule{d})
	if err != nil {
		t.Fatal(err)
	}
	clock.t = t0.Add(2 * time.Minute)
	got := e.Observe(Observation{Name: "anything"})
	if len(got) != 1 || !got[0].Time.Equal(clock.t) {
		t.Fatalf("got %+v, want one decision at %s", got, clock.t)
	}
}

func TestEngineRejectsBadRules(t *testing.T) {
	tests := []struct {
		name  string
		rules []Rule
	}{
		{"no name", []Rule{holds{Meta{}}}},
		{"duplicate", []Rule{holds{Meta{Name: "a"}}, holds{Meta{Name: "a"}}}},
		{"degrade without what", []Rule{holds{Meta{Name: "a", Action: ActionDegrade}}}},
	}
	for _, tt := range tests {
		if _, err := NewEngine(&fixedClock{t0}, tt.rules); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: error = %v, want ErrInvalid", tt.name, err)
		}
	}
}

func TestParseNames(t *testing.T) {
	for _, s := range []string{"low", "medium", "high", "critical"} {
		sev, err := ParseSeverity(s)
		if err != nil || sev.String() != s {
			t.Errorf("ParseSeverity(%q) = %v, %v", s, sev, err)
		}
	}
	if _, err := ParseSeverity("urgent"); err == nil {
		t.Error("ParseSeverity(urgent) succeeded")
	}
	for _, a := range knownActions {
		if got, err := ParseAction(string(a)); err != nil || got != a {
			t.Errorf("ParseAction(%q) = %v, %v", a, got, err)
		}
	}
	if _, err := ParseAction("reboot"); err == nil {
		t.Error("ParseAction(reboot) succeeded")
	}
}
