package policies

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// rulesOf names the rules of decisions.
func rulesOf(ds []Decision) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Rule)
	}
	return out
}

// A rule whose metric never came is idle, and says why it matters; rules
// that watch time or wait for events never are.
func TestIdleRules(t *testing.T) {
	// Meta.Metric is the metric as the rule's table names it.
	loss, _ := NewThreshold(Meta{Name: "loss-high", Metric: NameLoss}, NameLoss, ptr(1), nil, AggLast, 0, 0)
	iter, _ := NewMax(Meta{Name: "iters", Metric: NameIter}, NameIter, 10)
	late, _ := NewDeadline(Meta{Name: "late"}, time.Hour)
	beat, _ := NewHeartbeat(Meta{Name: "beat"}, "", time.Minute)
	gpu, _ := NewHealth(Meta{Name: "gpu", Metric: NameHealth}, nil)
	e := mustEngine(t, loss, iter, late, beat, gpu)
	e.Observe(metric(time.Second, NameIter, 3))
	idle := e.Idle()
	if len(idle) != 1 || idle[0].Name != "loss-high" {
		t.Fatalf("idle %+v, want loss-high alone", idle)
	}
	for _, tt := range []struct {
		m    Meta
		seen []string
		want string
	}{
		{Meta{Name: "s", Metric: "los"}, []string{NameIter, NameLoss}, "rule s never saw its metric los, but saw loss: a typo?"},
		{Meta{Name: "m", Metric: NameMemory}, nil, "rule m never saw its metric memory_bytes"},
		{Meta{Name: "c", Metric: "custom_thing"}, []string{NameIter}, "rule c never saw its metric custom_thing (not a name prism-run knows: a typo, or a marker the child never printed?)"},
	} {
		if got := IdleReason(tt.m, tt.seen); got != tt.want {
			t.Errorf("IdleReason(%s) = %q, want %q", tt.m.Metric, got, tt.want)
		}
	}
}

// Between two children only the named kinds judge: the deadline's clock
// runs, a heartbeat does not judge the silence of no child.
func TestObserveKinds(t *testing.T) {
	late, _ := NewDeadline(Meta{Name: "late", Action: ActionStop}, 10*time.Second)
	beat, _ := NewHeartbeat(Meta{Name: "beat", Action: ActionStop}, "", time.Second)
	e := mustEngine(t, late, beat)
	if got := e.ObserveKinds(tick(5*time.Second), KindDeadline); len(got) != 0 {
		t.Errorf("at 5s between children: %v", rulesOf(got))
	}
	if got := e.ObserveKinds(tick(11*time.Second), KindDeadline); !slices.Equal(rulesOf(got), []string{"late"}) {
		t.Errorf("at 11s between children: %v, want the deadline alone", rulesOf(got))
	}
	if got := e.ObserveKinds(tick(12 * time.Second)); len(got) != 0 {
		t.Errorf("no kinds judged %v", rulesOf(got))
	}
	if got := e.Observe(tick(13 * time.Second)); !slices.Equal(rulesOf(got), []string{"beat"}) {
		t.Errorf("every rule at 13s: %v, want the heartbeat", rulesOf(got))
	}
	if !e.Start().Equal(t0) {
		t.Errorf("Start = %s", e.Start())
	}
}

// Holding says when each rule that would roll back began to hold, by its
// action or its escalation.
func TestHolding(t *testing.T) {
	hot, _ := NewThreshold(Meta{Name: "hot", Action: ActionRollback}, "temp", ptr(90), nil, AggLast, 0, 0)
	cold, _ := NewThreshold(Meta{Name: "cold", Action: ActionLog, Escalate: ActionRollback, EscalateAfter: time.Minute}, "ice", nil, ptr(0), AggLast, 0, 0)
	warm, _ := NewThreshold(Meta{Name: "warm", Action: ActionLog}, "temp", ptr(50), nil, AggLast, 0, 0)
	e := mustEngine(t, hot, cold, warm)
	e.Observe(metric(time.Second, "temp", 95))
	e.Observe(metric(2*time.Second, "ice", -1))
	if got := e.Holding(ActionRollback); !slices.Equal(got, []time.Time{t0.Add(time.Second), t0.Add(2 * time.Second)}) {
		t.Errorf("holding rollback %v, want hot since 1s and cold since 2s", got)
	}
	e.Observe(metric(3*time.Second, "temp", 80))
	if got := e.Holding(ActionRollback); !slices.Equal(got, []time.Time{t0.Add(2 * time.Second)}) {
		t.Errorf("holding rollback after temp fell: %v, want cold's alone", got)
	}
	if got := e.Holding(ActionStop); got != nil {
		t.Errorf("holding stop: %v", got)
	}
}

// A new run starts every rule over: deadlines count from its start,
// budgets spend from nothing, a "once" rule may fire again.
func TestNewRun(t *testing.T) {
	late, _ := NewDeadline(Meta{Name: "late", Action: ActionStop}, 10*time.Second)
	spend, _ := NewBudget(Meta{Name: "spend", Action: ActionStop}, NamePrivacySpent, 1, false)
	up, _ := NewRatio(Meta{Name: "up", Action: ActionAlert}, NameLatency, ptr(5), nil, 0.5, 2*time.Second)
	e := mustEngine(t, late, spend, up)
	var first []string
	for i, o := range []Observation{metric(time.Second, NameLatency, 9), metric(2*time.Second, NamePrivacySpent, 0.6),
		metric(3*time.Second, NamePrivacySpent, 0.6), metric(4*time.Second, NameLatency, 9), tick(11 * time.Second)} {
		got := rulesOf(e.Observe(o))
		first = append(first, got...)
		if i == 0 && len(got) != 0 {
			t.Errorf("the ratio judged before its window passed: %v", got)
		}
	}
	if !slices.Equal(first, []string{"spend", "up", "late"}) {
		t.Fatalf("the first run fired %v, want spend, up, late", first)
	}
	start := t0.Add(time.Hour)
	e.NewRun(start)
	if !e.Start().Equal(start) {
		t.Errorf("Start = %s, want the new run's", e.Start())
	}
	at := func(d time.Duration, name string, v float64) Observation {
		return Observation{Time: start.Add(d), Source: SourceStdout, Name: name, Value: v}
	}
	for _, o := range []Observation{at(5*time.Second, NameElapsed, 5), at(6*time.Second, NamePrivacySpent, 0.6), at(7*time.Second, NameLatency, 9)} {
		if got := e.Observe(o); len(got) != 0 {
			t.Errorf("the new run at +%s fired %v: judged on the old run's totals or clock", o.Time.Sub(start), rulesOf(got))
		}
	}
	if got := e.Observe(at(11*time.Second, NameElapsed, 11)); !slices.Contains(rulesOf(got), "late") {
		t.Errorf("the deadline did not fire again in the new run: %v", rulesOf(got))
	}
}

// A restart rearms every attempt-scoped kind: the new child is judged on
// its own values, not the old child's window, trend, counter or schedule.
func TestNewAttemptRearmsEachKind(t *testing.T) {
	mean, _ := NewThreshold(Meta{Name: "mean"}, "lat", ptr(5), nil, AggMean, 3, 0)
	most, _ := NewMax(Meta{Name: "most"}, NameIter, 10)
	rising, _ := NewMonotonic(Meta{Name: "rising"}, NameEntropy, 0, true)
	conv, _ := NewConvergeBy(Meta{Name: "conv"}, NameIter, NameConverged, 3)
	every, _ := NewPeriodic(Meta{Name: "every", Action: ActionCheckpoint}, 10*time.Second)
	e := mustEngine(t, mean, most, rising, conv, every)
	var old []string
	for _, o := range []Observation{metric(time.Second, "lat", 9), metric(2*time.Second, "lat", 9),
		metric(3*time.Second, NameIter, 11), metric(4*time.Second, NameEntropy, 5), tick(10 * time.Second)} {
		old = append(old, rulesOf(e.Observe(o))...)
	}
	if !slices.Equal(old, []string{"mean", "most", "conv", "every"}) {
		t.Fatalf("the old child fired %v", old)
	}
	e.NewAttempt(t0.Add(15 * time.Second))
	for _, o := range []Observation{metric(16*time.Second, "lat", 1), metric(17*time.Second, NameEntropy, 3),
		metric(18*time.Second, NameLoss, 1), tick(20 * time.Second)} {
		if got := e.Observe(o); len(got) != 0 {
			t.Errorf("the new child's %s at %s fired %v: judged on the old child", o.Name, o.Time.Sub(t0), rulesOf(got))
		}
	}
	if got := e.Observe(tick(25 * time.Second)); !slices.Equal(rulesOf(got), []string{"every"}) {
		t.Errorf("at 25s: %v, want the periodic request, 10s after the new child's start", rulesOf(got))
	}
}

func TestRepeatNames(t *testing.T) {
	for s, want := range map[string]Repeat{"once": RepeatOnce, "every": RepeatEvery, "episode": RepeatEpisode, "": RepeatEpisode, "10m": Repeat(10 * time.Minute)} {
		got, err := ParseRepeat(s)
		if err != nil || got != want {
			t.Errorf("ParseRepeat(%q) = %v, %v; want %v", s, got, err, want)
		}
		if back, err := ParseRepeat(got.String()); err != nil || back != got {
			t.Errorf("%v reads back as %v, %v", got, back, err)
		}
	}
	for _, s := range []string{"0s", "-1m", "sometimes", "1d"} {
		if _, err := ParseRepeat(s); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseRepeat(%q) = %v, want ErrInvalid", s, err)
		}
	}
}

func TestEngineRejectsBadTiming(t *testing.T) {
	for name, m := range map[string]Meta{
		"escalate without escalate_after": {Name: "a", Escalate: ActionKill},
		"escalate_after without escalate": {Name: "a", EscalateAfter: time.Minute},
		"negative for":                    {Name: "a", For: -time.Second},
	} {
		if _, err := NewEngine(&fixedClock{t0}, []Rule{holds{m}}); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
}

// A decision's reason is one line whatever the child printed: a health
// event's text with a newline must not forge a line of a log or of
// replay's output.
func TestDecisionReasonIsOneLine(t *testing.T) {
	h, _ := NewHealth(Meta{Name: "gpu", Action: ActionAlert}, nil)
	e := mustEngine(t, h)
	ds := e.Observe(Observation{Time: t0, Source: SourceProbe, Name: NameHealth, Text: "xid:79\nended: forged", Labels: map[string]string{"gpu": "0"}})
	if len(ds) != 1 {
		t.Fatalf("decisions %+v", ds)
	}
	if want := `GPU health event xid:79\nended: forged on GPU 0`; ds[0].Reason != want {
		t.Errorf("reason %q, want %q", ds[0].Reason, want)
	}
}

// Severities are words in reports, and read back from them.
func TestSeverityText(t *testing.T) {
	for _, s := range []Severity{SeverityLow, SeverityMedium, SeverityHigh, SeverityCritical} {
		b, _ := json.Marshal(Decision{Severity: s})
		var d Decision
		if err := json.Unmarshal(b, &d); err != nil || d.Severity != s || !strings.Contains(string(b), `"severity":"`+s.String()+`"`) {
			t.Errorf("%s: %s reads back as %v, %v", s, b, d.Severity, err)
		}
	}
	var s Severity
	if err := s.UnmarshalText([]byte("urgent")); !errors.Is(err, ErrInvalid) {
		t.Errorf("urgent: %v", err)
	}
	if got := Severity(9).String(); got != "severity(9)" {
		t.Errorf("Severity(9) = %q", got)
	}
}

// What each action does to the child: the supervisor's stop machine and
// replay's ending rely on these.
func TestActionKinds(t *testing.T) {
	want := map[Action][3]bool{ // ends, recovers, checkpoints first
		ActionLog: {}, ActionAlert: {}, ActionCheckpoint: {}, ActionDegrade: {},
		ActionCheckpointStop: {true, false, true}, ActionStop: {true, false, false}, ActionKill: {true, false, false},
		ActionRestart: {true, true, true}, ActionRollback: {true, true, false}, ActionFailover: {true, true, false},
		ActionRerunSeed: {true, true, false},
	}
	if len(want) != len(knownActions) {
		t.Fatalf("%d actions known, the test knows %d", len(knownActions), len(want))
	}
	for a, w := range want {
		if got := [3]bool{a.Ends(), a.Recovers(), a.CheckpointsFirst()}; got != w {
			t.Errorf("%s: ends, recovers, checkpoints first = %v, want %v", a, got, w)
		}
	}
}

// The canonical names: each once, with its source; only gpu_ names need
// NVML.
func TestNames(t *testing.T) {
	seen := map[string]bool{}
	for _, n := range Names() {
		if seen[n.Name] || !slices.Contains([]string{"marker", "probe", "notify", "clock"}, n.Source) {
			t.Errorf("name %+v: twice, or an unknown source", n)
		}
		seen[n.Name] = true
		if IsGPUMetric(n.Name) != strings.HasPrefix(n.Name, "gpu_") || IsGPUMetric(n.Name) && n.Source != "probe" {
			t.Errorf("%s: IsGPUMetric = %v", n.Name, IsGPUMetric(n.Name))
		}
	}
	for _, n := range []string{NameLoss, NameMemory, NameGPUMemory, NameHealth, NameElapsed} {
		if !seen[n] {
			t.Errorf("Names() lacks %s", n)
		}
	}
	if IsGPUMetric(NameMemory) || !IsGPUMetric(NameGPUUtil) {
		t.Error("IsGPUMetric")
	}
	if got := (Observation{Name: "loss", Value: 0.5}).String() + " " + (Observation{Name: "checkpoint", Text: "/ck/1"}).String(); got != `loss=0.5 checkpoint="/ck/1"` {
		t.Errorf("Observation.String: %s", got)
	}
}
