package policies

import (
	"fmt"
	"math"
	"time"
)

// KindMax: a counter above a maximum (seed: max iterations 1e6).
const KindMax = "max"

func maxKind() Kind {
	return Kind{Name: KindMax, Severity: SeverityMedium,
		Doc:    "counter above a maximum",
		Fields: []Field{{"max", "the largest value allowed"}},
		build: func(r *RuleSpec, m Meta, c ruleCheck) (Rule, error) {
			if err := c.need("max", r.Max != nil); err != nil {
				return nil, err
			}
			return NewMax(m, str(r.Metric), float64(*r.Max))
		}}
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
	m.Kind = KindMax
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

func (r *Max) rearm(time.Time) { r.c, r.value = carried{}, 0 }
