package policies

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Aggregate reduces a window of values to one.
type Aggregate string

// Aggregates a threshold rule may use.
const (
	AggLast Aggregate = "last"
	AggMean Aggregate = "mean"
	AggMax  Aggregate = "max"
	AggMin  Aggregate = "min"
	AggP50  Aggregate = "p50"
	AggP90  Aggregate = "p90"
	AggP99  Aggregate = "p99"
)

var aggregates = []Aggregate{AggLast, AggMean, AggMax, AggMin, AggP50, AggP90, AggP99}

// ParseAggregate reads an aggregate name.
func ParseAggregate(s string) (Aggregate, error) {
	for _, a := range aggregates {
		if string(a) == s {
			return a, nil
		}
	}
	return "", fmt.Errorf("%w: unknown aggregate %q (last | mean | max | min | p50 | p90 | p99)", ErrInvalid, s)
}

// Limits on what one window holds, whatever its declared size: a duration
// window over a fast metric keeps the newest MaxWindowSamples.
const (
	MaxWindowCount   = 1_000_000
	MaxWindowSamples = 1 << 20
)

// window holds the newest samples of a metric: the last n, or those of the
// last d. It keeps a running sum (for the mean) and a NaN count, since one
// NaN makes any aggregate of the window NaN.
type window struct {
	n    int
	d    time.Duration
	ts   []time.Time
	vs   []float64
	head int // index of the oldest sample in ts/vs (a slice-backed queue)
	sum  float64
	nans int
	tmp  []float64
}

func newWindow(n int, d time.Duration) *window {
	if n <= 0 && d <= 0 {
		n = 1
	}
	return &window{n: n, d: d}
}

func (w *window) len() int { return len(w.vs) - w.head }

func (w *window) add(t time.Time, v float64) {
	w.ts = append(w.ts, t)
	w.vs = append(w.vs, v)
	w.account(v, +1)
	for (w.n > 0 && w.len() > w.n) || w.len() > MaxWindowSamples ||
		(w.d > 0 && w.len() > 1 && t.Sub(w.ts[w.head]) > w.d) {
		w.account(w.vs[w.head], -1)
		w.head++
	}
	// Compact the queue once half of it is spent.
	if w.head > 64 && w.head*2 > len(w.vs) {
		w.ts = append(w.ts[:0], w.ts[w.head:]...)
		w.vs = append(w.vs[:0], w.vs[w.head:]...)
		w.head = 0
	}
}

func (w *window) account(v float64, sign float64) {
	switch {
	case math.IsNaN(v):
		w.nans += int(sign)
	case math.IsInf(v, 0):
		// ±Inf would poison the running sum for good; the mean is
		// recomputed from the samples while one is in the window.
	default:
		w.sum += sign * v
	}
}

func (w *window) agg(a Aggregate) float64 {
	vs := w.vs[w.head:]
	if len(vs) == 0 {
		return math.NaN()
	}
	if a == AggLast {
		return vs[len(vs)-1]
	}
	if w.nans > 0 {
		return math.NaN()
	}
	switch a {
	case AggMean:
		for _, v := range vs {
			if math.IsInf(v, 0) {
				s := 0.0
				for _, x := range vs {
					s += x
				}
				return s / float64(len(vs))
			}
		}
		return w.sum / float64(len(vs))
	case AggMax:
		return slices.Max(vs)
	case AggMin:
		return slices.Min(vs)
	}
	// Percentiles: nearest rank over a sorted copy.
	w.tmp = append(w.tmp[:0], vs...)
	slices.Sort(w.tmp)
	p := map[Aggregate]float64{AggP50: 0.50, AggP90: 0.90, AggP99: 0.99}[a]
	rank := int(math.Ceil(p*float64(len(w.tmp)))) - 1
	return w.tmp[max(rank, 0)]
}

func aggregateList() string {
	names := make([]string, len(aggregates))
	for i, a := range aggregates {
		names[i] = string(a)
	}
	return strings.Join(names, " | ")
}
