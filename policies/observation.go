// Package policies is prism-run's pure core: Observations go in, Decisions
// come out. It does no I/O beyond reading a policy file and never reads the
// wall clock inside a rule: every rule judges time by the timestamps of the
// Observations it is given, so the same input always gives the same
// Decisions (what makes replay and table tests of every rule possible).
package policies

import (
	"fmt"
	"time"
)

// Source says where an Observation came from.
type Source string

// The sources of DESIGN.md's Observation.
const (
	SourceStdout Source = "stdout"
	SourceStderr Source = "stderr"
	SourceProbe  Source = "probe"
	SourceNotify Source = "notify"
	SourceClock  Source = "clock"
)

// Observation is one fact about the run: a metric (Value) or an event (Text).
type Observation struct {
	Time   time.Time
	Source Source
	Name   string
	Value  float64
	Text   string
	Labels map[string]string
}

// String is the observation as a marker writes it: name=value, or
// name="text".
func (o Observation) String() string {
	if o.Text != "" {
		return fmt.Sprintf("%s=%q", o.Name, o.Text)
	}
	return fmt.Sprintf("%s=%g", o.Name, o.Value)
}

// Clock gives the engine the time for observations that arrive without one.
// It is injected so that tests and replay control time completely.
type Clock interface {
	Now() time.Time
}
