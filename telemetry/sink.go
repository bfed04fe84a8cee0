package telemetry

import (
	"time"

	"github.com/prism-run/prism-run/policies"
)

// EventKind names what happened to a child.
type EventKind string

// Events a run tells its sinks.
const (
	EventStarted      EventKind = "started"      // a child started (Attempt is its index; Restart: not the first)
	EventEnded        EventKind = "ended"        // a child ended
	EventCheckpointed EventKind = "checkpointed" // the child acknowledged a checkpoint
)

// Event is something that happened to a child of the run.
type Event struct {
	Kind    EventKind
	Time    time.Time
	Attempt int
	Restart bool // EventStarted: a restart (or the fallback), not the run's first child
}

// Nop is a sink that takes nothing: embedded, it gives a sink the methods
// it does not need (supervisor.Sink).
type Nop struct{}

// Observe does nothing.
func (Nop) Observe(policies.Observation) {}

// Signal does nothing.
func (Nop) Signal(time.Time, string) {}

// Violation does nothing.
func (Nop) Violation(Violation) {}

// Event does nothing.
func (Nop) Event(Event) {}
