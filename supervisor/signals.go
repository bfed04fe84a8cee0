package supervisor

import (
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/prism-run/prism-run/internal/procfs"
	"github.com/prism-run/prism-run/policies"
)

// The attempt's side of the stop machine (stopEffects).

func (a *attempt) checkpoint(d policies.Decision) bool {
	sig := signalFor(d, a.r.cfg.CheckpointSignal)
	return a.sendProtocol(ControlLine{Action: "checkpoint", Signal: unix.SignalName(sig), Rule: d.Rule, Reason: d.Reason}, sig)
}

func (a *attempt) terminate(d policies.Decision) {
	sig := unix.SIGTERM
	if d.Action == policies.ActionStop {
		sig = signalFor(d, unix.SIGTERM) // a rule may stop with, say, SIGINT
	}
	a.sendControl(ControlLine{Action: "stop", Signal: unix.SignalName(sig), Rule: d.Rule, Reason: d.Reason}, sig)
	// A stopped process acts on SIGTERM only once continued (signal(7));
	// systemd sends SIGCONT after SIGTERM for the same reason.
	_ = unix.Kill(-a.pid, unix.SIGCONT)
}

func (a *attempt) kill(d policies.Decision, reason string) {
	a.sendControl(ControlLine{Action: "kill", Signal: "SIGKILL", Rule: d.Rule, Reason: reason}, unix.SIGKILL)
	a.signalTree(unix.SIGKILL)
}

// signalFor is the signal a decision's action sends: the rule's own, or
// the policy's default for the action.
func signalFor(d policies.Decision, def syscall.Signal) syscall.Signal {
	if d.Signal != "" {
		if n := unix.SignalNum(d.Signal); n != 0 {
			return n
		}
	}
	return def
}

// protocolTargets picks the processes a protocol signal (checkpoint,
// degrade) goes to: the main child when it handles sig, as the protocol
// expects. When it does not (a shell wrapper that runs the program without
// exec, or one that ignores sig), the processes of its tree that catch
// sig get it instead, so the
// program below the wrapper still hears the request; a process that does
// not catch it never gets it, since its default action would kill it. No
// target: nothing is sent, and the log says why.
func (a *attempt) protocolTargets(sig syscall.Signal) []int {
	root := a.r.cfg.ProcRoot
	safe, _, ok := procfs.SignalFate(root, a.pid, sig)
	// An ignored signal is safe but heard by nobody (`trap "" USR1` in a
	// wrapper, inherited by what it runs): a checkpoint asked that way
	// would be waited for in vain.
	ignored := ok && safe && ignores(root, a.pid, sig)
	if !ok || (safe && !ignored) || a.r.cfg.SendUnhandled || a.r.foreignProc {
		// Unreadable masks (or a /proc of another PID namespace): the
		// protocol's default target. SendUnhandled: the policy says the
		// child takes it, whatever /proc shows.
		return []int{a.pid}
	}
	var targets []int
	if procs, err := procfs.List(root); err == nil {
		for _, pid := range procfs.LiveDescendants(procs, a.pid) {
			if safe, acts, ok := procfs.SignalFate(root, pid, sig); ok && safe && acts {
				targets = append(targets, pid)
			}
		}
	}
	log := a.r.log
	if len(targets) == 0 {
		// Once per signal at warning level: a program still importing its
		// libraries misses every periodic request until its handler is in.
		ev := log.Debug()
		if !a.warnedNoHandler[sig] {
			a.warnedNoHandler[sig], ev = true, log.Warn()
		}
		ev.Str("signal", unix.SignalName(sig)).
			Msg("not sent: neither the child nor any process it started handles it (yet): they ignore it, or its default action would kill them; a policy's [actions] send_unhandled = true sends it anyway")
		return nil
	}
	log.Info().Str("signal", unix.SignalName(sig)).Ints("pids", targets).
		Msg("the main child does not handle it (a wrapper that did not exec?): sent to the processes below it that do")
	return targets
}

// ignores reports whether process pid ignores sig (SIG_IGN: SigIgn in
// /proc/PID/status).
func ignores(root string, pid int, sig syscall.Signal) bool {
	st, err := procfs.ReadStatus(root, pid)
	return err == nil && st.SigIgn&procfs.SigBit(sig) != 0
}

// sendProtocol appends a control line, then sends a protocol signal to
// its targets. It reports whether the signal reached any.
func (a *attempt) sendProtocol(l ControlLine, sig unix.Signal) bool {
	targets := a.protocolTargets(sig)
	return len(targets) > 0 && a.signalWithControl(l, sig, targets)
}

// sendControl appends a control line, then signals the child's whole
// process group. It reports whether the signal was sent.
func (a *attempt) sendControl(l ControlLine, sig unix.Signal) bool {
	return a.signalWithControl(l, sig, []int{-a.pid})
}

// signalWithControl appends the control line, then sends sig to each
// target (kill(2): a negative pid is a process group). It reports whether
// any was reached.
func (a *attempt) signalWithControl(l ControlLine, sig unix.Signal, targets []int) bool {
	l.Time = a.r.cfg.Clock.Now()
	if err := a.r.control.append(l); err != nil {
		a.r.log.Warn().Err(err).Msg("cannot write the control file")
	}
	sent := false
	for _, pid := range targets {
		if err := unix.Kill(pid, sig); err != nil {
			a.r.log.Warn().Err(err).Int("pid", pid).Str("signal", unix.SignalName(sig)).Msg("cannot signal the child")
			continue
		}
		sent = true
	}
	return sent
}
