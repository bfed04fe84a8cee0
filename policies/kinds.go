package policies

import (
	"fmt"
	"time"
)

// What the rule kinds (kind_*.go, registered in registry.go) share. A rule that watches a metric judges only
// the observations of that name; for every other observation it carries
// its last verdict over (not Fresh), so a condition keeps holding across
// clock ticks and `for` and escalation can measure how long it held.
// Time is the observation's, clamped so it never runs backwards for a rule.
// NaN fails closed: a NaN where a bound is checked counts as a violation,
// since a diverging computation is what these rules exist to catch.

// clock keeps a rule's time monotonic when timestamps go backwards.
type clock struct{ last time.Time }

func (c *clock) at(t time.Time) time.Time {
	if t.After(c.last) {
		c.last = t
	}
	return c.last
}

// carried is the verdict a metric rule holds between its observations.
type carried struct{ holds bool }

func (c *carried) set(holds bool) Verdict {
	c.holds = holds
	return Verdict{Holds: holds, Fresh: true}
}

func (c *carried) get() Verdict { return Verdict{Holds: c.holds} }

func fmtv(v float64) string { return fmt.Sprintf("%g", v) }
