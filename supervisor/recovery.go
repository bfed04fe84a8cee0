package supervisor

import (
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v5"
	"golang.org/x/sys/unix"

	"github.com/prism-run/prism-run/policies"
	"github.com/prism-run/prism-run/telemetry"
)

// ended is how one attempt ended, as recovery judges it.
type ended struct {
	outcome Outcome
	// decision is the rule's decision that ended the child (a policy
	// stop), nil when it ended on its own or from outside.
	decision *policies.Decision
	// outside: a terminating signal sent to prism-run, or the caller,
	// ended it: the run ends, whatever the policy says.
	outside bool
	// preempted: the child was stopped the way a scheduler preempts a
	// job, with its work saved: a restart's checkpoint-stop whose
	// checkpoint it acknowledged, or a SIGTERM no one in prism-run sent
	// after a checkpoint it acknowledged. Such an end does not use the
	// failure budget.
	preempted bool
	ran       time.Duration // how long the child ran
	failover  bool          // the attempt was the fallback command
}

// step is what the run does after an attempt.
type step struct {
	kind stepKind
	// from says which checkpoint the next child resumes from.
	from resumeFrom
	// since: rollback goes to the newest checkpoint acknowledged before
	// this time (when the violation began).
	since time.Time
	// counted: the restart uses the failure budget.
	counted bool
	delay   time.Duration // backoff before the next child
	why     string        // for the log and the report
	// verdict is set when recovery itself ends the run: a crash loop or
	// a budget used up.
	verdict string
}

type stepKind int

const (
	stepEnd stepKind = iota
	stepRestart
	stepFailover
)

type resumeFrom int

const (
	fromNewest  resumeFrom = iota // the newest acknowledged checkpoint
	fromBefore                    // the newest acknowledged before step.since
	fromScratch                   // none (rerun-seed: the same seed from the start)
)

// MaxFreeInARow bounds the free restarts (preemption-like ends, exit 0
// under restart = always) in a row of attempts that each ran less than
// healthy_after: past it, each is a failure. A job preempted again at
// once ten times over is not being preempted: it is looping.
const MaxFreeInARow = 10

// budget is the run's failure budget and backoff: how many failures it
// may restart in all and per hour, and how long it waits before each
// restart. Its clock is the run's (a fake one in tests); the jitter is
// cenkalti/backoff's ([1-jitter, 1+jitter] x the interval, capped at
// backoff_max after the jitter too).
type budget struct {
	plan     policies.RecoveryPlan
	failures []time.Time // the failures that used the budget, oldest first (also from earlier invocations)
	quick    int         // free restarts in a row of attempts that ran less than healthy_after
	backoff  *backoff.ExponentialBackOff
}

func newBudget(plan policies.RecoveryPlan, failures []time.Time) *budget {
	b := &backoff.ExponentialBackOff{InitialInterval: plan.BackoffInitial, RandomizationFactor: plan.Jitter,
		Multiplier: 2, MaxInterval: plan.BackoffMax}
	b.Reset()
	return &budget{plan: plan, failures: failures, backoff: b}
}

// decide says what follows an attempt that ended as e, at now. A failure
// is recorded whether or not it is restarted: the budget is the job's,
// and a next invocation on the same state carries it on.
func (b *budget) decide(e ended, now time.Time) step {
	if e.outside {
		return step{kind: stepEnd}
	}
	if e.failover {
		// The fallback runs once; its failure is the job's, for the next
		// invocation to know.
		s := step{kind: stepEnd}
		if failure(e) {
			b.failures = append(b.failures, now)
			s.counted, s.verdict = true, "the fallback failed: "+describeEnd(e.outcome)
		}
		return s
	}
	failed := failure(e)
	s, ok := b.wanted(e)
	if e.ran >= b.plan.HealthyAfter {
		b.quick = 0
	}
	if ok && !failed && s.kind == stepRestart && e.ran < b.plan.HealthyAfter {
		// A free restart (a preemption, an exit 0 under always) of an
		// attempt that did not run healthy_after: beyond MaxFreeInARow of
		// them in a row the job makes no progress, and they are failures
		// (as systemd's start limit counts every start).
		if b.quick++; b.quick > MaxFreeInARow {
			failed = true
			s.why += fmt.Sprintf(" (%d free restarts in a row, none running healthy_after: counted as a failure)", b.quick)
		}
	}
	if failed {
		b.failures = append(b.failures, now)
	}
	s.counted = failed
	if !ok {
		return step{kind: stepEnd, counted: failed}
	}
	if s.kind == stepFailover {
		return s
	}
	if e.ran >= b.plan.HealthyAfter {
		// Kubernetes resets its backoff after 10 minutes of running.
		b.backoff.Reset()
	}
	if failed {
		if v := b.exhausted(now); v != "" {
			s = step{kind: stepEnd, counted: true, verdict: v, why: s.why}
			if len(b.plan.Fallback) > 0 {
				s.kind = stepFailover
			}
			return s
		}
	}
	s.delay = b.next()
	return s
}

// failure says whether an end uses the failure budget: a crash, an OOM
// kill, a signal, a policy's stop or kill. An exit 0 does not, nor a
// stop whose checkpoint the child acknowledged (checkpoint-stop's 75, a
// restart with a new checkpoint: the work is saved, as a preempted job's
// is), nor a rule that names exit code 0 (the LLM mission's "stop and
// return the current answer").
func failure(e ended) bool {
	if e.preempted {
		return false
	}
	if d := e.decision; d != nil {
		switch {
		case d.ExitCode != nil && *d.ExitCode == 0:
			return false
		case d.Action == policies.ActionCheckpointStop && e.outcome.Acked:
			return false
		}
		return true
	}
	o := e.outcome
	return !(o.Reason == telemetry.ReasonExited && o.Code == 0) && o.Reason != telemetry.ReasonError
}

// wanted is the restart (or failover) an attempt's end asks for, before
// the budget has its say; ok is false when the run should end.
func (b *budget) wanted(e ended) (step, bool) {
	if d := e.decision; d != nil {
		if d.Kind == policies.KindHealth && len(b.plan.Fallback) > 0 && d.Action != policies.ActionLog {
			// The GPU itself is failing: starting again on it is of no use.
			return step{kind: stepFailover, why: "GPU health: " + d.Reason}, true
		}
		why := fmt.Sprintf("rule %s (%s): %s", d.Rule, d.Action, d.Reason)
		switch d.Action {
		case policies.ActionRestart:
			return step{kind: stepRestart, from: fromNewest, why: why}, true
		case policies.ActionRollback:
			return step{kind: stepRestart, from: fromBefore, since: d.Since, why: why}, true
		case policies.ActionRerunSeed:
			return step{kind: stepRestart, from: fromScratch, why: why}, true
		case policies.ActionFailover:
			return step{kind: stepFailover, why: why}, true
		}
		return step{}, false // stop, kill, checkpoint-stop: the rule ends the run
	}
	o := e.outcome
	switch {
	case o.Reason == telemetry.ReasonError:
		return step{}, false
	case o.Reason == telemetry.ReasonExited && o.Code == 0:
		if b.plan.Restart == policies.RestartAlways {
			return step{kind: stepRestart, from: fromNewest, why: "exited with code 0 (restart = always)"}, true
		}
		return step{}, false
	case b.plan.Restart != policies.RestartOnFailure && b.plan.Restart != policies.RestartAlways:
		return step{}, false // never, or a library caller's zero plan
	case e.preempted:
		return step{kind: stepRestart, from: fromNewest, why: "preempted: " + describeEnd(o) + " after an acknowledged checkpoint"}, true
	}
	return step{kind: stepRestart, from: fromNewest, why: describeEnd(o)}, true
}

// exhausted says why the budget is used up at now ("" while it is not).
// The budget counts failures: the one just added included.
func (b *budget) exhausted(now time.Time) string {
	p := b.plan
	if n := len(b.failures); n > p.MaxRestarts {
		return fmt.Sprintf("restarts exhausted: %d failure(s), max_restarts = %d", n, p.MaxRestarts)
	}
	if p.MaxRestartsPerHour > 0 {
		in := 0
		for _, t := range b.failures {
			if now.Sub(t) < time.Hour {
				in++
			}
		}
		if in > p.MaxRestartsPerHour {
			return fmt.Sprintf("crash loop: %d failures within an hour, max_restarts_per_hour = %d", in, p.MaxRestartsPerHour)
		}
	}
	return ""
}

// next is the backoff before the next restart.
func (b *budget) next() time.Duration {
	if b.plan.BackoffInitial == 0 {
		return 0
	}
	d := b.backoff.NextBackOff()
	// The library caps the interval before its jitter; a user's
	// backoff_max is a bound on the wait.
	return min(d, b.plan.BackoffMax)
}

// describeEnd says how a child ended on its own, in a few words.
func describeEnd(o Outcome) string {
	switch o.Reason {
	case telemetry.ReasonExited:
		return fmt.Sprintf("exited with code %d", o.Code)
	case telemetry.ReasonOOM:
		return "OOM-killed"
	case telemetry.ReasonSignaled:
		return "killed by " + unix.SignalName(o.Signal)
	}
	return string(o.Reason)
}
