package policies

import (
	"fmt"
	"time"
)

// KindPeriodic is the kind of the rule [actions] checkpoint_every makes;
// not a kind a policy can write.
const KindPeriodic = "periodic"

// PeriodicRuleName is the name of the rule [actions] checkpoint_every
// (--checkpoint-every) makes; a policy's own rule may not take it.
const PeriodicRuleName = "checkpoint-every"

// Periodic holds every Interval of run time: the engine's way of asking for
// something on a schedule (`--checkpoint-every`). It holds at most once per
// observation, however long the gap since the last one.
type Periodic struct {
	M        Meta
	Interval time.Duration
	next     time.Time
}

// NewPeriodic returns a periodic rule; meta.Kind is set to "periodic" and
// it repeats on every period.
func NewPeriodic(meta Meta, interval time.Duration) (*Periodic, error) {
	if interval <= 0 {
		return nil, fmt.Errorf("%w: rule %q: period must be positive, got %s", ErrInvalid, meta.Name, interval)
	}
	meta.Kind = KindPeriodic
	meta.Repeat = RepeatEvery
	return &Periodic{M: meta, Interval: interval}, nil
}

// Meta implements Rule.
func (p *Periodic) Meta() Meta { return p.M }

// Eval implements Rule.
func (p *Periodic) Eval(start time.Time, o Observation) Verdict {
	if p.next.IsZero() {
		p.next = start.Add(p.Interval)
	}
	if o.Time.Before(p.next) {
		return Verdict{}
	}
	// Skip the periods that passed without an observation rather than
	// firing once for each of them.
	missed := int64(o.Time.Sub(p.next) / p.Interval)
	p.next = p.next.Add(time.Duration(missed+1) * p.Interval)
	// Each period is an episode of its own: it holds on this observation only.
	return Verdict{Holds: true, Fresh: true}
}

// Reason implements Rule.
func (p *Periodic) Reason() string { return fmt.Sprintf("periodic request every %s", p.Interval) }

// rearm: the new child's first request comes Interval after its start.
func (p *Periodic) rearm(start time.Time) { p.next = start.Add(p.Interval) }
