package policies

import (
	"fmt"
	"time"
)

// KindHeartbeat: no marker (or no observation of a metric) for a while:
// a hung child (seed: the health monitor).
const KindHeartbeat = "heartbeat"

func heartbeatKind() Kind {
	return Kind{Name: KindHeartbeat, Severity: SeverityMedium,
		Doc:    "no marker / watchdog ping for a duration (hang)",
		Fields: []Field{{"timeout", "how long without a marker (or the metric) before it holds"}},
		build: func(r *RuleSpec, m Meta, c ruleCheck) (Rule, error) {
			return NewHeartbeat(m, str(r.Metric), r.Timeout.D())
		}}
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
	m.Kind = KindHeartbeat
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

// rearm: the new child has Timeout from its start.
func (r *Heartbeat) rearm(start time.Time) { r.last, r.gap = r.clk.at(start), 0 }
