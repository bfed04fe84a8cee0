package supervisor

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/prism-run/prism-run/internal/procfs"
	"github.com/prism-run/prism-run/limits"
)

// How long the end of a run waits for stray writers of the child's pipes
// once every process of the tree is gone, and how long it keeps trying to
// kill a tree that will not die (a process in uninterruptible sleep).
const (
	drainGrace = 5 * time.Second
	killGrace  = 5 * time.Second
	pollEvery  = 20 * time.Millisecond
)

// becomeSubreaper makes orphans of the child's tree (a daemon that
// double-forked, a setsid'd helper) reparent to prism-run instead of init,
// so that they stay findable and killable (prctl(2),
// PR_SET_CHILD_SUBREAPER, Linux >= 3.4).
func becomeSubreaper() error {
	return unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
}

// signalTree signals the child's process group and every live descendant
// of prism-run (all of them belong to the run: prism-run starts nothing
// else, and as a subreaper it inherits whatever the tree orphaned). It
// returns how many descendants it found.
func (a *attempt) signalTree(sig unix.Signal) int {
	procs, err := a.processes()
	if err != nil {
		a.r.log.Warn().Err(err).Msg("cannot list processes")
	}
	left := procfs.LiveTree(procs, os.Getpid())
	if a.groupAlive(left) {
		_ = unix.Kill(-a.pid, sig)
	}
	if cg := a.r.cfg.Cgroup; cg != nil {
		if sig == unix.SIGKILL {
			// One write kills everything in the cgroup, however detached.
			if err := cg.Kill(); err != nil {
				a.r.log.Warn().Err(err).Msg("cgroup kill")
			}
		} else {
			a.signalCgroup(cg, sig)
		}
	}
	for _, p := range left {
		// By identity: the listing is a moment old, and the reaper may
		// have collected a process whose pid is someone else's now.
		_ = limits.Signal(a.r.cfg.ProcRoot, p.Identity(), sig)
	}
	return len(left)
}

// groupAlive says whether the child's process group can be signalled as
// one: while the main child has not been reaped it is the group's leader;
// after, the group id is safe only while a process of the tree is in it
// (the kernel reuses no pid still in use as a group id; an empty group's
// id may be anyone's).
func (a *attempt) groupAlive(tree []procfs.Stat) bool {
	if !a.exited {
		return true
	}
	for _, p := range tree {
		if p.PGRP == a.pid {
			return true
		}
	}
	return false
}

// signalCgroup signals every process in the run's cgroup by identity: a
// pid read from cgroup.procs is taken as the member it was only if it is
// still listed after its identity was read (no stranger can join the
// run's cgroup), and the signal goes through a pidfd for that identity.
func (a *attempt) signalCgroup(cg limits.Cgroup, sig unix.Signal) {
	if a.r.foreignProc {
		return // identities cannot be read here; cgroup.kill does SIGKILL
	}
	pids, err := cg.Procs()
	if err != nil {
		return
	}
	ids := make([]procfs.Identity, 0, len(pids))
	for _, pid := range pids {
		if id, err := procfs.IdentityOf(a.r.cfg.ProcRoot, pid); err == nil {
			ids = append(ids, id)
		}
	}
	still, err := cg.Procs()
	if err != nil {
		return
	}
	for _, id := range ids {
		if slices.Contains(still, id.PID) {
			_ = limits.Signal(a.r.cfg.ProcRoot, id, sig)
		}
	}
}

// processes lists the processes of the host but prism-run's helpers
// (Config.Helpers), which are not the run's even when prism-run adopted
// them.
func (a *attempt) processes() ([]procfs.Stat, error) {
	if a.r.foreignProc {
		return nil, nil // its pids are another namespace's: none is ours
	}
	procs, err := a.listProcesses()
	helpers := a.r.cfg.Helpers
	if a.r.hooks != nil {
		helpers = append(slices.Clip(helpers), a.r.hooks.helpers()...)
	}
	return procfs.Without(procs, helpers), err
}

// listProcesses reads the processes the tree can be found among: with
// a cgroup, prism-run's descendants by the kernel's child lists (what may
// escape such a list, a child forked meanwhile, is in the cgroup, which
// every caller reads too); without one, every process of the host.
func (a *attempt) listProcesses() ([]procfs.Stat, error) {
	if a.r.cfg.Cgroup != nil {
		if procs, ok, err := procfs.Descendants(a.r.cfg.ProcRoot, os.Getpid()); ok {
			return procs, err
		}
	}
	return procfs.List(a.r.cfg.ProcRoot)
}

// alive reports whether pid (of this namespace) has not exited, as far
// as /proc can tell: with a foreign /proc it cannot, and it is taken for
// alive.
func (a *attempt) alive(pid int) bool {
	return a.r.foreignProc || !procfs.IsDead(a.r.cfg.ProcRoot, pid)
}

// liveTree counts what is left of the run: prism-run's live descendants,
// and what is left in the run's cgroup (a process that escaped the tree
// altogether, say by re-parenting through a daemon outside it, is still
// in the cgroup).
func (a *attempt) liveTree() int { return len(a.livePids()) }

// livePids are liveTree's processes, for the log: which ones they are.
func (a *attempt) livePids() map[int]bool {
	seen := map[int]bool{}
	if procs, err := a.processes(); err == nil {
		for _, pid := range procfs.LiveDescendants(procs, os.Getpid()) {
			seen[pid] = true
		}
	}
	if cg := a.r.cfg.Cgroup; cg != nil {
		if pids, err := cg.Procs(); err == nil {
			for _, pid := range pids {
				if a.alive(pid) {
					seen[pid] = true
				}
			}
		}
	}
	return seen
}

// describePids names processes for the log: "PID (comm) ppid N".
func (a *attempt) describePids(pids map[int]bool) []string {
	var out []string
	for pid := range pids {
		comm, _ := os.ReadFile(filepath.Join(a.r.cfg.ProcRoot, strconv.Itoa(pid), "comm"))
		desc := fmt.Sprintf("%d (%s)", pid, strings.TrimSpace(string(comm)))
		if st, err := procfs.ReadStat(a.r.cfg.ProcRoot, pid); err == nil {
			desc += fmt.Sprintf(" ppid %d state %c", st.PPID, st.State)
		}
		out = append(out, desc)
	}
	slices.Sort(out)
	return out
}

// killLeftovers ends what the main child left running: SIGTERM, then
// SIGKILL after kill-after, until nothing of the tree is left. Output keeps
// flowing meanwhile; the reaper collects the orphans as they die.
func (a *attempt) killLeftovers() {
	cfg, log := &a.r.cfg, a.r.log
	left := a.livePids()
	n := len(left)
	if n == 0 {
		return
	}
	a.r.rep.Leftovers = n
	log.Info().Int("processes", n).Strs("left", a.describePids(left)).Stringer("kill_after", cfg.KillAfter).
		Msg("main child ended; stopping the processes it left behind")
	a.signalTree(unix.SIGTERM)
	// A stopped process acts on SIGTERM only once continued (signal(7)).
	a.signalTree(unix.SIGCONT)
	termDeadline := cfg.Clock.Now().Add(cfg.KillAfter)
	var killDeadline time.Time
	poll := cfg.Clock.NewTicker(pollEvery)
	defer poll.Stop()
	lateSignals := 0
	for {
		select {
		case b := <-a.batches:
			a.handleBatch(b)
			continue
		case sig := <-cfg.Signals:
			// Signals sent to prism-run still count while it ends the tree:
			// forwarded to what is left, and a second terminating one
			// kills it at once.
			if us, ok := sig.(unix.Signal); ok && a.leftoverSignal(us, &lateSignals) {
				killDeadline = cfg.Clock.Now()
				termDeadline = killDeadline
			}
			continue
		case <-poll.C():
		}
		if a.liveTree() == 0 {
			return
		}
		now := cfg.Clock.Now()
		switch {
		case killDeadline.IsZero() && now.After(termDeadline):
			log.Warn().Msg("left-behind processes outlived SIGTERM; sending SIGKILL")
			a.signalTree(unix.SIGKILL)
			killDeadline = now.Add(killGrace)
		case !killDeadline.IsZero() && now.After(killDeadline):
			log.Error().Int("processes", a.liveTree()).Msg("processes of the run survive SIGKILL (uninterruptible sleep?)")
			return
		case !killDeadline.IsZero():
			a.signalTree(unix.SIGKILL) // new forks since the last round
		}
	}
}

// leftoverSignal handles a signal sent to prism-run while it ends what
// the main child left: it is recorded and forwarded to the tree; the
// second terminating signal (counted in n) kills the tree and says so by
// returning true.
func (a *attempt) leftoverSignal(sig unix.Signal, n *int) bool {
	name := unix.SignalName(sig)
	a.r.rep.Forwarded = append(a.r.rep.Forwarded, name)
	if !terminating(sig) {
		a.signalTree(sig)
		return false
	}
	*n++
	if *n+boolInt(a.stop.outside) < 2 {
		a.r.log.Info().Str("signal", name).Msg("forwarding signal to the processes left behind")
		a.signalTree(sig)
		return false
	}
	a.r.log.Warn().Str("signal", name).Msg("a second terminating signal: killing what is left now")
	a.signalTree(unix.SIGKILL)
	a.r.rep.Killed = true
	return true
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// drain waits for both pumps to reach the end of the child's output. A
// writer outside the tree (an fd passed to a stranger) could keep a pipe
// open forever, so after drainGrace the pipes are closed.
func (a *attempt) drain() {
	grace := a.r.cfg.Clock.NewTimer(drainGrace)
	defer grace.Stop()
	left := 2
	var notifyDone <-chan struct{}
	if a.notify != nil {
		// Every process is gone: what the socket holds is all there is.
		a.notify.finish()
		notifyDone, left = a.notify.done, 3
	}
	for left > 0 {
		select {
		case b := <-a.batches:
			a.handleBatch(b)
		case <-notifyDone:
			notifyDone = nil
			left--
		case sig := <-a.r.cfg.Signals:
			// Nothing of the tree is left to forward it to: recorded.
			if us, ok := sig.(unix.Signal); ok {
				a.r.rep.Forwarded = append(a.r.rep.Forwarded, unix.SignalName(us))
			}
		case <-a.pumpsDone:
			left--
		case <-grace.C():
			a.r.log.Warn().Msg("the child's output is still open after every process ended; closing it")
			_ = a.outR.Close()
			_ = a.errR.Close()
			if a.notify != nil {
				_ = a.notify.close()
			}
		}
	}
	for {
		select {
		case b := <-a.batches:
			a.handleBatch(b)
		default:
			return
		}
	}
}
