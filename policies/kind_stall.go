package policies

import (
	"fmt"
	"math"
	"time"
)

// KindStall: no improvement of at least min_delta in patience
// observations (seed: convergence patience, threshold 1e-6).
const KindStall = "stall"

func stallKind() Kind {
	return Kind{Name: KindStall, Severity: SeverityMedium,
		Doc: "no improvement of at least `min_delta` in `patience` observations",
		Fields: []Field{
			{"patience", "observations without improvement before it holds"},
			{"min_delta", "the least change that counts as improvement (default 0)"},
			{"goal", "min (default: lower is better) | max"},
		},
		build: func(r *RuleSpec, m Meta, c ruleCheck) (Rule, error) {
			if err := c.need("patience", r.Patience != nil); err != nil {
				return nil, err
			}
			md := 0.0
			if r.MinDelta != nil {
				md = *r.MinDelta
			}
			maximize := false
			switch str(r.Goal) {
			case "", "min":
			case "max":
				maximize = true
			default:
				return nil, c.bad("goal", "want min (lower is better) or max")
			}
			return NewStall(m, str(r.Metric), *r.Patience, md, maximize)
		}}
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
	m.Kind = KindStall
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

func (r *Stall) rearm(time.Time) { r.best, r.seen, r.since, r.c = 0, false, 0, carried{} }
