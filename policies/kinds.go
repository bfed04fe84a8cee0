package policies

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Every rule kind of DESIGN.md. A rule that watches a metric judges only
// the observations of that name; for every other observation it carries
// its last verdict over (not Fresh), so a condition keeps holding across
// clock ticks and `for` and escalation can measure how long it held.
// Time is the observation's, clamped so it never runs backwards for a rule.
// NaN fails closed: a NaN where a bound is checked counts as a violation,
// since a diverging computation is what these rules exist to catch.

// clock keeps a rule's time monotonic when timestamps go backwards.
type clock struct{ last time.Time }

func (c *clock) at(t time.Time) time.Time {
	if t.After(c.last) {
		c.last = t
	}
	return c.last
}

// carried is the verdict a metric rule holds between its observations.
type carried struct{ holds bool }

func (c *carried) set(holds bool) Verdict {
	c.holds = holds
	return Verdict{Holds: holds, Fresh: true}
}

func (c *carried) get() Verdict { return Verdict{Holds: c.holds} }

func fmtv(v float64) string { return fmt.Sprintf("%g", v) }

// Threshold holds while an aggregate of a metric over a window is above
// Above or below Below.
type Threshold struct {
	M            Meta
	Metric       string
	Above, Below *float64
	Agg          Aggregate
	w            *window
	desc         string
	c            carried
	clk          clock
	value        float64 // the aggregate last judged
}

// NewThreshold checks and returns a threshold rule over a window of n
// observations or duration d (neither: the last observation).
func NewThreshold(m Meta, metric string, above, below *float64, agg Aggregate, n int, d time.Duration) (*Threshold, error) {
	m.Kind = "threshold"
	switch {
	case metric == "":
		return nil, fmt.Errorf("%w: rule %q: threshold needs a metric", ErrInvalid, m.Name)
	case above == nil && below == nil:
		return nil, fmt.Errorf("%w: rule %q: threshold needs 'above' or 'below'", ErrInvalid, m.Name)
	case n < 0 || n > MaxWindowCount || d < 0:
		return nil, fmt.Errorf("%w: rule %q: window must be 1..%d observations or a positive duration", ErrInvalid, m.Name, MaxWindowCount)
	}
	if agg == "" {
		agg = AggLast
	}
	desc := metric
	switch {
	case agg == AggLast && n <= 1 && d == 0:
	case d > 0:
		desc = fmt.Sprintf("%s %s over %s", metric, agg, d)
	default:
		desc = fmt.Sprintf("%s %s over %d observations", metric, agg, n)
	}
	return &Threshold{M: m, Metric: metric, Above: above, Below: below, Agg: agg, w: newWindow(n, d), desc: desc}, nil
}

// Meta implements Rule.
func (r *Threshold) Meta() Meta { return r.M }

// Eval implements Rule.
func (r *Threshold) Eval(_ time.Time, o Observation) Verdict {
	if o.Name != r.Metric {
		return r.c.get()
	}
	r.w.add(r.clk.at(o.Time), o.Value)
	v := r.w.agg(r.Agg)
	r.value = v
	return r.c.set(math.IsNaN(v) || (r.Above != nil && v > *r.Above) || (r.Below != nil && v < *r.Below))
}

// Reason implements Rule.
func (r *Threshold) Reason() string {
	v := r.value
	switch {
	case math.IsNaN(v):
		return r.desc + " is NaN"
	case r.Above != nil && v > *r.Above:
		return fmt.Sprintf("%s = %s, above %s", r.desc, fmtv(v), fmtv(*r.Above))
	default:
		return fmt.Sprintf("%s = %s, below %s", r.desc, fmtv(v), fmtv(*r.Below))
	}
}

// Monotonic holds on an observation that moves the wrong way by more than
// Tolerance: the seed's entropy must not decrease (tolerance 1e-10).
type Monotonic struct {
	M          Meta
	Metric     string
	Tolerance  float64
	Increasing bool // true: must not decrease; false: must not increase
	last       float64
	prev       float64
	seen       bool
}

// NewMonotonic returns a monotonic rule.
func NewMonotonic(m Meta, metric string, tolerance float64, increasing bool) (*Monotonic, error) {
	m.Kind = "monotonic"
	if metric == "" || tolerance < 0 || math.IsNaN(tolerance) {
		return nil, fmt.Errorf("%w: rule %q: monotonic needs a metric and a tolerance >= 0", ErrInvalid, m.Name)
	}
	return &Monotonic{M: m, Metric: metric, Tolerance: tolerance, Increasing: increasing}, nil
}

// Meta implements Rule.
func (r *Monotonic) Meta() Meta { return r.M }

// Eval implements Rule. A violation holds on its own observation only.
func (r *Monotonic) Eval(_ time.Time, o Observation) Verdict {
	if o.Name != r.Metric {
		return Verdict{}
	}
	had := r.seen
	r.prev, r.last, r.seen = r.last, o.Value, true
	bad := math.IsNaN(o.Value) ||
		(had && r.Increasing && o.Value < r.prev-r.Tolerance) ||
		(had && !r.Increasing && o.Value > r.prev+r.Tolerance)
	return Verdict{Holds: bad, Fresh: true}
}

// Reason implements Rule.
func (r *Monotonic) Reason() string {
	switch {
	case math.IsNaN(r.last):
		return r.Metric + " is NaN"
	case r.Increasing:
		return fmt.Sprintf("%s decreased from %s to %s", r.Metric, fmtv(r.prev), fmtv(r.last))
	default:
		return fmt.Sprintf("%s increased from %s to %s", r.Metric, fmtv(r.prev), fmtv(r.last))
	}
}

// Stall holds when Patience observations in a row brought no improvement
// of at least MinDelta (the seed's convergence patience, threshold 1e-6).
type Stall struct {
	M        Meta
	Metric   string
	Patience int
	MinDelta float64
	Maximize bool
	best     float64
	seen     bool
	since    int
	c        carried
}

// NewStall returns a stall rule.
func NewStall(m Meta, metric string, patience int, minDelta float64, maximize bool) (*Stall, error) {
	m.Kind = "stall"
	if metric == "" || patience < 1 || minDelta < 0 || math.IsNaN(minDelta) {
		return nil, fmt.Errorf("%w: rule %q: stall needs a metric, patience >= 1 and min_delta >= 0", ErrInvalid, m.Name)
	}
	return &Stall{M: m, Metric: metric, Patience: patience, MinDelta: minDelta, Maximize: maximize}, nil
}

// Meta implements Rule.
func (r *Stall) Meta() Meta { return r.M }

// Eval implements Rule.
func (r *Stall) Eval(_ time.Time, o Observation) Verdict {
	if o.Name != r.Metric {
		return r.c.get()
	}
	v := o.Value
	improved := false
	switch {
	case math.IsNaN(v):
	case !r.seen:
		improved = true
	case r.Maximize:
		improved = v >= r.best+r.MinDelta && v > r.best
	default:
		improved = v <= r.best-r.MinDelta && v < r.best
	}
	if improved {
		r.best, r.seen, r.since = v, true, 0
		return r.c.set(false)
	}
	r.since++
	return r.c.set(r.since >= r.Patience)
}

// Reason implements Rule.
func (r *Stall) Reason() string {
	return fmt.Sprintf("%s has not improved by %s in %d observations (best %s)", r.Metric, fmtv(r.MinDelta), r.since, fmtv(r.best))
}

// ConvergeBy holds once the Counter metric passed Within without the
// Converged metric having been reported true (LLM: within 3 iterations).
type ConvergeBy struct {
	M                 Meta
	Counter, Converge string
	Within            float64
	iter              float64
	converged         bool
	c                 carried
}

// NewConvergeBy returns a converge-by rule.
func NewConvergeBy(m Meta, counter, converged string, within float64) (*ConvergeBy, error) {
	m.Kind = "converge-by"
	if counter == "" || converged == "" || !(within > 0) {
		return nil, fmt.Errorf("%w: rule %q: converge-by needs 'within' > 0", ErrInvalid, m.Name)
	}
	return &ConvergeBy{M: m, Counter: counter, Converge: converged, Within: within}, nil
}

// Meta implements Rule.
func (r *ConvergeBy) Meta() Meta { return r.M }

// Eval implements Rule.
func (r *ConvergeBy) Eval(_ time.Time, o Observation) Verdict {
	switch o.Name {
	case r.Converge:
		r.converged = o.Value > 0 // a later "false" means it diverged again
	case r.Counter:
		r.iter = o.Value
	default:
		return r.c.get()
	}
	return r.c.set(!r.converged && (r.iter > r.Within || math.IsNaN(r.iter)))
}

// Reason implements Rule.
func (r *ConvergeBy) Reason() string {
	return fmt.Sprintf("not %s after %s %s (must be within %s)", r.Converge, r.Counter, fmtv(r.iter), fmtv(r.Within))
}

// Max holds while a counter is above Max (the seed's 1e6 iterations).
type Max struct {
	M      Meta
	Metric string
	Max    float64
	c      carried
	value  float64
}

// NewMax returns a max rule.
func NewMax(m Meta, metric string, maxv float64) (*Max, error) {
	m.Kind = "max"
	if metric == "" || math.IsNaN(maxv) {
		return nil, fmt.Errorf("%w: rule %q: max needs a metric and 'max'", ErrInvalid, m.Name)
	}
	return &Max{M: m, Metric: metric, Max: maxv}, nil
}

// Meta implements Rule.
func (r *Max) Meta() Meta { return r.M }

// Eval implements Rule.
func (r *Max) Eval(_ time.Time, o Observation) Verdict {
	if o.Name != r.Metric {
		return r.c.get()
	}
	r.value = o.Value
	return r.c.set(math.IsNaN(o.Value) || o.Value > r.Max)
}

// Reason implements Rule.
func (r *Max) Reason() string {
	return fmt.Sprintf("%s = %s, above the maximum %s", r.Metric, fmtv(r.value), fmtv(r.Max))
}

// Budget holds once the spend of a metric is above Budget: the sum of its
// values, or its last value when the metric already is a running total
// (the LLM privacy budget).
type Budget struct {
	M            Meta
	Metric       string
	Budget       float64
	RunningTotal bool
	spent        float64
	c            carried
}

// NewBudget returns a budget rule.
func NewBudget(m Meta, metric string, budget float64, runningTotal bool) (*Budget, error) {
	m.Kind = "budget"
	if metric == "" || math.IsNaN(budget) {
		return nil, fmt.Errorf("%w: rule %q: budget needs a metric and 'budget'", ErrInvalid, m.Name)
	}
	return &Budget{M: m, Metric: metric, Budget: budget, RunningTotal: runningTotal}, nil
}

// Meta implements Rule.
func (r *Budget) Meta() Meta { return r.M }

// Eval implements Rule.
func (r *Budget) Eval(_ time.Time, o Observation) Verdict {
	if o.Name != r.Metric {
		return r.c.get()
	}
	if r.RunningTotal {
		r.spent = o.Value
	} else {
		r.spent += o.Value
	}
	return r.c.set(math.IsNaN(r.spent) || r.spent > r.Budget)
}

// Reason implements Rule.
func (r *Budget) Reason() string {
	return fmt.Sprintf("%s spent %s of a budget of %s", r.Metric, fmtv(r.spent), fmtv(r.Budget))
}

// Ratio holds when, over the last Over of run time, the fraction of time
// during which the metric was within bounds (not above Above, not below
// Below) is under AtLeast: PWSA's 99.9 % uptime. Each observation's state
// lasts until the next one; the rule judges nothing until Over has passed
// since the metric first appeared.
type Ratio struct {
	M            Meta
	Metric       string
	Above, Below *float64
	AtLeast      float64
	Over         time.Duration
	first        time.Time
	changes      []stateChange // oldest first; changes[0] may start before the window
	clk          clock
	frac         float64
	holds        bool
}

type stateChange struct {
	at  time.Time
	bad bool
}

// NewRatio returns a ratio rule.
func NewRatio(m Meta, metric string, above, below *float64, atLeast float64, over time.Duration) (*Ratio, error) {
	m.Kind = "ratio"
	switch {
	case metric == "" || (above == nil && below == nil):
		return nil, fmt.Errorf("%w: rule %q: ratio needs a metric and 'above' or 'below'", ErrInvalid, m.Name)
	case !(atLeast > 0 && atLeast <= 1):
		return nil, fmt.Errorf("%w: rule %q: ratio 'at_least' must be in (0, 1]", ErrInvalid, m.Name)
	case over <= 0:
		return nil, fmt.Errorf("%w: rule %q: ratio needs 'over', a positive duration", ErrInvalid, m.Name)
	}
	return &Ratio{M: m, Metric: metric, Above: above, Below: below, AtLeast: atLeast, Over: over}, nil
}

// Meta implements Rule.
func (r *Ratio) Meta() Meta { return r.M }

// Eval implements Rule.
func (r *Ratio) Eval(_ time.Time, o Observation) Verdict {
	fresh := o.Name == r.Metric
	if !fresh && o.Source != SourceClock {
		// Time moves for this rule with its metric and the clock; other
		// metrics' observations carry the last verdict.
		return Verdict{Holds: r.holds}
	}
	now := r.clk.at(o.Time)
	if fresh {
		bad := math.IsNaN(o.Value) || (r.Above != nil && o.Value > *r.Above) || (r.Below != nil && o.Value < *r.Below)
		if r.first.IsZero() {
			r.first = now
		}
		if n := len(r.changes); n == 0 || r.changes[n-1].bad != bad {
			r.changes = append(r.changes, stateChange{now, bad})
		}
	}
	if r.first.IsZero() || now.Sub(r.first) < r.Over {
		r.holds = false
		return Verdict{Fresh: fresh}
	}
	from := now.Add(-r.Over)
	// Drop the changes wholly before the window (keep the one in force at its start).
	for len(r.changes) > 1 && !r.changes[1].at.After(from) {
		r.changes = r.changes[1:]
	}
	var good time.Duration
	for i, ch := range r.changes {
		start := ch.at
		if start.Before(from) {
			start = from
		}
		end := now
		if i+1 < len(r.changes) {
			end = r.changes[i+1].at
		}
		if !ch.bad && end.After(start) {
			good += end.Sub(start)
		}
	}
	r.frac = float64(good) / float64(r.Over)
	r.holds = r.frac < r.AtLeast
	return Verdict{Holds: r.holds, Fresh: fresh}
}

// Reason implements Rule.
func (r *Ratio) Reason() string {
	return fmt.Sprintf("%s within bounds %.4f%% of the last %s, below %.4f%%", r.Metric, 100*r.frac, r.Over, 100*r.AtLeast)
}

// Heartbeat holds when a metric (or, with Metric "", any marker of the
// child) has not been seen for Timeout: a hung child. The clock starts at
// the run's start.
type Heartbeat struct {
	M       Meta
	Metric  string
	Timeout time.Duration
	last    time.Time
	gap     time.Duration
	clk     clock
}

// NewHeartbeat returns a heartbeat rule.
func NewHeartbeat(m Meta, metric string, timeout time.Duration) (*Heartbeat, error) {
	m.Kind = "heartbeat"
	if timeout <= 0 {
		return nil, fmt.Errorf("%w: rule %q: heartbeat needs 'timeout', a positive duration", ErrInvalid, m.Name)
	}
	return &Heartbeat{M: m, Metric: metric, Timeout: timeout}, nil
}

// Meta implements Rule.
func (r *Heartbeat) Meta() Meta { return r.M }

// Eval implements Rule.
func (r *Heartbeat) Eval(start time.Time, o Observation) Verdict {
	now := r.clk.at(o.Time)
	if r.last.IsZero() {
		r.last = start
	}
	if r.Metric == "" && (o.Source == SourceStdout || o.Source == SourceStderr || o.Source == SourceNotify) || o.Name == r.Metric && r.Metric != "" {
		r.last = now
		return Verdict{Fresh: true}
	}
	r.gap = now.Sub(r.last)
	return Verdict{Holds: r.gap > r.Timeout}
}

// Reason implements Rule.
func (r *Heartbeat) Reason() string {
	what := r.Metric
	if what == "" {
		what = "marker"
	}
	return fmt.Sprintf("no %s for %s (timeout %s)", what, r.gap.Round(time.Millisecond), r.Timeout)
}

// NameHealth is the observation the GPU health probe reports events as:
// Text is the event ("xid:79", "ecc:double-bit", "gpu-lost").
const NameHealth = "health"

// Health holds on a GPU health event whose text starts with one of Events
// (all events when Events is empty).
type Health struct {
	M      Meta
	Events []string
	event  string
	gpu    string
}

// NewHealth returns a health rule.
func NewHealth(m Meta, events []string) (*Health, error) {
	m.Kind = "health"
	return &Health{M: m, Events: events}, nil
}

// Meta implements Rule.
func (r *Health) Meta() Meta { return r.M }

// Eval implements Rule. Each matching event holds on its own observation.
func (r *Health) Eval(_ time.Time, o Observation) Verdict {
	if o.Name != NameHealth {
		return Verdict{}
	}
	match := len(r.Events) == 0
	for _, e := range r.Events {
		if strings.HasPrefix(o.Text, e) {
			match = true
		}
	}
	r.event, r.gpu = o.Text, o.Labels["gpu"]
	return Verdict{Holds: match, Fresh: true}
}

// Reason implements Rule.
func (r *Health) Reason() string {
	if r.gpu != "" {
		return "GPU health event " + r.event + " on GPU " + r.gpu
	}
	return "GPU health event " + r.event
}
