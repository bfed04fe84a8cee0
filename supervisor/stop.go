package supervisor

import (
	"time"

	"github.com/rs/zerolog"
	"k8s.io/utils/clock"

	"github.com/prism-run/prism-run/policies"
)

// stopEffects is what the stop machine does to the child. The attempt
// implements it with control lines and signals; tests record the calls.
type stopEffects interface {
	// checkpoint appends the control line and sends the checkpoint
	// signal for d. It reports whether any process could take it (one
	// that does not handle it is never sent it: the default action of
	// SIGUSR1 is to terminate).
	checkpoint(d policies.Decision) bool
	// terminate appends the stop line, sends SIGTERM (or the rule's own
	// signal) to the child's group, then SIGCONT so that a stopped child
	// acts on it.
	terminate(d policies.Decision)
	// kill appends the kill line and SIGKILLs the child's whole tree.
	kill(d policies.Decision, reason string)
}

// stopMachine is one attempt's checkpoint and stop state: which
// checkpoint request waits for its acknowledgement, whether the child is
// being stopped and how far that got, and the two timers involved (the
// checkpoint timeout, and kill-after between SIGTERM and SIGKILL).
//
//	idle --checkpoint--> checkpointing --ack or timeout--> idle
//	idle --stop--> terminating --kill-after--> killed
//	idle --checkpoint-stop--> checkpointing for the stop --ack or timeout--> terminating
//	any --kill--> killed
//
// It is driven by the attempt's event loop alone (no locking), and its
// timers come from the injected clock, so every transition is tested on a
// fake clock without sleeping.
type stopMachine struct {
	clock     clock.Clock
	ckTimeout time.Duration // how long a checkpoint request waits for its acknowledgement
	killAfter time.Duration // SIGTERM -> SIGKILL grace
	fx        stopEffects
	log       zerolog.Logger

	pending   *checkpointRequest
	ckTimer   clock.Timer
	stop      *stopState
	killTimer clock.Timer
	escalated bool // SIGKILL followed SIGTERM because kill-after ran out
	killed    bool // prism-run sent SIGKILL (escalation, a kill action, a second signal)
	outside   bool // a terminating signal from outside has come
	ended     bool // the child has exited: nothing more is sent
}

type checkpointRequest struct {
	rule    string
	at      time.Time
	forStop bool
}

// stopState is an ending the loop has decided on.
type stopState struct {
	decision  policies.Decision
	by        stopper
	signalled bool // SIGTERM (or SIGKILL) has been sent
	acked     bool // the checkpoint asked for before stopping was acknowledged
}

// stopper says who decided an ending, which decides the exit code.
type stopper int

const (
	byPolicy  stopper = iota // a rule: 75 or 124 (or the rule's code)
	byCaller                 // the caller's context: 125
	byOutside                // a terminating signal sent to prism-run: the child's own code
)

func newStopMachine(c clock.Clock, ckTimeout, killAfter time.Duration, fx stopEffects, log zerolog.Logger) *stopMachine {
	return &stopMachine{clock: c, ckTimeout: ckTimeout, killAfter: killAfter, fx: fx, log: log}
}

// ckTimerC fires when the pending request's timeout runs out (nil
// channel: none pending).
func (m *stopMachine) ckTimerC() <-chan time.Time { return timerC(m.ckTimer) }

// killTimerC fires when kill-after runs out after SIGTERM (nil channel:
// not armed).
func (m *stopMachine) killTimerC() <-chan time.Time { return timerC(m.killTimer) }

// stopping reports whether an ending has been decided.
func (m *stopMachine) stopping() bool { return m.stop != nil }

// requestCheckpoint asks the child for a checkpoint; forStop makes it the
// first step of a checkpoint-stop. A request while another waits is
// skipped, unless it is for a stop: then the one under way counts, with
// the full timeout from now.
func (m *stopMachine) requestCheckpoint(d policies.Decision, forStop bool) {
	if m.ended {
		return
	}
	if m.pending != nil {
		if !forStop {
			m.log.Warn().Str("rule", d.Rule).Msg("checkpoint request skipped: the previous one is not acknowledged yet")
			return
		}
		m.pending.forStop, m.pending.rule = true, d.Rule
		m.ckTimer.Stop()
		m.ckTimer = m.clock.NewTimer(m.ckTimeout)
		return
	}
	if !m.fx.checkpoint(d) {
		if forStop {
			m.terminate() // nothing can checkpoint: stop at once
		}
		return
	}
	m.pending = &checkpointRequest{rule: d.Rule, at: m.clock.Now(), forStop: forStop}
	m.ckTimer = m.clock.NewTimer(m.ckTimeout)
	m.log.Info().Str("rule", d.Rule).Stringer("timeout", m.ckTimeout).Msg("checkpoint requested")
}

// beginStop starts ending the child for d, decided by a rule or by the
// caller: checkpoint first for checkpoint-stop, SIGKILL at once for kill,
// SIGTERM otherwise. A stop already under way is not restarted, but a
// kill overrides it.
func (m *stopMachine) beginStop(d policies.Decision, by stopper) {
	if m.ended {
		return
	}
	if m.stop != nil {
		if d.Action == policies.ActionKill && by == byPolicy {
			m.stop.decision = d
			m.killNow("rule " + d.Rule + ": " + d.Reason)
		}
		return
	}
	m.stop = &stopState{decision: d, by: by}
	switch {
	case d.Action == policies.ActionKill:
		m.killNow("rule " + d.Rule + ": " + d.Reason)
	case d.Action.CheckpointsFirst(): // checkpoint-stop, restart
		m.requestCheckpoint(d, true)
	default: // stop, and rollback, failover, rerun-seed: no checkpoint of the bad state
		m.terminate()
	}
}

// outsideSignal is a terminating signal (TERM, INT, HUP, QUIT) sent to
// prism-run, which the caller has forwarded to the child's group. The
// first starts the same stop as a policy's stop, kill-after included,
// unless one is under way; the second kills the tree at once (someone
// pressed Ctrl-C twice, or a scheduler lost patience).
func (m *stopMachine) outsideSignal(d policies.Decision) (killed bool) {
	if m.ended {
		return false
	}
	if m.outside {
		m.killNow("a second terminating signal: " + d.Reason)
		return true
	}
	m.outside = true
	if m.stop != nil {
		// A policy's stop goes on, with its own exit code; but the
		// signal the caller forwarded is the SIGTERM now, and kill-after
		// runs from it, not from the end of a checkpoint wait (a
		// scheduler's grace period is counting).
		if !m.stop.signalled {
			m.stop.signalled = true
			m.killTimer = m.clock.NewTimer(m.killAfter)
		}
		return false
	}
	m.stop = &stopState{decision: d, by: byOutside, signalled: true}
	m.killTimer = m.clock.NewTimer(m.killAfter)
	return false
}

// outsideCheckpointStop is a signal sent to prism-run that asks for a
// checkpoint and then a stop (Config.OnUSR1, OnTERM): a policy's
// checkpoint-stop (75 once acknowledged, else 124). A terminating one
// counts as the first terminating signal: a second kills the tree at
// once. A stop already under way goes on as it is. began: d's stop
// began.
func (m *stopMachine) outsideCheckpointStop(d policies.Decision, terminating bool) (killed, began bool) {
	if m.ended {
		return false, false
	}
	if terminating {
		if m.outside {
			m.killNow("a second terminating signal: " + d.Reason)
			return true, false
		}
		m.outside = true
	}
	if m.stop != nil {
		return false, false
	}
	m.beginStop(d, byPolicy)
	return false, true
}

// acknowledged takes a checkpoint marker seen at time at. It returns the
// rule whose request it answers ("" when none was pending: the child
// checkpointed unasked) and how long that took.
func (m *stopMachine) acknowledged(at time.Time) (rule string, took time.Duration) {
	p := m.pending
	if p == nil {
		return "", 0
	}
	m.pending = nil
	stopTimer(m.ckTimer) // nil when the child has ended (childEnded)
	m.ckTimer = nil
	if p.forStop && m.stop != nil {
		m.stop.acked = true
		m.terminate()
	}
	return p.rule, at.Sub(p.at)
}

// checkpointTimedOut is the checkpoint timer firing.
func (m *stopMachine) checkpointTimedOut() {
	p := m.pending
	m.pending, m.ckTimer = nil, nil
	if p == nil {
		return
	}
	m.log.Warn().Str("rule", p.rule).Stringer("timeout", m.ckTimeout).
		Msg("checkpoint not acknowledged in time (no 'checkpoint' marker came): if the child printed it, its output may be " +
			"block-buffered: Python: print(..., flush=True), python -u or PYTHONUNBUFFERED=1 (prism-run sets it unless " +
			"--unbuffered=false); C: fflush(stdout) or setvbuf; or print the marker to stderr. A slower checkpoint needs " +
			"a longer --checkpoint-timeout")
	if p.forStop && m.stop != nil {
		m.terminate()
	}
}

// terminate sends SIGTERM once and arms the SIGKILL.
func (m *stopMachine) terminate() {
	if m.ended || m.stop.signalled {
		return
	}
	m.stop.signalled = true
	m.fx.terminate(m.stop.decision)
	m.killTimer = m.clock.NewTimer(m.killAfter)
}

// killTimedOut is the kill-after timer firing: SIGKILL.
func (m *stopMachine) killTimedOut() {
	m.killTimer = nil
	if m.ended {
		return
	}
	m.escalated = true
	m.log.Warn().Stringer("kill_after", m.killAfter).Msg("child still running after SIGTERM; sending SIGKILL")
	m.killNow("still running " + m.killAfter.String() + " after SIGTERM")
}

func (m *stopMachine) killNow(reason string) {
	m.stop.signalled, m.killed = true, true
	m.fx.kill(m.stop.decision, reason)
}

// childEnded is the main child's exit: the timers stop, nothing more is
// sent.
func (m *stopMachine) childEnded() {
	m.ended = true
	stopTimer(m.ckTimer)
	stopTimer(m.killTimer)
	m.ckTimer, m.killTimer = nil, nil
}

// lateStop is a rule's ending decided on what prism-run read after the
// child had ended: output it wrote, or samples taken, while it ran. It
// decides the run's verdict as a stop in time would have (so the exit
// code does not depend on how fast prism-run read the pipe, and replay
// of the same output agrees), and signals nothing: the child is gone,
// and its pid may already be another process's. It reports whether it
// took the ending (false: one was already decided).
func (m *stopMachine) lateStop(d policies.Decision) bool {
	if m.stop != nil {
		return false
	}
	m.stop = &stopState{decision: d, by: byPolicy}
	return true
}

// policyStopped reports whether the run ended by a policy's stop: once
// one has begun, the child's own code no longer counts (GNU timeout does
// the same), whatever its handler then returns.
func (m *stopMachine) policyStopped() bool { return m.stop != nil && m.stop.by == byPolicy }

// cancelled reports whether the caller's context ended the run.
func (m *stopMachine) cancelled() bool { return m.stop != nil && m.stop.by == byCaller }

func timerC(t clock.Timer) <-chan time.Time {
	if t == nil {
		return nil
	}
	return t.C()
}

func stopTimer(t clock.Timer) {
	if t != nil {
		t.Stop()
	}
}
