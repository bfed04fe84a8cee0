package supervisor

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/prism-run/prism-run/limits"
	"github.com/prism-run/prism-run/policies"
)

// How long the end of a run waits for stray writers of the child's pipes
// once every process of the tree is gone, and how long it keeps trying to
// kill a tree that will not die (a process in uninterruptible sleep).
const (
	drainGrace = 5 * time.Second
	killGrace  = 5 * time.Second
	pollEvery  = 20 * time.Millisecond
)

// loop is the event loop: the only goroutine that touches the session's
// state once the child runs.
func (s *session) loop(ctx context.Context) error {
	ticker := time.NewTicker(s.cfg.TickInterval)
	defer ticker.Stop()
	done := ctx.Done()

	stopSampling := s.startSampling()
	s.reap() // a child that died before SIGCHLD was being watched
	for !s.exited {
		select {
		case b := <-s.batches:
			s.handleBatch(b, true)
		case <-ticker.C:
			s.pollCgroup(false)
			now := s.cfg.Clock.Now()
			s.observe(policies.Observation{Time: now, Source: policies.SourceClock,
				Name: policies.NameElapsed, Value: now.Add(-s.paused).Sub(s.engine.Start()).Seconds()})
		case sig := <-s.cfg.Signals:
			s.handleSignal(sig)
		case <-s.sigchld:
			s.reap()
		case <-timerC(s.ckTimer):
			s.checkpointTimedOut()
		case <-timerC(s.kill):
			s.escalate()
		case <-done:
			done = nil
			s.beginStop(policies.Decision{Rule: "cancelled", Action: policies.ActionStop,
				Reason: "the caller cancelled the run"}, true)
		}
	}
	stopTimer(s.ckTimer)
	stopTimer(s.kill)
	s.stopSamplingDraining(stopSampling)
	s.pollCgroup(true) // an OOM kill of the main child shows here
	s.killLeftovers()
	s.drain()
	s.closeCgroup()
	_ = s.cmd.Process.Release()
	return s.conclude()
}

func (s *session) stopSignals() {
	if s.sigchld != nil {
		signal.Stop(s.sigchld)
		signal.Stop(s.spipe)
	}
}

func timerC(t *time.Timer) <-chan time.Time {
	if t == nil {
		return nil
	}
	return t.C
}

func stopTimer(t *time.Timer) {
	if t != nil {
		t.Stop()
	}
}

// stopSamplingDraining stops the samplers while still taking what they
// send, so that none blocks on a full channel.
func (s *session) stopSamplingDraining(stop func()) {
	done := make(chan struct{})
	go func() { stop(); close(done) }()
	for {
		select {
		case b := <-s.batches:
			s.handleBatch(b, false)
		case <-done:
			return
		}
	}
}

// reap collects exited children: the main child ends the loop; any other
// is an orphan of the tree that was reparented to us and died.
func (s *session) reap() {
	for _, r := range reapAll(true) {
		switch {
		case r.pid != s.pid:
		case r.status.Stopped():
			s.childStopped(r.status.StopSignal())
		default:
			s.exited, s.status = true, r.status
			if s.tty != nil {
				// Before prism-run's last words: a background writer may be
				// stopped by SIGTTOU (stty tostop).
				s.tty.reclaim(s.pid)
			}
		}
	}
}

func (s *session) handleBatch(b batch, act bool) {
	for _, err := range b.bad {
		s.res.MalformedMarkers++
		s.log.Debug().Err(err).Msg("malformed marker")
	}
	for _, o := range b.obs {
		s.record(o)
		if act {
			s.observe(o)
		}
	}
}

// record keeps what the report says of a marker, and notices checkpoint
// acknowledgements.
func (s *session) record(o policies.Observation) {
	if o.Source == policies.SourceProbe {
		if v, seen := s.res.Peaks[o.Name]; o.Text == "" && (!seen || Float(o.Value) > v) {
			s.res.Peaks[o.Name] = Float(o.Value)
		}
		if o.Name == policies.NameHealth {
			s.log.Error().Str("event", o.Text).Str("gpu", o.Labels["gpu"]).Msg("GPU health event")
		}
		return // samples are not markers
	}
	m := s.res.Markers[o.Name]
	m.Count++
	m.Last, m.Text, m.Time = Float(o.Value), o.Text, o.Time
	s.res.Markers[o.Name] = m
	if o.Name != policies.NameCheckpoint || o.Text == "" {
		return
	}
	c := Checkpoint{Path: o.Text, Time: o.Time}
	if p := s.pending; p != nil {
		c.Rule = p.rule
		s.log.Info().Str("path", o.Text).Str("rule", p.rule).
			Stringer("took", o.Time.Sub(p.at).Round(time.Millisecond)).Msg("checkpoint acknowledged")
		s.pending = nil
		stopTimer(s.ckTimer)
		s.ckTimer = nil
		if p.forStop && s.stop != nil {
			s.stop.acked = true
			if !s.exited {
				s.terminate()
			}
		}
	} else {
		s.log.Info().Str("path", o.Text).Msg("checkpoint reported")
	}
	s.res.Checkpoints = append(s.res.Checkpoints, c)
}

// observe feeds the engine. The rules live in run time: wall time less
// the time the job spent stopped by job control (Ctrl-Z, then fg), so a
// heartbeat, stall window or deadline does not count a pause the person
// asked for. Observations arrive in wall time and decisions go back to it.
func (s *session) observe(o policies.Observation) {
	if !o.Time.IsZero() {
		o.Time = o.Time.Add(-s.paused)
	}
	for _, d := range s.engine.Observe(o) {
		d.Time = d.Time.Add(s.paused)
		s.execute(d)
	}
}

// execute carries out one decision of the engine.
func (s *session) execute(d policies.Decision) {
	s.res.Decisions = append(s.res.Decisions, d)
	ev := s.log.Info()
	switch {
	case d.Severity >= policies.SeverityHigh || d.Action == policies.ActionAlert:
		ev = s.log.Error()
	case d.Severity == policies.SeverityMedium:
		ev = s.log.Warn()
	}
	ev = ev.Str("rule", d.Rule).Str("kind", d.Kind).Stringer("severity", d.Severity).Str("action", string(d.Action))
	if d.What != "" {
		ev = ev.Str("what", d.What)
	}
	ev.Msg(d.Reason)
	if s.exited {
		return
	}
	if s.stop != nil && !d.Action.Ends() && d.Action != policies.ActionLog && d.Action != policies.ActionAlert {
		return // the child is being stopped: no more requests
	}
	switch d.Action {
	case policies.ActionLog, policies.ActionAlert:
		// Recorded and logged above; alert delivery is telemetry's.
	case policies.ActionCheckpoint:
		s.requestCheckpoint(d, false)
	case policies.ActionDegrade:
		sig := s.signalFor(d, s.cfg.DegradeSignal)
		s.sendProtocol(ControlLine{Action: "degrade", Signal: unix.SignalName(sig), Rule: d.Rule, What: d.What, Reason: d.Reason}, sig)
	case policies.ActionCheckpointStop, policies.ActionStop, policies.ActionKill:
		s.beginStop(d, false)
	}
}

// beginStop starts ending the child for decision d: checkpoint first when
// the action asks for it, SIGKILL at once for kill, SIGTERM otherwise.
func (s *session) beginStop(d policies.Decision, cancelled bool) {
	if s.stop != nil {
		if d.Action == policies.ActionKill && !cancelled {
			s.stop.decision = d
			s.killNow("rule " + d.Rule + ": " + d.Reason)
		}
		return
	}
	s.stop = &stopState{decision: d, cancelled: cancelled}
	switch d.Action {
	case policies.ActionKill:
		s.killNow("rule " + d.Rule + ": " + d.Reason)
	case policies.ActionCheckpointStop:
		s.requestCheckpoint(d, true)
	default:
		s.terminate()
	}
}

// requestCheckpoint appends the control line and sends the checkpoint
// signal. The protocol signals (SIGUSR1, SIGUSR2) go to the main child
// only: their default action is to terminate, so sending them to the whole
// group would kill every helper (a data-loader worker, a shell wrapper's
// sleep) that does not handle them.
func (s *session) requestCheckpoint(d policies.Decision, forStop bool) {
	if s.pending != nil {
		if forStop {
			// The child is already checkpointing: let that one count, and
			// give it the full timeout from now.
			s.pending.forStop, s.pending.rule = true, d.Rule
			stopTimer(s.ckTimer)
			s.ckTimer = time.NewTimer(s.cfg.CheckpointTimeout)
		} else {
			s.log.Warn().Str("rule", d.Rule).Msg("checkpoint request skipped: the previous one is not acknowledged yet")
		}
		return
	}
	sig := s.signalFor(d, s.cfg.CheckpointSignal)
	if !s.sendProtocol(ControlLine{Action: "checkpoint", Signal: unix.SignalName(sig), Rule: d.Rule, Reason: d.Reason}, sig) {
		if forStop {
			s.terminate()
		}
		return
	}
	s.pending = &checkpointRequest{rule: d.Rule, at: s.cfg.Clock.Now(), forStop: forStop}
	s.ckTimer = time.NewTimer(s.cfg.CheckpointTimeout)
	s.log.Info().Str("rule", d.Rule).Stringer("timeout", s.cfg.CheckpointTimeout).Msg("checkpoint requested")
}

// signalFor is the signal a decision's action sends: the rule's own, or
// the policy's default for the action.
func (s *session) signalFor(d policies.Decision, def syscall.Signal) syscall.Signal {
	if d.Signal != "" {
		if n := unix.SignalNum(d.Signal); n != 0 {
			return n
		}
	}
	return def
}

func (s *session) checkpointTimedOut() {
	p := s.pending
	s.pending, s.ckTimer = nil, nil
	if p == nil {
		return
	}
	s.log.Warn().Str("rule", p.rule).Stringer("timeout", s.cfg.CheckpointTimeout).
		Msg("checkpoint not acknowledged in time (no 'checkpoint' marker)")
	if p.forStop && s.stop != nil {
		s.terminate()
	}
}

// terminate sends SIGTERM to the child's group and arms the SIGKILL.
func (s *session) terminate() {
	if s.stop.signalled {
		return
	}
	s.stop.signalled = true
	sig := unix.SIGTERM
	if s.stop.decision.Action == policies.ActionStop {
		sig = s.signalFor(s.stop.decision, unix.SIGTERM) // a rule may stop with, say, SIGINT
	}
	s.sendControl(ControlLine{Action: "stop", Signal: unix.SignalName(sig), Rule: s.stop.decision.Rule, Reason: s.stop.decision.Reason}, sig)
	// A stopped process acts on SIGTERM only once continued (signal(7));
	// systemd sends SIGCONT after SIGTERM for the same reason.
	_ = unix.Kill(-s.pid, unix.SIGCONT)
	s.kill = time.NewTimer(s.cfg.KillAfter)
}

func (s *session) escalate() {
	s.kill = nil
	s.res.Escalated = true
	s.log.Warn().Stringer("kill_after", s.cfg.KillAfter).Msg("child still running after SIGTERM; sending SIGKILL")
	s.killNow("still running " + s.cfg.KillAfter.String() + " after SIGTERM")
}

// killNow sends SIGKILL to the child's group and to every process of its
// tree that left the group.
func (s *session) killNow(reason string) {
	if s.stop != nil {
		s.stop.signalled = true
	}
	s.sendControl(ControlLine{Action: "kill", Signal: "SIGKILL", Rule: s.stop.decision.Rule, Reason: reason}, unix.SIGKILL)
	s.signalTree(unix.SIGKILL)
}

// protocolTargets picks the processes a protocol signal (checkpoint,
// degrade) goes to: the main child when it handles sig, as the protocol
// expects. When it does not (a shell wrapper that runs the program without
// exec), the processes of its tree that catch sig get it instead, so the
// program below the wrapper still hears the request; a process that does
// not catch it never gets it, since its default action would kill it. No
// target: nothing is sent, and the log says why.
func (s *session) protocolTargets(sig syscall.Signal) []int {
	safe, ok := signalSafe(s.cfg.ProcRoot, s.pid, sig)
	if !ok || safe {
		return []int{s.pid}
	}
	var targets []int
	if procs, err := readProcs(s.cfg.ProcRoot); err == nil {
		for _, pid := range liveDescendants(procs, s.pid) {
			if catches(s.cfg.ProcRoot, pid, sig) {
				targets = append(targets, pid)
			}
		}
	}
	if len(targets) == 0 {
		// Once per signal at warning level: a program still importing its
		// libraries misses every periodic request until its handler is in.
		ev := s.log.Debug()
		if !s.warnedNoHandler[sig] {
			s.warnedNoHandler[sig], ev = true, s.log.Warn()
		}
		ev.Str("signal", unix.SignalName(sig)).
			Msg("not sent: neither the child nor any process it started handles it (yet), and its default action would kill them")
		return nil
	}
	s.log.Info().Str("signal", unix.SignalName(sig)).Ints("pids", targets).
		Msg("the main child does not handle it (a wrapper that did not exec?): sent to the processes below it that do")
	return targets
}

// sendProtocol appends a control line, then sends a protocol signal to
// its targets. It reports whether the signal reached any.
func (s *session) sendProtocol(l ControlLine, sig unix.Signal) bool {
	targets := s.protocolTargets(sig)
	return len(targets) > 0 && s.signalWithControl(l, sig, targets)
}

// sendControl appends a control line, then signals the child's whole
// process group. It reports whether the signal was sent.
func (s *session) sendControl(l ControlLine, sig unix.Signal) bool {
	return s.signalWithControl(l, sig, []int{-s.pid})
}

// signalWithControl appends the control line, then sends sig to each
// target (kill(2): a negative pid is a process group). It reports whether
// any was reached.
func (s *session) signalWithControl(l ControlLine, sig unix.Signal, targets []int) bool {
	l.Time = s.cfg.Clock.Now()
	if err := s.control.append(l); err != nil {
		s.log.Warn().Err(err).Msg("cannot write the control file")
	}
	sent := false
	for _, pid := range targets {
		if err := unix.Kill(pid, sig); err != nil {
			s.log.Warn().Err(err).Int("pid", pid).Str("signal", unix.SignalName(sig)).Msg("cannot signal the child")
			continue
		}
		sent = true
	}
	return sent
}

// handleSignal deals with a signal sent to prism-run itself.
func (s *session) handleSignal(sig os.Signal) {
	us, ok := sig.(unix.Signal)
	if !ok {
		return
	}
	name := unix.SignalName(us)
	s.res.Forwarded = append(s.res.Forwarded, name)
	if us == unix.SIGUSR1 {
		// A checkpoint request from outside: Slurm's --signal=B:USR1@T
		// before the time limit, or a person.
		s.log.Info().Msg("SIGUSR1 received: requesting a checkpoint")
		s.requestCheckpoint(policies.Decision{Rule: "signal", Reason: "SIGUSR1 sent to prism-run"}, false)
		return
	}
	if us == unix.SIGTSTP {
		s.jobStop()
		return
	}
	s.log.Info().Str("signal", name).Msg("forwarding signal to the child's process group")
	action := "forward"
	if us == unix.SIGUSR2 {
		action = "degrade" // so a child reading the control file does not act on a stale line
	}
	s.sendControl(ControlLine{Action: action, Signal: name, Reason: name + " sent to prism-run"}, us)
}

// signalTree signals the child's process group and every live descendant
// of prism-run (all of them belong to the run: prism-run starts nothing
// else, and as a subreaper it inherits whatever the tree orphaned).
func (s *session) signalTree(sig unix.Signal) int {
	// The group id outlives the main child while any member is alive, and
	// the kernel does not reuse a pid that is still a group id.
	_ = unix.Kill(-s.pid, sig)
	if cg := s.cfg.Cgroup; cg != nil {
		if sig == unix.SIGKILL {
			// One write kills everything in the cgroup, however detached.
			if err := cg.Kill(); err != nil {
				s.log.Warn().Err(err).Msg("cgroup kill")
			}
		} else if pids, err := cg.Procs(); err == nil {
			for _, pid := range pids {
				_ = unix.Kill(pid, sig)
			}
		}
	}
	procs, err := readProcs(s.cfg.ProcRoot)
	if err != nil {
		s.log.Warn().Err(err).Msg("cannot list processes")
		return 0
	}
	left := liveDescendants(procs, os.Getpid())
	for _, pid := range left {
		_ = unix.Kill(pid, sig)
	}
	return len(left)
}

// liveTree counts what is left of the run: prism-run's live descendants,
// and what is left in the run's cgroup (a process that escaped the tree
// altogether, say by re-parenting through a daemon outside it, is still
// in the cgroup).
func (s *session) liveTree() int {
	seen := map[int]bool{}
	if procs, err := readProcs(s.cfg.ProcRoot); err == nil {
		for _, pid := range liveDescendants(procs, os.Getpid()) {
			seen[pid] = true
		}
	}
	if cg := s.cfg.Cgroup; cg != nil {
		if pids, err := cg.Procs(); err == nil {
			for _, pid := range pids {
				if !isZombie(s.cfg.ProcRoot, pid) {
					seen[pid] = true
				}
			}
		}
	}
	return len(seen)
}

// oomReportEvery bounds the OOM violation records: a job whose workers
// are OOM-killed in a loop (stress-ng's --vm restarts them ten times a
// second) gets one record at the first kill and then at most one per
// interval, counting the kills since the last, instead of a flood.
const oomReportEvery = 10 * time.Second

// pollCgroup reads the run's cgroup: the memory peak, and OOM kills, each
// of which is a violation whether or not the main child survives it. The
// running count also reaches the rules as oom_kills. final flushes kills
// that a rate-limited record has not covered yet.
func (s *session) pollCgroup(final bool) {
	cg := s.cfg.Cgroup
	if cg == nil {
		return
	}
	u, err := cg.Usage()
	if err != nil {
		return
	}
	r := s.res.Cgroup
	r.MemoryPeak = max(r.MemoryPeak, u.MemoryPeak, u.MemoryCurrent)
	now := s.cfg.Clock.Now()
	if u.OOMKills > s.oomSeen {
		s.oomSeen = u.OOMKills
		s.readVictims()
		r.OOMKills = u.OOMKills - s.oomBase
		if !s.exited {
			s.observe(policies.Observation{Time: now, Source: policies.SourceProbe,
				Name: policies.NameOOMKills, Value: float64(r.OOMKills)})
		}
	}
	pending := r.OOMKills - s.oomLogged
	if pending == 0 || !(final || s.oomLogged == 0 || now.Sub(s.oomLoggedAt) >= oomReportEvery) {
		return
	}
	s.oomLogged, s.oomLoggedAt = r.OOMKills, now
	reason := fmt.Sprintf("the kernel OOM-killed %d process(es) in the run's cgroup (limit %d bytes, peak %d bytes)",
		pending, r.MemoryLimit, r.MemoryPeak)
	if pending != r.OOMKills {
		reason += fmt.Sprintf("; %d since the run began", r.OOMKills)
	}
	switch named := r.OOMVictims[s.oomNamed:]; {
	case len(named) > 0:
		reason += victimList(named)
	case s.cfg.KillLog != nil && len(r.OOMVictims) < maxOOMVictims:
		reason += "; the kernel log named none (it rate-limits that line, host-wide)"
	}
	s.oomNamed = len(r.OOMVictims)
	d := policies.Decision{Time: now, Rule: "oom", Kind: "oom", Severity: policies.SeverityHigh,
		Action: policies.ActionLog, Reason: reason}
	s.res.Decisions = append(s.res.Decisions, d)
	s.log.Error().Str("rule", "oom").Uint64("oom_kills", r.OOMKills).Uint64("memory_peak_bytes", r.MemoryPeak).
		Int64("memory_limit_bytes", r.MemoryLimit).Msg(reason)
}

// maxOOMVictims bounds the victims a report lists: a job whose workers
// die in a loop would otherwise grow it without end (oom_kills counts all).
const maxOOMVictims = 32

// readVictims takes the run's OOM kills from the kernel log.
func (s *session) readVictims() {
	if s.cfg.KillLog == nil {
		return
	}
	r := s.res.Cgroup
	name := path.Base(r.Path)
	for _, k := range s.cfg.KillLog.OOMKills() {
		if k.InCgroup(name) && len(r.OOMVictims) < maxOOMVictims {
			r.OOMVictims = append(r.OOMVictims, k)
		}
	}
}

// victimList names up to three victims for a log line. The kernel
// rate-limits the summary line that names a kill's cgroup (mm/oom_kill.c:
// oom_rs, 10 per 5 s), so in a storm fewer are named than were killed.
func victimList(v []limits.OOMKill) string {
	if len(v) == 0 {
		return ""
	}
	parts := make([]string, 0, 3)
	for _, k := range v[:min(3, len(v))] {
		parts = append(parts, fmt.Sprintf("pid %d (%s)", k.PID, k.Task))
	}
	more := ""
	if len(v) > 3 {
		more = fmt.Sprintf(" and %d more", len(v)-3)
	}
	return "; the kernel log names " + strings.Join(parts, ", ") + more
}

// closeCgroup removes the run's cgroup once nothing is left in it.
func (s *session) closeCgroup() {
	cg := s.cfg.Cgroup
	if cg == nil || s.cgClosed {
		return
	}
	s.cgClosed = true
	var err error
	for i := 0; i < 100; i++ {
		if err = cg.Delete(); err == nil {
			return
		}
		_ = cg.Kill()
		time.Sleep(pollEvery)
	}
	s.log.Warn().Err(err).Str("cgroup", cg.Path()).Msg("cannot remove the run's cgroup; the next prism-run will")
}

func isZombie(procRoot string, pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("%s/%d/stat", procRoot, pid))
	if err != nil {
		return true
	}
	e, ok := parseStat(b)
	return ok && (e.state == 'Z' || e.state == 'X')
}

// killLeftovers ends what the main child left running: SIGTERM, then
// SIGKILL after kill-after, until nothing of the tree is left. Output keeps
// flowing meanwhile.
func (s *session) killLeftovers() {
	s.reap()
	n := s.liveTree()
	if n == 0 {
		return
	}
	s.res.Leftovers = n
	s.log.Info().Int("processes", n).Stringer("kill_after", s.cfg.KillAfter).
		Msg("main child ended; stopping the processes it left behind")
	s.signalTree(unix.SIGTERM)
	termDeadline := time.Now().Add(s.cfg.KillAfter)
	var killDeadline time.Time
	poll := time.NewTicker(pollEvery)
	defer poll.Stop()
	for {
		select {
		case b := <-s.batches:
			s.handleBatch(b, false)
			continue
		case <-s.sigchld:
		case <-poll.C:
		}
		s.reap()
		if s.liveTree() == 0 {
			return
		}
		now := time.Now()
		switch {
		case killDeadline.IsZero() && now.After(termDeadline):
			s.log.Warn().Msg("left-behind processes outlived SIGTERM; sending SIGKILL")
			s.signalTree(unix.SIGKILL)
			killDeadline = now.Add(killGrace)
		case !killDeadline.IsZero() && now.After(killDeadline):
			s.log.Error().Int("processes", s.liveTree()).Msg("processes of the run survive SIGKILL (uninterruptible sleep?)")
			return
		case !killDeadline.IsZero():
			s.signalTree(unix.SIGKILL) // new forks since the last round
		}
	}
}

// drain waits for both pumps to reach the end of the child's output. A
// writer outside the tree (an fd passed to a stranger) could keep a pipe
// open forever, so after drainGrace the pipes are closed.
func (s *session) drain() {
	grace := time.NewTimer(drainGrace)
	defer grace.Stop()
	for left := 2; left > 0; {
		select {
		case b := <-s.batches:
			s.handleBatch(b, false)
		case <-s.pumpsDone:
			left--
		case <-grace.C:
			s.log.Warn().Msg("the child's output is still open after every process ended; closing it")
			_ = s.outR.Close()
			_ = s.errR.Close()
		}
	}
	for {
		select {
		case b := <-s.batches:
			s.handleBatch(b, false)
		default:
			s.reap()
			return
		}
	}
}

// conclude turns how the child ended into the run's exit code and reason.
func (s *session) conclude() error {
	r, st := s.res, s.status
	if st.Signaled() {
		r.Signal = unix.SignalName(st.Signal())
	}
	stopped := s.stop != nil && (s.stop.signalled || s.stop.acked || !(st.Exited() && st.ExitStatus() == 0))
	switch {
	case stopped && s.stop.cancelled:
		r.Exit, r.Reason, r.Rule = ExitInternal, ReasonError, ""
		r.Message = "cancelled"
		return ErrCancelled
	case stopped:
		d := s.stop.decision
		r.Reason, r.Rule = ReasonPolicy, d.Rule
		r.Exit = ExitPolicy
		if s.stop.acked {
			r.Exit = ExitResumable
		}
		if d.ExitCode != nil {
			r.Exit = *d.ExitCode
		}
		r.Message = fmt.Sprintf("stopped by rule %s: %s", d.Rule, d.Reason)
		if s.stop.acked {
			r.Message += " (checkpoint acknowledged: resumable)"
		}
	case st.Exited():
		r.Exit, r.Reason = st.ExitStatus(), ReasonExited
		r.Message = fmt.Sprintf("exited with code %d", r.Exit)
	case st.Signaled() && st.Signal() == unix.SIGKILL && r.Cgroup != nil && r.Cgroup.OOMKills > 0:
		// SIGKILL that no policy sent, while the kernel OOM-killed in the
		// run's cgroup: the main child was the OOM killer's victim.
		r.Exit, r.Reason = 128+int(unix.SIGKILL), ReasonOOM
		r.Message = fmt.Sprintf("OOM-killed by the kernel (pid %d): memory limit %d bytes, peak %d bytes",
			s.pid, r.Cgroup.MemoryLimit, r.Cgroup.MemoryPeak)
	case st.Signaled():
		r.Exit, r.Reason = 128+int(st.Signal()), ReasonSignaled
		r.Message = "killed by " + r.Signal
	}
	s.log.Info().Int("exit_code", r.Exit).Str("reason", string(r.Reason)).Msg(r.Message)
	return nil
}
