package policies

import (
	"fmt"
	"time"
)

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
	meta.Kind = "deadline"
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
	meta.Kind = "periodic"
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
	missed := o.Time.Sub(p.next) / p.Interval
	p.next = p.next.Add((missed + 1) * p.Interval)
	// Each period is an episode of its own: it holds on this observation only.
	return Verdict{Holds: true, Fresh: true}
}

// Reason implements Rule.
func (p *Periodic) Reason() string { return fmt.Sprintf("periodic request every %s", p.Interval) }
