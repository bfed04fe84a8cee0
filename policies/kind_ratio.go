package policies

import (
	"fmt"
	"math"
	"time"
)

// KindRatio: the fraction of time a metric meets a condition, below a
// target (seed: PWSA uptime 99.9 %).
const KindRatio = "ratio"

func ratioKind() Kind {
	return Kind{Name: KindRatio, Severity: SeverityMedium,
		Doc: "fraction of time/samples meeting a condition below a target",
		Fields: []Field{
			{"above", "a value above this is out of bounds"},
			{"below", "a value below this is out of bounds"},
			{"at_least", "the fraction of time (0..1] that must be within bounds"},
			{"over", "the sliding window of run time, such as \"1m\""},
		},
		build: func(r *RuleSpec, m Meta, c ruleCheck) (Rule, error) {
			if err := c.need("at_least", r.AtLeast != nil); err != nil {
				return nil, err
			}
			return NewRatio(m, str(r.Metric), r.Above.ptr(), r.Below.ptr(), *r.AtLeast, r.Over.D())
		}}
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
	m.Kind = KindRatio
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

// restart: a new run is judged on its own samples.
func (r *Ratio) restart(time.Time) { r.first, r.changes, r.frac, r.holds = time.Time{}, nil, 0, false }
