package policies

import (
	"fmt"
	"time"
)

// KindDeadline: elapsed run time above a limit (seed: the world record's
// 24 h, checkpoint-and-abort).
const KindDeadline = "deadline"

func deadlineKind() Kind {
	return Kind{Name: KindDeadline, Severity: SeverityHigh,
		Doc:    "elapsed wall time above a limit",
		Fields: []Field{{"after", "the run time, such as \"24h\""}},
		build: func(r *RuleSpec, m Meta, c ruleCheck) (Rule, error) {
			if err := c.need("after", r.After != nil); err != nil {
				return nil, err
			}
			return NewDeadline(m, r.After.D())
		}}
}

// Deadline holds once the run has lasted After (the seed's world-record 24 h
// limit; `--timeout`). Elapsed time is measured from the run's start to the
// observation's time, so any observation, a clock tick included, can trip it.
type Deadline struct {
	M       Meta
	After   time.Duration
	elapsed time.Duration
}

// NewDeadline returns a deadline rule; meta.Kind is set to "deadline" and
// meta.Repeat defaults to once (a deadline, once passed, holds for good).
func NewDeadline(meta Meta, after time.Duration) (*Deadline, error) {
	if after <= 0 {
		return nil, fmt.Errorf("%w: rule %q: deadline 'after' must be positive, got %s", ErrInvalid, meta.Name, after)
	}
	meta.Kind = KindDeadline
	if meta.Repeat == RepeatEpisode {
		meta.Repeat = RepeatOnce // it holds for good once it holds
	}
	return &Deadline{M: meta, After: after}, nil
}

// Meta implements Rule.
func (d *Deadline) Meta() Meta { return d.M }

// Eval implements Rule.
func (d *Deadline) Eval(start time.Time, o Observation) Verdict {
	d.elapsed = o.Time.Sub(start)
	return Verdict{Holds: d.elapsed >= d.After, Fresh: true}
}

// Reason implements Rule.
func (d *Deadline) Reason() string {
	return fmt.Sprintf("run time %s reached the deadline of %s", d.elapsed.Round(time.Millisecond), d.After)
}
