package supervisor

import (
	"context"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/prism-run/prism-run/policies"
	"github.com/prism-run/prism-run/telemetry"
)

// supervise is the attempt's event loop: the only goroutine that touches
// the run's and the attempt's state once the child runs. It returns when
// the child and every process it started are gone, with how it ended.
func (a *attempt) supervise(ctx context.Context) (Outcome, error) {
	cfg := &a.r.cfg
	var tickC <-chan time.Time // nil: the samplers' batches carry the tick
	if len(cfg.Samplers) == 0 {
		ticker := cfg.Clock.NewTicker(cfg.TickInterval)
		defer ticker.Stop()
		tickC = ticker.C()
	}
	done := ctx.Done()

	stopSampling := a.startSampling()
	for !a.exited {
		select {
		case b := <-a.batches:
			a.handleBatch(b)
			if b.tick {
				a.tick()
			}
		case <-tickC:
			a.tick()
		case sig := <-cfg.Signals:
			a.handleSignal(sig)
		case <-a.child.Changed():
			a.childChanged()
		case <-a.stop.ckTimerC():
			a.stop.checkpointTimedOut()
		case <-a.stop.killTimerC():
			a.stop.killTimedOut()
		case <-done:
			done = nil
			a.stop.beginStop(policies.Decision{Rule: "cancelled", Action: policies.ActionStop,
				Reason: "the caller cancelled the run"}, byCaller)
		}
	}
	a.stop.childEnded()
	a.r.event(telemetry.Event{Kind: telemetry.EventEnded, Time: cfg.Clock.Now(), Attempt: a.n})
	a.r.rep.Escalated = a.r.rep.Escalated || a.stop.escalated
	a.r.rep.Killed = a.r.rep.Killed || a.stop.killed
	a.stopSamplingDraining(stopSampling)
	a.pollCgroup(true) // an OOM kill of the main child shows here
	a.killLeftovers()
	a.drain()
	a.closePipes()
	_ = a.cmd.Process.Release()
	return a.outcome()
}

// tick is the loop's clock: the cgroup's counters, and elapsed run time
// for the rules.
func (a *attempt) tick() {
	a.pollCgroup(false)
	now := a.r.cfg.Clock.Now()
	a.observe(policies.Observation{Time: now, Source: policies.SourceClock,
		Name: policies.NameElapsed, Value: now.Add(-a.r.paused).Sub(a.r.engine.Start()).Seconds()})
}

// childChanged takes the main child's statuses: a stop (job control), or
// its end, which ends the loop.
func (a *attempt) childChanged() {
	for _, ws := range a.child.Take() {
		if ws.Stopped() {
			a.childStopped(ws.StopSignal())
			continue
		}
		a.exited, a.status = true, ws
		if a.tty != nil {
			// Before prism-run's last words: a background writer may be
			// stopped by SIGTTOU (stty tostop).
			a.tty.reclaim(a.pid)
		}
	}
}

// stopSamplingDraining stops the samplers while still taking what they
// send, so that none blocks on a full channel.
func (a *attempt) stopSamplingDraining(stop func()) {
	done := make(chan struct{})
	go func() { stop(); close(done) }()
	for {
		select {
		case b := <-a.batches:
			a.handleBatch(b)
		case <-done:
			return
		}
	}
}

// handleBatch takes what the probes and the output reader sent: every
// observation is recorded and given to the rules, also after the child's
// end (the last frames a child prints before exiting are often read
// after it): execute then records a decision without acting on the gone
// child.
func (a *attempt) handleBatch(b batch) {
	for _, err := range b.bad {
		if a.r.rep.MalformedMarkers == 0 {
			a.r.rep.FirstMalformed = err.Error()
		}
		a.r.rep.MalformedMarkers++
		a.r.log.Debug().Err(err).Msg("malformed marker")
	}
	for _, o := range b.obs {
		for _, s := range a.r.cfg.Sinks {
			s.Observe(o)
		}
		a.record(o)
		a.observe(o)
	}
	if b.free != nil {
		select {
		case b.free <- b.obs[:0]:
		default:
		}
	}
}

// MaxMarkerNames bounds the marker names a report keeps.
const MaxMarkerNames = 1024

// record keeps what the report says of an observation (peaks, markers,
// checkpoints), and hands checkpoint acknowledgements to the stop
// machine.
func (a *attempt) record(o policies.Observation) {
	rep, log := a.r.rep, a.r.log
	if o.Source == policies.SourceProbe {
		if v, seen := rep.Peaks[o.Name]; o.Text == "" && (!seen || telemetry.Float(o.Value) > v) {
			rep.Peaks[o.Name] = telemetry.Float(o.Value)
		}
		if o.Name == policies.NameHealth {
			log.Error().Str("event", o.Text).Str("gpu", o.Labels["gpu"]).Msg("GPU health event")
		}
		return // samples are not markers
	}
	m, known := rep.Markers[o.Name]
	if !known && len(rep.Markers) >= MaxMarkerNames {
		// A child printing ever-new names must not grow prism-run or its
		// report without end: counted, not kept (the rules still see it).
		rep.MarkerNamesDropped++
		return
	}
	m.Count++
	m.Last, m.Text, m.Time = telemetry.Float(o.Value), o.Text, o.Time
	rep.Markers[o.Name] = m
	if isResult(o.Name) && len(a.results) < MaxMarkerNames {
		a.results[o.Name] = resultText(o)
	}
	if o.Name != policies.NameCheckpoint {
		return
	}
	if o.Text == "" {
		log.Warn().Msg("an empty checkpoint marker (checkpoint=\"\") acknowledges nothing: print the checkpoint's path")
		return
	}
	path, err := a.r.checkpointPath(o.Text)
	if err != nil {
		log.Warn().Str("path", o.Text).Msg(err.Error())
		return // no acknowledgement: a stop waiting for one goes on waiting
	}
	rule, took := a.stop.acknowledged(o.Time)
	if rule != "" {
		log.Info().Str("path", path).Str("rule", rule).Stringer("took", took.Round(time.Millisecond)).Msg("checkpoint acknowledged")
	} else {
		log.Info().Str("path", path).Msg("checkpoint reported")
	}
	a.acked = path
	a.r.acknowledge(a, path, o.Time, rule)
}

// observe feeds the engine and carries out its decisions.
func (a *attempt) observe(o policies.Observation) {
	for _, d := range a.r.observe(o) {
		a.execute(d)
	}
}

// execute carries out one decision of the engine.
func (a *attempt) execute(d policies.Decision) {
	a.r.decided(d, a.n)
	a.logDecision(d)
	if a.exited {
		// A child that died of a signal keeps that as its why.
		if d.Action.Ends() && !a.status.Signaled() && a.stop.lateStop(d) {
			a.r.log.Warn().Str("rule", d.Rule).Msg("the rule tripped on what the child wrote (or was sampled) before its end, read after it: the run ends as that rule's stop; nothing was signalled")
		}
		return
	}
	if a.stop.stopping() && !d.Action.Ends() && d.Action != policies.ActionLog && d.Action != policies.ActionAlert {
		return // the child is being stopped: no more requests
	}
	switch d.Action {
	case policies.ActionLog, policies.ActionAlert:
		// Recorded and logged; alert delivery is telemetry's.
	case policies.ActionCheckpoint:
		a.stop.requestCheckpoint(d, false)
	case policies.ActionDegrade:
		sig := signalFor(d, a.r.cfg.DegradeSignal)
		a.sendProtocol(ControlLine{Action: "degrade", Signal: unix.SignalName(sig), Rule: d.Rule, What: d.What, Reason: d.Reason}, sig)
	default:
		if d.Action.Ends() { // stop, kill, checkpoint-stop, and the recovery actions (the run acts after the end)
			a.stop.beginStop(d, byPolicy)
		}
	}
}

func (a *attempt) logDecision(d policies.Decision) {
	log := a.r.log
	ev := log.Info()
	switch {
	case d.Severity >= policies.SeverityHigh || d.Action == policies.ActionAlert:
		ev = log.Error()
	case d.Severity == policies.SeverityMedium:
		ev = log.Warn()
	}
	ev = ev.Str("rule", d.Rule).Str("kind", d.Kind).Stringer("severity", d.Severity).Str("action", string(d.Action))
	if d.What != "" {
		ev = ev.Str("what", d.What)
	}
	ev.Msg(d.Reason)
}

// handleSignal deals with a signal sent to prism-run itself.
func (a *attempt) handleSignal(sig os.Signal) {
	us, ok := sig.(unix.Signal)
	if !ok {
		return
	}
	name := unix.SignalName(us)
	a.r.rep.Forwarded = append(a.r.rep.Forwarded, name)
	for _, s := range a.r.cfg.Sinks {
		s.Signal(a.r.cfg.Clock.Now(), name)
	}
	if (us == unix.SIGUSR1 && a.r.cfg.OnUSR1 == policies.ActionCheckpointStop) ||
		(us == unix.SIGTERM && a.r.cfg.OnTERM == policies.ActionCheckpointStop) {
		a.signalCheckpointStop(us)
		return
	}
	switch us {
	case unix.SIGUSR1:
		// A checkpoint request from outside: Slurm's --signal=B:USR1@T
		// before the time limit, or a person.
		a.r.log.Info().Msg("SIGUSR1 received: requesting a checkpoint")
		a.stop.requestCheckpoint(policies.Decision{Rule: "signal", Reason: "SIGUSR1 sent to prism-run"}, false)
		return
	case unix.SIGTSTP:
		a.jobStop()
		return
	}
	a.r.log.Info().Str("signal", name).Msg("forwarding signal to the child's process group")
	action := "forward"
	if us == unix.SIGUSR2 {
		action = "degrade" // so a child reading the control file does not act on a stale line
	}
	a.sendControl(ControlLine{Action: action, Signal: name, Reason: name + " sent to prism-run"}, us)
	if terminating(us) {
		a.outsideStop(us)
	}
}

// signalCheckpointStop is --on-usr1 / --on-term checkpoint-stop: the
// signal sent to prism-run (a scheduler's warning before its time limit,
// a pod's deletion) becomes a checkpoint request, then a stop, as a
// rule's checkpoint-stop: the child gets SIGUSR1, not the signal itself,
// and exit 75 says its work is saved (a requeue resumes it).
func (a *attempt) signalCheckpointStop(sig unix.Signal) {
	name := unix.SignalName(sig)
	// Medium: a scheduler's stop is expected, not a fault of the job (a
	// warning in the log, below --alert-severity's default).
	d := policies.Decision{Time: a.r.cfg.Clock.Now(), Rule: "signal", Kind: "signal", Severity: policies.SeverityMedium,
		Action: policies.ActionCheckpointStop, Reason: name + " sent to prism-run: checkpoint, then stop"}
	_ = unix.Kill(-a.pid, unix.SIGCONT)
	killed, began := a.stop.outsideCheckpointStop(d, terminating(sig))
	switch {
	case killed:
		a.r.log.Warn().Str("signal", name).Msg("a second terminating signal: killing the child's tree now")
	case began:
		a.r.decided(d, a.n)
		a.logDecision(d)
	}
}

// terminating: the signals that ask a job to end (GNU timeout forwards
// the same ones).
func terminating(sig unix.Signal) bool {
	return sig == unix.SIGTERM || sig == unix.SIGINT || sig == unix.SIGHUP || sig == unix.SIGQUIT
}

// outsideStop follows a forwarded terminating signal: SIGCONT, so that a
// stopped child acts on it (signal(7)), and the stop machine's kill-after,
// or, for the second such signal, SIGKILL at once.
func (a *attempt) outsideStop(sig unix.Signal) {
	_ = unix.Kill(-a.pid, unix.SIGCONT)
	name := unix.SignalName(sig)
	d := policies.Decision{Rule: "signal", Action: policies.ActionStop, Signal: name, Reason: name + " sent to prism-run"}
	if a.stop.outsideSignal(d) {
		a.r.log.Warn().Str("signal", name).Msg("a second terminating signal: killing the child's tree now")
		return
	}
	a.r.log.Info().Stringer("kill_after", a.r.cfg.KillAfter).Msg("the child has kill-after to end, then gets SIGKILL")
}

// outcome turns how the child ended into the run's outcome.
func (a *attempt) outcome() (Outcome, error) {
	st := a.status
	switch {
	case a.stop.cancelled():
		return Outcome{Reason: telemetry.ReasonError, Err: ErrCancelled, Signal: signalOf(st)}, ErrCancelled
	case a.stop.policyStopped():
		s := a.stop.stop
		o := Outcome{Reason: telemetry.ReasonPolicy, Acked: s.acked, RuleExit: s.decision.ExitCode, Signal: signalOf(st)}
		if a.r.cfg.PreserveStatus {
			o.Preserve, o.Code = true, st.ExitStatus()
		}
		return o, nil
	case st.Exited():
		return Outcome{Reason: telemetry.ReasonExited, Code: st.ExitStatus()}, nil
	case st.Signaled() && st.Signal() == unix.SIGKILL && a.r.oom != nil && a.r.oom.blames(a.pid):
		// A SIGKILL no policy sent, and the evidence says the kernel's
		// OOM killer sent it.
		return Outcome{Reason: telemetry.ReasonOOM, Signal: unix.SIGKILL}, nil
	}
	return Outcome{Reason: telemetry.ReasonSignaled, Signal: signalOf(st)}, nil
}

func signalOf(st unix.WaitStatus) unix.Signal {
	if st.Signaled() {
		return st.Signal()
	}
	return 0
}
