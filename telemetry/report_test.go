package telemetry

import (
	"testing"
	"time"

	"github.com/prism-run/prism-run/policies"
)

// A rule tripping on every line of a long run keeps the report bounded,
// and the decision that ended the run is never the one dropped.
func TestAddDecisionIsBounded(t *testing.T) {
	r := NewReport("r", time.Unix(0, 0))
	for i := 0; i < MaxDecisions+5; i++ {
		r.AddDecision(policies.Decision{Rule: "noisy", Action: policies.ActionLog})
	}
	r.AddDecision(policies.Decision{Rule: "latency-hard", Action: policies.ActionStop})
	if len(r.Decisions) != MaxDecisions+1 || r.DecisionsDropped != 5 {
		t.Fatalf("kept %d, dropped %d; want %d and 5", len(r.Decisions), r.DecisionsDropped, MaxDecisions+1)
	}
	if last := r.Decisions[len(r.Decisions)-1]; last.Rule != "latency-hard" {
		t.Errorf("the ending decision was dropped: last kept is %q", last.Rule)
	}
}
