package policies

import (
	"fmt"
	"math"
	"time"
)

// KindMonotonic: a metric must not decrease (or increase) beyond a
// tolerance (seed: entropy must not decrease).
const KindMonotonic = "monotonic"

func monotonicKind() Kind {
	return Kind{Name: KindMonotonic, Severity: SeverityMedium, Momentary: true,
		Doc: "metric must not decrease (or increase) beyond a tolerance",
		Fields: []Field{
			{"tolerance", "how far it may move the wrong way (default 0)"},
			{"direction", "increasing (default: must not decrease) | decreasing (must not increase)"},
		},
		build: func(r *RuleSpec, m Meta, c ruleCheck) (Rule, error) {
			tol := 0.0
			if r.Tolerance != nil {
				tol = *r.Tolerance
			}
			inc := true
			switch str(r.Direction) {
			case "", "increasing":
			case "decreasing":
				inc = false
			default:
				return nil, c.bad("direction", "want increasing (must not decrease) or decreasing (must not increase)")
			}
			return NewMonotonic(m, str(r.Metric), tol, inc)
		}}
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
	m.Kind = KindMonotonic
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

func (r *Monotonic) rearm(time.Time) { r.last, r.prev, r.seen = 0, 0, false }
