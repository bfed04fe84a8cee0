package policies

import (
	"errors"
	"fmt"
	"time"
)

// ErrInvalid is wrapped by every error about a rule that cannot work.
var ErrInvalid = errors.New("policies: invalid policy")

// Severity ranks a violation; it sets the default action (seed 2.1,
// handle_violation).
type Severity int

// Severities, lowest first.
const (
	SeverityLow Severity = iota + 1
	SeverityMedium
	SeverityHigh
	SeverityCritical
)

var severityNames = map[Severity]string{
	SeverityLow:      "low",
	SeverityMedium:   "medium",
	SeverityHigh:     "high",
	SeverityCritical: "critical",
}

// String is the severity's word (low, medium, high, critical).
func (s Severity) String() string {
	if n, ok := severityNames[s]; ok {
		return n
	}
	return fmt.Sprintf("severity(%d)", int(s))
}

// MarshalText makes severities read as words in JSON reports.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a severity's word (a violations log read back).
func (s *Severity) UnmarshalText(b []byte) error {
	v, err := ParseSeverity(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// ParseSeverity reads a severity name.
func ParseSeverity(s string) (Severity, error) {
	for k, v := range severityNames {
		if v == s {
			return k, nil
		}
	}
	return 0, fmt.Errorf("%w: unknown severity %q (low | medium | high | critical)", ErrInvalid, s)
}

// Action is what the supervisor is asked to do about a decision.
type Action string

// Actions of DESIGN.md. The last four are recovery actions: each ends the
// child (as a stop, after a checkpoint when the child can take one) and
// then the run acts, one layer up (supervisor: the run's recovery).
const (
	ActionLog            Action = "log"
	ActionAlert          Action = "alert"
	ActionCheckpoint     Action = "checkpoint"
	ActionDegrade        Action = "degrade"
	ActionCheckpointStop Action = "checkpoint-stop"
	ActionStop           Action = "stop"
	ActionKill           Action = "kill"
	// ActionRestart: checkpoint, stop, start a new child from the newest
	// acknowledged checkpoint.
	ActionRestart Action = "restart"
	// ActionRollback: as restart, from the newest checkpoint acknowledged
	// before the violation began (Decision.Since), not the newest.
	ActionRollback Action = "rollback"
	// ActionFailover: stop, then run the policy's [recovery] fallback.
	ActionFailover Action = "failover"
	// ActionRerunSeed: stop, then run the command again from the start
	// with the same seed (the world record's reproducibility rule).
	ActionRerunSeed Action = "rerun-seed"
)

var knownActions = []Action{ActionLog, ActionAlert, ActionCheckpoint, ActionDegrade,
	ActionCheckpointStop, ActionStop, ActionKill, ActionRestart, ActionRollback, ActionFailover, ActionRerunSeed}

// ParseAction reads an action name.
func ParseAction(s string) (Action, error) {
	for _, a := range knownActions {
		if string(a) == s {
			return a, nil
		}
	}
	return "", fmt.Errorf("%w: unknown action %q", ErrInvalid, s)
}

// Ends reports whether the action ends the child.
func (a Action) Ends() bool {
	return a == ActionCheckpointStop || a == ActionStop || a == ActionKill || a.Recovers()
}

// Recovers reports whether the action goes on after the child's end
// (restart, rollback, failover, rerun-seed).
func (a Action) Recovers() bool {
	return a == ActionRestart || a == ActionRollback || a == ActionFailover || a == ActionRerunSeed
}

// CheckpointsFirst reports whether the action asks for a checkpoint
// before it stops the child: checkpoint-stop, and restart (whose next
// child resumes from it). Rollback goes back before the violation, so a
// checkpoint of the bad state is of no use; failover and rerun-seed do
// not resume.
func (a Action) CheckpointsFirst() bool { return a == ActionCheckpointStop || a == ActionRestart }

// DefaultAction is the action a severity implies when a rule names none
// (seed 2.1): critical -> emergency stop, high -> checkpoint then stop,
// which keeps the work (a policy's [recovery] strategy replaces it: see
// Resolve), medium -> log and alert, low -> warning.
func DefaultAction(s Severity) Action {
	switch s {
	case SeverityCritical:
		return ActionKill
	case SeverityHigh:
		return ActionCheckpointStop
	case SeverityMedium:
		return ActionAlert
	default:
		return ActionLog
	}
}

// Decision is the engine's verdict on one observation for one rule.
type Decision struct {
	Time     time.Time `json:"time"`
	Rule     string    `json:"rule"`
	Kind     string    `json:"kind"`
	Severity Severity  `json:"severity"`
	Action   Action    `json:"action"`
	What     string    `json:"what,omitempty"`
	Signal   string    `json:"signal,omitempty"` // the rule's own signal for the action
	Reason   string    `json:"reason"`
	// ExitCode, when set, is the code prism-run exits with if this decision
	// ends the child (a rule's exit_code).
	ExitCode *int `json:"exit_code,omitempty"`
	// Since is when the rule's condition began to hold (the start of its
	// episode): a rollback goes back to a checkpoint from before it.
	Since time.Time `json:"since,omitzero"`
}
