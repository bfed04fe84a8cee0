package supervisor

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"time"

	"golang.org/x/sys/unix"
)

// terminal is the controlling terminal that --foreground hands to the
// child's process group, so that an interactive program (a REPL, pdb, a
// password prompt) can read from it and Ctrl-C / Ctrl-Z reach it the way
// a shell's job would. Without it the child lives in a background process
// group: the kernel stops it with SIGTTIN when it reads the terminal.
type terminal struct {
	fd  int // prism-run's descriptor of the terminal (its stdin)
	own int // prism-run's own process group
}

var errNoTerminal = errors.New("stdin is not a terminal")

// foregroundTerminal returns the terminal on f when prism-run's process
// group is the terminal's foreground group: only then is the terminal
// prism-run's to hand on. A job started with & must not steal the
// terminal from the shell.
func foregroundTerminal(f *os.File) (*terminal, error) {
	if f == nil {
		return nil, errNoTerminal
	}
	fd := int(f.Fd())
	if _, err := unix.IoctlGetTermios(fd, unix.TCGETS); err != nil {
		return nil, errNoTerminal
	}
	fg, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP)
	if err != nil {
		return nil, fmt.Errorf("read the terminal's foreground process group: %w", err)
	}
	own := unix.Getpgrp()
	if fg != own {
		return nil, fmt.Errorf("prism-run is not the terminal's foreground job (foreground group %d, ours %d)", fg, own)
	}
	return &terminal{fd: fd, own: own}, nil
}

// foreground is the terminal's foreground process group.
func (t *terminal) foreground() int {
	fg, err := unix.IoctlGetInt(t.fd, unix.TIOCGPGRP)
	if err != nil {
		return -1
	}
	return fg
}

// setForeground makes pgid the terminal's foreground group. A process
// outside the foreground group that calls tcsetpgrp(3) is sent SIGTTOU
// unless it ignores or blocks it (tty_check_change in the kernel's
// drivers/tty/tty_jobctrl.c); caught, the call would restart forever. So
// SIGTTOU is ignored for the call. Only ever called when no child is being
// started, so no child inherits the ignored disposition.
func (t *terminal) setForeground(pgid int) error {
	signal.Ignore(unix.SIGTTOU)
	defer signal.Reset(unix.SIGTTOU)
	if err := unix.IoctlSetPointerInt(t.fd, unix.TIOCSPGRP, pgid); err != nil {
		return fmt.Errorf("give the terminal to process group %d: %w", pgid, err)
	}
	return nil
}

// reclaim takes the terminal back for prism-run's own group when the
// child's group still holds it (the child ended, or stopped).
func (t *terminal) reclaim(child int) {
	if t.foreground() == child {
		_ = t.setForeground(t.own)
	}
}

// childStopped handles a stop of the main child. In --foreground mode it
// passes job control through as a shell would see it: the child stopped
// (Ctrl-Z, or SIGTTIN), so prism-run takes the terminal back and stops its
// own process group too, which hands control to the shell; when the shell
// continues it (fg or bg), prism-run gives the terminal back if it is the
// foreground job again and continues the child's group. Without a
// terminal, a child stopped for reading or writing the terminal would wait
// forever: say so once.
func (a *attempt) childStopped(sig unix.Signal) {
	if a.tty == nil {
		if (sig == unix.SIGTTIN || sig == unix.SIGTTOU) && !a.warnedTTY {
			a.warnedTTY = true
			a.r.log.Warn().Str("signal", unix.SignalName(sig)).
				Msg("the child is stopped: it used the terminal from the background process group; run prism-run with --foreground to give it the terminal")
		}
		return
	}
	if !jobControlled() {
		// Nobody would continue us: give the terminal back and go on.
		a.r.log.Info().Str("signal", unix.SignalName(sig)).Msg("the child stopped, and no job-control shell is above prism-run: continuing it")
		_ = unix.Kill(-a.pid, unix.SIGCONT)
		return
	}
	a.r.log.Info().Str("signal", unix.SignalName(sig)).Msg("the child stopped: suspending prism-run too")
	a.tty.reclaim(a.pid)
	a.pausedFor(suspendGroup)
	if a.tty.foreground() == a.tty.own {
		if err := a.tty.setForeground(a.pid); err != nil {
			a.r.log.Warn().Err(err).Msg("cannot give the terminal back to the child")
		}
	}
	a.r.log.Info().Msg("resumed: continuing the child")
	_ = unix.Kill(-a.pid, unix.SIGCONT)
}

// jobControlled says whether a stop of prism-run's process group would
// reach a shell that can continue it. An orphaned group (no member whose
// parent is in another group of the same session) has none: POSIX, and
// the kernel discards a terminal's SIGTSTP for one (kernel/signal.c,
// is_current_pgrp_orphaned). Stopped, prism-run would wait for a SIGCONT
// that never comes.
func jobControlled() bool {
	ppid := unix.Getppid()
	ppgrp, err := unix.Getpgid(ppid)
	if err != nil {
		return false
	}
	psid, err := unix.Getsid(ppid)
	if err != nil {
		return false
	}
	sid, err := unix.Getsid(0)
	return err == nil && psid == sid && ppgrp != unix.Getpgrp()
}

// suspendGroup stops prism-run's whole process group (a pipeline's tee
// too), which is what the shell waits for, and returns once the shell has
// continued it. SIGSTOP, not SIGTSTP: prism-run catches SIGTSTP (jobStop).
func suspendGroup() {
	waitContinued(func() { _ = unix.Kill(0, unix.SIGSTOP) })
}

// waitContinued runs stop, which stops prism-run, and returns once a
// SIGCONT has come. kill(2) may return before the stop has taken this
// thread, so its return is not the sign of being continued: the SIGCONT
// is.
func waitContinued(stop func()) {
	cont := make(chan os.Signal, 1)
	signal.Notify(cont, unix.SIGCONT)
	defer signal.Stop(cont)
	stop()
	<-cont
}

// jobStop handles a SIGTSTP sent to prism-run: Ctrl-Z at its terminal
// (which stops the terminal's foreground group, prism-run's, not the
// child's) or a `kill -TSTP`. The child's group is stopped too, then
// prism-run, so the job stops as a whole and the child does not run on
// unseen; when the shell continues prism-run (fg, bg), it continues the
// child. With --foreground the child's stop is what suspends prism-run
// (childStopped).
func (a *attempt) jobStop() {
	a.r.log.Info().Msg("SIGTSTP: stopping the child's process group, then prism-run")
	a.sendControl(ControlLine{Action: "forward", Signal: "SIGTSTP", Reason: "SIGTSTP sent to prism-run"}, unix.SIGTSTP)
	if a.tty != nil {
		return
	}
	a.pausedFor(func() { waitContinued(func() { _ = unix.Kill(unix.Getpid(), unix.SIGSTOP) }) })
	a.r.log.Info().Msg("continued: continuing the child")
	_ = unix.Kill(-a.pid, unix.SIGCONT)
}

// pausedFor runs suspend, which returns when the job is continued, and
// adds the time it took to the run's paused time.
func (a *attempt) pausedFor(suspend func()) {
	start := a.r.cfg.Clock.Now()
	suspend()
	d := a.r.cfg.Clock.Now().Sub(start)
	a.r.pauses = append(a.r.pauses, pause{at: start.Add(-a.r.paused), total: a.r.paused + d})
	a.r.paused += d
	a.r.log.Info().Stringer("stopped_for", d.Round(time.Millisecond)).Msg("the job was stopped; the rules do not count that time")
}
