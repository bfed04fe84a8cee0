package policies

import (
	"fmt"
	"math"
	"time"
)

// KindBudget: a cumulative sum above a budget (seed: the LLM privacy
// budget).
const KindBudget = "budget"

func budgetKind() Kind {
	return Kind{Name: KindBudget, Severity: SeverityMedium,
		Doc: "cumulative sum above a budget",
		Fields: []Field{
			{"budget", "the most that may be spent"},
			{"running_total", "true: the metric already is the total spent (default: its values are summed)"},
		},
		build: func(r *RuleSpec, m Meta, c ruleCheck) (Rule, error) {
			if err := c.need("budget", r.Budget != nil); err != nil {
				return nil, err
			}
			return NewBudget(m, str(r.Metric), float64(*r.Budget), r.RunningTotal != nil && *r.RunningTotal)
		}}
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
	m.Kind = KindBudget
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

// restart: a new run (--verify-repro's second) spends from nothing.
func (r *Budget) restart(time.Time) { r.spent, r.c = 0, carried{} }
