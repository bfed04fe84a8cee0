package policies

import (
	"fmt"
	"math"
	"time"
)

// KindThreshold: a metric above or below a bound, optionally over a
// window aggregate (seed: memory, latency 5 ms, GPU utilization).
const KindThreshold = "threshold"

func thresholdKind() Kind {
	return Kind{Name: KindThreshold, Severity: SeverityMedium,
		Doc: "metric above/below a bound, optionally over a window aggregate and only after it holds `for` a duration",
		Fields: []Field{
			{"above", "holds when the value is above this"},
			{"below", "holds when the value is below this"},
			{"aggregate", "last (default) | mean | max | min | p50 | p90 | p99, over the window"},
			{"window", "N observations, or a duration such as \"10s\" (default: the last one)"},
		},
		build: func(r *RuleSpec, m Meta, c ruleCheck) (Rule, error) {
			agg := AggLast
			if r.Aggregate != nil {
				var err error
				if agg, err = ParseAggregate(*r.Aggregate); err != nil {
					return nil, c.bad("aggregate", "unknown aggregate %q (%s)", *r.Aggregate, aggregateList())
				}
			}
			var w Window
			if r.Window != nil {
				w = *r.Window
			}
			if err := c.need("metric", str(r.Metric) != ""); err != nil {
				return nil, err
			}
			if r.Above == nil && r.Below == nil {
				return nil, fieldErr(c.f, "a threshold rule needs above or below")
			}
			return NewThreshold(m, str(r.Metric), r.Above.ptr(), r.Below.ptr(), agg, w.N, w.D)
		}}
}

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
	m.Kind = KindThreshold
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

func (r *Threshold) rearm(time.Time) { r.w, r.c, r.value = newWindow(r.w.n, r.w.d), carried{}, 0 }
