package supervisor

import (
	"errors"
	"syscall"

	"github.com/prism-run/prism-run/telemetry"
)

// Errors a run (or prism-run before it) fails with; ExitCode maps each to
// a code.
var (
	// ErrConfig: the configuration cannot work (exit 125).
	ErrConfig = errors.New("supervisor: bad configuration")
	// ErrSetup: prism-run could not prepare the run (exit 125).
	ErrSetup = errors.New("supervisor: setup failed")
	// ErrNotFound: the command does not exist (exit 127).
	ErrNotFound = errors.New("supervisor: command not found")
	// ErrCannotRun: the command exists but could not be run (exit 126).
	ErrCannotRun = errors.New("supervisor: command cannot be run")
	// ErrCancelled: the caller's context ended the run (exit 125).
	ErrCancelled = errors.New("supervisor: run cancelled")
)

// Exit codes of the design's table that prism-run chooses itself.
const (
	ExitNotReproducible = 65  // --verify-repro: the second run's results differ (sysexits EX_DATAERR)
	ExitResumable       = 75  // stopped by a policy after a confirmed checkpoint (sysexits EX_TEMPFAIL)
	ExitPolicy          = 124 // stopped by a policy without one (GNU timeout's code)
	ExitInternal        = 125 // prism-run failed
	ExitCannotRun       = 126 // the command was found but could not be run
	ExitNotFound        = 127 // the command was not found
)

// Outcome is how a run ended, as far as its exit code is concerned.
type Outcome struct {
	Reason telemetry.Reason
	// Code is the child's own exit code (ReasonExited).
	Code int
	// Signal is the signal the child died of (ReasonSignaled, ReasonOOM).
	Signal syscall.Signal
	// Acked: the checkpoint this policy stop asked for was acknowledged
	// (ReasonPolicy); an older checkpoint does not count.
	Acked bool
	// RuleExit is the stopping rule's own exit_code, if it has one
	// (ReasonPolicy).
	RuleExit *int
	// Preserve gives the child's own code (Code, or 128+Signal) after a
	// policy stop too: --preserve-status, as GNU timeout's.
	Preserve bool
	// Err is why prism-run failed (ReasonError).
	Err error
}

// Failed is the outcome of a run that failed with err before (or instead
// of) a child's ending: a usage mistake, a bad policy, a refused strict
// run, a command that cannot be started.
func Failed(err error) Outcome { return Outcome{Reason: telemetry.ReasonError, Err: err} }

// ExitCode is the one place an outcome becomes prism-run's exit code: the
// design document's exit-code table, row by row (a test reads the table
// and checks it against this function).
func ExitCode(o Outcome) int {
	switch o.Reason {
	case telemetry.ReasonExited:
		return o.Code
	case telemetry.ReasonNotReproducible:
		return ExitNotReproducible
	case telemetry.ReasonSignaled, telemetry.ReasonOOM:
		// The shell's convention, and GNU timeout's and tini's: 128+N.
		return 128 + int(o.Signal)
	case telemetry.ReasonPolicy:
		switch {
		case o.Preserve && o.Signal != 0:
			return 128 + int(o.Signal)
		case o.Preserve:
			return o.Code
		case o.RuleExit != nil:
			return *o.RuleExit
		case o.Acked:
			return ExitResumable
		default:
			return ExitPolicy
		}
	}
	switch {
	case errors.Is(o.Err, ErrNotFound):
		return ExitNotFound
	case errors.Is(o.Err, ErrCannotRun):
		return ExitCannotRun
	default:
		return ExitInternal
	}
}
