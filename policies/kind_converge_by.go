package policies

import (
	"fmt"
	"math"
	"time"
)

// KindConvergeBy: must report converged within N iterations (seed, LLM:
// within 3 iterations).
const KindConvergeBy = "converge-by"

func convergeByKind() Kind {
	return Kind{Name: KindConvergeBy, Severity: SeverityMedium,
		Doc: "must report converged within N iterations",
		Fields: []Field{
			{"within", "the counter's value by which it must have converged"},
			{"counter", "the counter metric (default \"iter\")"},
			{"converged", "the metric that is true once converged (default \"converged\")"},
		},
		build: func(r *RuleSpec, m Meta, c ruleCheck) (Rule, error) {
			if err := c.need("within", r.Within != nil); err != nil {
				return nil, err
			}
			counter, conv := NameIter, NameConverged
			if r.Counter != nil {
				counter = *r.Counter
			}
			if r.Converged != nil {
				conv = *r.Converged
			}
			return NewConvergeBy(m, counter, conv, float64(*r.Within))
		}}
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
	m.Kind = KindConvergeBy
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

func (r *ConvergeBy) rearm(time.Time) { r.iter, r.converged, r.c = 0, false, carried{} }
