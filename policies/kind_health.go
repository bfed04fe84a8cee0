package policies

import (
	"strings"
	"time"
)

// KindHealth: a GPU health event (seed: the health monitor's critical
// Xid, ECC errors, a lost GPU).
const KindHealth = "health"

func healthKind() Kind {
	return Kind{Name: KindHealth, Severity: SeverityMedium, Momentary: true,
		Doc:    "GPU health event (critical Xid, ECC, a lost GPU)",
		Fields: []Field{{"events", "event prefixes such as [\"xid:79\", \"ecc\"] (default: every event)"}},
		build: func(r *RuleSpec, m Meta, c ruleCheck) (Rule, error) {
			return NewHealth(m, r.Events)
		}}
}

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
	m.Kind = KindHealth
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
