package telemetry

import (
	"sync"
	"time"

	"github.com/prism-run/prism-run/policies"
)

// Timeline bounds: points kept per series (older ones are thinned, every
// other one dropped, when a series is full), series kept (the first
// names), and events kept.
const (
	TimelinePoints = 2000
	TimelineSeries = 32
	TimelineEvents = 2000
)

// Timeline keeps what the HTML report charts: each metric over time (the
// markers' numbers, memory, GPU memory and utilization) and the moments
// that matter (violations, checkpoints, restarts). It is a sink: each
// method takes a short lock and returns; memory is bounded whatever the
// run's length (a full series is thinned, so it always spans the whole
// run).
type Timeline struct {
	Nop
	mu      sync.Mutex
	Start   time.Time
	Series  map[string]*Series
	order   []string
	Events  []TimelineEvent
	Dropped int // observations of names past TimelineSeries, events past TimelineEvents
}

// Series is one metric over time.
type Series struct {
	Name   string
	Unit   string    // "bytes", "ratio" or ""
	T      []float64 // seconds since the start
	V      []float64
	stride int // keep one point in stride (grows as the series is thinned)
	seen   int
}

// TimelineEvent is a moment on the time axis.
type TimelineEvent struct {
	T    float64 // seconds since the start
	Kind string  // violation | checkpoint | restart
	Text string
	Sev  string // violations: their severity
}

// NewTimeline starts the time axis at start.
func NewTimeline(start time.Time) *Timeline {
	return &Timeline{Start: start, Series: map[string]*Series{}}
}

// Observe adds a point to the observation's series.
func (t *Timeline) Observe(o policies.Observation) {
	if o.Text != "" || o.Value != o.Value { // text, NaN
		return
	}
	unit := ""
	switch {
	case o.Source == policies.SourceProbe && (o.Name == policies.NameMemory || o.Name == policies.NameGPUMemory):
		unit = "bytes"
	case o.Source == policies.SourceProbe && o.Name == policies.NameGPUUtil:
		unit = "ratio"
	case o.Source == policies.SourceProbe:
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.Series[o.Name]
	if !ok {
		if len(t.Series) >= TimelineSeries {
			t.Dropped++
			return
		}
		s = &Series{Name: o.Name, Unit: unit, stride: 1}
		t.Series[o.Name] = s
		t.order = append(t.order, o.Name)
	}
	s.seen++
	if s.seen%s.stride != 0 {
		return
	}
	s.T = append(s.T, o.Time.Sub(t.Start).Seconds())
	s.V = append(s.V, o.Value)
	if len(s.T) >= TimelinePoints {
		// Every other point goes, and from now on one in twice as many is
		// kept: the series still spans the run, at half the detail.
		n := 0
		for i := 0; i < len(s.T); i += 2 {
			s.T[n], s.V[n] = s.T[i], s.V[i]
			n++
		}
		s.T, s.V, s.stride = s.T[:n], s.V[:n], s.stride*2
	}
}

// Violation marks a violation on the time axis.
func (t *Timeline) Violation(v Violation) {
	t.event(TimelineEvent{T: v.Time.Sub(t.Start).Seconds(), Kind: "violation", Text: v.Rule + ": " + v.Reason, Sev: v.Severity.String()})
}

// Event marks checkpoints and restarts.
func (t *Timeline) Event(e Event) {
	switch {
	case e.Kind == EventCheckpointed:
		t.event(TimelineEvent{T: e.Time.Sub(t.Start).Seconds(), Kind: "checkpoint", Text: "checkpoint acknowledged"})
	case e.Kind == EventStarted && e.Restart:
		t.event(TimelineEvent{T: e.Time.Sub(t.Start).Seconds(), Kind: "restart", Text: "restart"})
	}
}

func (t *Timeline) event(e TimelineEvent) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.Events) >= TimelineEvents {
		t.Dropped++
		return
	}
	t.Events = append(t.Events, e)
}

// ordered is the series in the order they first came.
func (t *Timeline) ordered() []*Series {
	out := make([]*Series, 0, len(t.order))
	for _, n := range t.order {
		out = append(out, t.Series[n])
	}
	return out
}
