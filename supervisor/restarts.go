package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/prism-run/prism-run/policies"
	"github.com/prism-run/prism-run/telemetry"
)

// loop runs the attempts: the first, then as long as recovery asks for
// one, a restart (from a checkpoint), a rollback, a rerun, or the
// fallback; then, with VerifyRepro, the second run that checks the
// result. It returns an error only when an attempt could not start.
func (r *run) loop(ctx context.Context) error {
	spec := attemptSpec{argv: r.cfg.Command, resume: r.resume}
	for {
		a, err := r.startAttempt(spec)
		if err != nil {
			r.syncState()
			return err
		}
		r.syncState()
		out, err := a.supervise(ctx)
		end := r.ended(a, out)
		s := r.budget.decide(end, r.cfg.Clock.Now())
		r.abandon(end)
		r.afterAttempt(a, out, end, s)
		if s.kind == stepEnd || err != nil {
			r.rep.End = r.cfg.Clock.Now()
			r.conclude(out, a)
			if s.verdict != "" {
				r.rep.Message += "; " + s.verdict
			}
			if err == nil && r.cfg.VerifyRepro && out.Reason == telemetry.ReasonExited && out.Code == 0 {
				if spec.role == "" {
					err = r.verify(ctx, a)
				} else {
					const v = "--verify-repro not run: the result is the fallback's"
					r.log.Warn().Msg(v)
					r.rep.Message += "; " + v
					r.recovery().Verdict = v
				}
			}
			r.syncState()
			r.logEnd()
			return err
		}
		if !r.wait(ctx, s.delay) {
			r.rep.End = r.cfg.Clock.Now()
			v := "no restart: stopped during the backoff"
			if r.betweenStop != nil {
				r.concludeBetween()
				v = "no restart: rule " + r.betweenStop.Rule + " ended the run during the backoff"
			} else {
				r.conclude(out, a)
				r.rep.Message += "; " + v
			}
			r.recovery().Verdict = v
			r.history[a.idx].Next = "end: " + v
			r.syncState()
			r.logEnd()
			return nil
		}
		spec = r.next(s)
		r.engine.NewAttempt(r.cfg.Clock.Now().Add(-r.paused))
	}
}

// ended judges how an attempt ended, for recovery.
func (r *run) ended(a *attempt, out Outcome) ended {
	e := ended{outcome: out, ran: r.cfg.Clock.Since(a.started), failover: a.role == "fallback"}
	m := a.stop
	e.outside = m.cancelled() || m.outside || (m.stop != nil && m.stop.by == byOutside)
	if out.Reason == telemetry.ReasonPolicy {
		d := m.stop.decision
		e.decision = &d
		// A restart's checkpoint-stop that the child acknowledged: the
		// work is saved, as a preempted job's is. (A child may write one
		// path every time: the acknowledgement is what counts.)
		e.preempted = out.Acked && d.Action == policies.ActionRestart
	}
	// Someone outside prism-run SIGTERMed the child after it had saved
	// its work: a preemption (a node drained, an operator), not a bug.
	// Whether it died of the signal or caught it and exited 143 (128+15,
	// the shell's code for it) as a preemption-aware program does.
	termed := out.Reason == telemetry.ReasonSignaled && out.Signal == unix.SIGTERM ||
		out.Reason == telemetry.ReasonExited && out.Code == 128+int(unix.SIGTERM)
	if termed && m.stop == nil && r.mayRestart() && r.signalFollows() {
		// The scheduler signalled the whole job and the child saw it
		// first (Slurm's scancel signals every process of the step): the
		// run ends, as for a signal to prism-run, and it is no failure.
		e.outside = true
	}
	if termed && a.acked != "" && m.stop == nil {
		e.preempted = true
	}
	return e
}

// mayRestart: a child's own end may be restarted (restart on-failure or
// always).
func (r *run) mayRestart() bool {
	p := r.cfg.Recovery.Restart
	return p == policies.RestartOnFailure || p == policies.RestartAlways
}

// outsideGrace is how long, after a child died of SIGTERM that prism-run
// did not send, prism-run waits for a terminating signal of its own: a
// scheduler that signals the whole job reaches the processes a few ms
// apart.
const outsideGrace = 250 * time.Millisecond

// signalFollows waits up to outsideGrace, on the run's clock, for a
// terminating signal sent to prism-run, and reports whether one came.
func (r *run) signalFollows() bool {
	t := r.cfg.Clock.NewTimer(outsideGrace)
	defer t.Stop()
	for {
		select {
		case <-t.C():
			return false
		case sig := <-r.cfg.Signals:
			if us, ok := sig.(unix.Signal); ok && terminating(us) {
				r.log.Info().Str("signal", unix.SignalName(us)).Msg("a terminating signal reached prism-run just after the child died of SIGTERM: the job was stopped from outside, no restart")
				r.rep.Forwarded = append(r.rep.Forwarded, unix.SignalName(us))
				return true
			}
		}
	}
}

// abandon marks what a rollback went back past (the checkpoints
// acknowledged since its rule began to hold) or a rerun started over from
// (all): never resumed from again, whether a restart follows, the budget
// ends the run, a signal ends the backoff, or the fallback runs.
func (r *run) abandon(e ended) {
	d := e.decision
	switch {
	case d == nil:
	case d.Action == policies.ActionRollback:
		r.ledger.abandonAfter(d.Since)
	case d.Action == policies.ActionRerunSeed:
		r.ledger.abandonAfter(time.Time{})
	}
}

// afterAttempt records an attempt's end in the report and the state.
func (r *run) afterAttempt(a *attempt, out Outcome, e ended, s step) {
	next := "end"
	switch {
	case s.kind == stepRestart:
		next = "restart: " + s.why
	case s.kind == stepFailover:
		next = "failover: " + s.why
	case s.verdict != "":
		next = "end: " + s.verdict
	}
	if s.verdict != "" && s.kind == stepFailover {
		next = "failover: " + s.verdict
	}
	att := r.endHistory(a, out, next)
	att.Counted, att.Preempted = s.counted, e.preempted && !s.counted
	rec := r.recovery()
	if s.counted {
		rec.Failures = len(r.budget.failures)
	}
	if att.Preempted {
		rec.Preemptions++
	}
	if s.verdict != "" {
		rec.Verdict = s.verdict
	}
	ev := r.log.Info()
	if s.kind != stepEnd {
		ev = r.log.Warn()
	}
	ev.Int("attempt", a.n).Int("exit_code", *att.Exit).Bool("counted", s.counted).Msg(next)
	r.syncState()
}

// endHistory closes the attempt's entry in the history and returns it.
func (r *run) endHistory(a *attempt, out Outcome, next string) *telemetry.Attempt {
	att := &r.history[a.idx]
	code := ExitCode(out)
	att.End, att.Exit, att.Reason, att.Next = r.cfg.Clock.Now(), &code, out.Reason, next
	if out.Signal != 0 {
		att.Signal = unix.SignalName(out.Signal)
	}
	if out.Reason == telemetry.ReasonPolicy {
		att.Rule = a.stop.stop.decision.Rule
	}
	return att
}

// recovery is the report's recovery section, made on first use.
func (r *run) recovery() *telemetry.Recovery {
	if r.rep.Recovery == nil {
		r.rep.Recovery = &telemetry.Recovery{}
	}
	return r.rep.Recovery
}

// wait is the backoff before a restart, on the run's clock. A
// terminating signal or the caller's cancellation ends the run instead;
// SIGUSR1 has no child to ask and is logged.
func (r *run) wait(ctx context.Context, d time.Duration) bool {
	var fired, tick <-chan time.Time // nil with no wait
	if d > 0 {
		r.log.Info().Stringer("backoff", d.Round(time.Millisecond)).Msg("waiting before the restart")
		t := r.cfg.Clock.NewTimer(d)
		defer t.Stop()
		fired = t.C()
		// The run's clock goes on: a deadline that passes during the wait
		// ends the run then, not after a new child has started.
		tk := r.cfg.Clock.NewTicker(r.cfg.TickInterval)
		defer tk.Stop()
		tick = tk.C()
	}
	for {
		// What is pending comes first: a signal sent as the child ended
		// ends the run even with no wait at all.
		select {
		case <-ctx.Done():
			return false
		case sig := <-r.cfg.Signals:
			if r.endsBetween(sig) {
				return false
			}
			continue
		default:
		}
		if fired == nil {
			return true
		}
		select {
		case <-fired:
			return true
		case <-ctx.Done():
			return false
		case sig := <-r.cfg.Signals:
			if r.endsBetween(sig) {
				return false
			}
		case now := <-tick:
			if r.deadlineBetween(now) {
				return false
			}
		}
	}
}

// deadlineBetween runs the deadline rules on the clock between two
// children, and reports whether one ends the run (r.betweenStop).
func (r *run) deadlineBetween(now time.Time) bool {
	o := policies.Observation{Time: now, Source: policies.SourceClock, Name: policies.NameElapsed,
		Value: now.Add(-r.paused).Sub(r.engine.Start()).Seconds()}
	for _, d := range r.observe(o, policies.KindDeadline) {
		r.decided(d, r.firstN+len(r.history)-1)
		if d.Action.Ends() && r.betweenStop == nil {
			r.log.Warn().Str("rule", d.Rule).Msg(d.Reason + ": the run ends during the backoff, with no child to stop")
			r.betweenStop = &d
		}
	}
	return r.betweenStop != nil
}

// concludeBetween ends a run that a rule ended between two children: 75
// when an acknowledged checkpoint waits to be resumed from, else 124 (or
// the rule's own code).
func (r *run) concludeBetween() {
	d := r.betweenStop
	o := Outcome{Reason: telemetry.ReasonPolicy, Acked: r.ledger.newest() != "", RuleExit: d.ExitCode}
	r.rep.Reason, r.rep.Exit, r.rep.Signal = o.Reason, ExitCode(o), ""
	r.sayIdleAndMalformed()
	r.rep.Rule = d.Rule
	r.rep.Message = fmt.Sprintf("stopped by rule %s during the backoff: %s", d.Rule, d.Reason)
	if o.Acked {
		r.rep.Message += " (an acknowledged checkpoint waits: resumable)"
	}
}

// endsBetween takes a signal sent to prism-run between two attempts: a
// terminating one ends the run; another has no child to go to.
func (r *run) endsBetween(sig os.Signal) bool {
	if us, ok := sig.(unix.Signal); ok && terminating(us) {
		r.log.Info().Str("signal", unix.SignalName(us)).Msg("no restart: signal received during the backoff")
		r.rep.Forwarded = append(r.rep.Forwarded, unix.SignalName(us))
		return true
	}
	r.log.Info().Str("signal", sig.String()).Msg("signal received between attempts: no child to pass it to")
	return false
}

// next is the spec of the attempt a step asks for. With no acknowledged
// checkpoint to go back to, a restart resumes from what the first attempt
// was given (--resume), if anything.
func (r *run) next(s step) attemptSpec {
	spec := attemptSpec{argv: r.cfg.Command, backoff: s.delay}
	switch {
	case s.kind == stepFailover:
		spec.argv, spec.role = r.cfg.Recovery.Fallback, "fallback"
		spec.resume = r.orFirst(r.ledger.newest())
		r.recovery().Failover = true
		return spec
	case s.from == fromNewest:
		spec.resume = r.orFirst(r.ledger.newest())
	case s.from == fromBefore:
		spec.resume = r.orFirst(r.ledger.before(s.since))
		if spec.resume == "" {
			r.log.Warn().Time("since", s.since).Msg("rollback: no checkpoint was acknowledged before the violation began: starting from the beginning")
		}
	}
	r.recovery().Restarts++
	return spec
}

// orFirst is p, or when p is "" the checkpoint the first attempt was
// given, saying so when acknowledged ones existed but are gone.
func (r *run) orFirst(p string) string {
	if p != "" {
		return p
	}
	r.sayGone()
	if r.resume != "" && r.ledger.handable(r.resume) {
		return r.resume
	}
	return ""
}

// sayGone warns when the ledger holds checkpoints that are no longer
// there: the job goes back further than it believes.
func (r *run) sayGone() {
	gone := 0
	for _, c := range r.ledger.cps {
		if !c.Abandoned && !c.Deleted && !usable(c) {
			gone++
		}
	}
	if gone > 0 {
		r.log.Warn().Int("gone", gone).Str("dir", r.ledger.dir).Msg("acknowledged checkpoints are no longer there (moved or deleted outside prism-run?): none of them is resumed from")
	}
}

// checkpointPath is the checkpoint a marker names, absolute (a relative
// path is the child's working folder's), or why the marker acknowledges
// nothing: it names nothing that exists (resuming from it would fail, and
// counting it would make retention drop a real one), or prism-run's own
// state.
func (r *run) checkpointPath(text string) (string, error) {
	path := text
	if !filepath.IsAbs(path) {
		base := r.cfg.Dir
		if base == "" {
			base, _ = os.Getwd()
		}
		path = filepath.Join(base, path)
	}
	path = filepath.Clean(path)
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("the checkpoint marker names nothing that can be read (%v): not an acknowledgement (write the checkpoint, then print the marker)", err)
	}
	real, _ := filepath.EvalSymlinks(path) // also through a link the child made to it
	if r.ledger.isOwn(path) || r.ledger.isOwn(real) {
		return "", errors.New("the checkpoint marker names prism-run's own state folder or a file in it: not an acknowledgement")
	}
	return path, nil
}

// acknowledge records a checkpoint the child acknowledged at time at
// (answering rule's request, "" unasked): the ledger, the report, the
// state, and retention.
func (r *run) acknowledge(a *attempt, path string, at time.Time, rule string) {
	if a.role == "verify" {
		return // the reproducibility check's own, never resumed from
	}
	r.event(telemetry.Event{Kind: telemetry.EventCheckpointed, Time: at, Attempt: a.n})
	c := telemetry.Checkpoint{Path: path, Time: at, Rule: rule, Attempt: a.n}
	r.ledger.add(c)
	r.rep.Checkpoints = append(r.rep.Checkpoints, c)
	if len(r.rep.Checkpoints) > maxLedger {
		r.rep.Checkpoints = r.rep.Checkpoints[1:]
	}
	if keep := r.cfg.Recovery.Keep; keep > 0 {
		holding := r.engine.Holding(policies.ActionRollback)
		for i := range holding {
			holding[i] = r.wall(holding[i])
		}
		deleted, refused := r.ledger.prune(keep, holding)
		for _, p := range deleted {
			r.log.Info().Str("path", p).Int("keep", keep).Msg("retention: deleted an older acknowledged checkpoint")
		}
		for _, p := range refused {
			r.log.Warn().Str("path", p).Str("dir", r.ledger.dir).Msg("retention: never deleting this checkpoint: it is not an entry of the checkpoint folder itself (nested, a dot name, outside it) or it holds prism-run's state")
		}
		if len(deleted)+len(refused) > 0 {
			rec := r.recovery()
			rec.Deleted = append(rec.Deleted, deleted...)
			rec.Refused = append(rec.Refused, refused...)
		}
	}
	r.syncState()
}

// refreshCheckpoints copies what the ledger learnt since (abandoned by
// a rollback, deleted by retention) onto the report's checkpoints.
func (r *run) refreshCheckpoints() {
	now := map[string]telemetry.Checkpoint{}
	for _, c := range r.ledger.cps {
		now[c.Path] = c
	}
	for i := range r.rep.Checkpoints {
		c := &r.rep.Checkpoints[i]
		if l, ok := now[c.Path]; ok && l.Time.Equal(c.Time) {
			c.Abandoned, c.Deleted = l.Abandoned, l.Deleted
		}
	}
}

// openState takes the state folder (Config.StateDir, or a dot folder in
// a checkpoint folder the caller named) and carries on from its state:
// the acknowledged checkpoints, the failures, the attempts, the seed.
// Without either folder the state lives in memory only.
func (r *run) openState() error {
	dir := ""
	switch {
	case r.cfg.StateDir != "":
		dir = ResolveStateDir("", r.cfg.StateDir)
	case !r.ownCkptDir:
		dir = filepath.Join(r.ledger.dir, StateFolderName)
	}
	var failures []time.Time
	defer func() { r.budget = newBudget(r.cfg.Recovery, failures) }()
	if dir == "" {
		return nil
	}
	store, st, err := openState(dir)
	if err != nil {
		return err
	}
	r.store = store
	if abs, err := filepath.Abs(dir); err == nil {
		r.ledger.own = append(r.ledger.own, abs)
		if real, err := filepath.EvalSymlinks(abs); err == nil && real != abs {
			r.ledger.own = append(r.ledger.own, real)
		}
	}
	r.recovery().StateFile = store.path()
	if st == nil {
		return nil
	}
	r.ledger.cps, failures, r.history = st.Checkpoints, st.Failures, st.Attempts
	r.ledger.trim() // a state from elsewhere may hold more
	if len(r.history) > maxLedger {
		r.history = r.history[len(r.history)-maxLedger:]
	}
	r.firstN = max(st.AttemptCount, len(st.Attempts)) - len(r.history)
	for i := range r.history {
		if h := &r.history[i]; h.End.IsZero() && h.Next == "" {
			// Started and never ended in the state: the prism-run running
			// it was SIGKILLed (or its machine went away).
			h.Next = "unknown: the prism-run that ran it ended first (SIGKILL, a lost node)"
		}
	}
	r.recovery().Failures, r.recovery().Preemptions = len(st.Failures), st.Preemptions
	r.log.Info().Str("state", store.path()).Int("attempts", len(st.Attempts)).Int("failures", len(st.Failures)).
		Int("checkpoints", len(st.Checkpoints)).Msg("carrying on from the state of an earlier invocation")
	switch {
	case !r.cfg.SeedSet:
		r.cfg.Seed, r.rep.Seed = st.Seed, st.Seed
	case r.cfg.Seed != st.Seed:
		r.log.Warn().Uint64("seed", r.cfg.Seed).Uint64("state_seed", st.Seed).Msg("--seed differs from the seed of the state: the resumed job is not the one that was checkpointed")
	}
	// One more failure now: would the budget already say no?
	probe := &budget{plan: r.cfg.Recovery, failures: append(slices.Clone(st.Failures), r.cfg.Clock.Now())}
	if v := probe.exhausted(r.cfg.Clock.Now()); v != "" && r.mayRestart() {
		r.log.Warn().Str("state", store.path()).Msg("earlier invocations used the failure budget up (" + v + " with one more): a failure in this run will not be restarted (raise --max-restarts or max_restarts_per_hour, or start a new state)")
	}
	if !slices.Equal(st.Command, r.cfg.Command) {
		r.log.Warn().Strs("state_command", st.Command).Msg("the state was written for another command")
	}
	return nil
}

// syncState writes the state when a state folder is held. A write that
// fails is a warning: the run goes on, and the next write may succeed.
func (r *run) syncState() {
	r.rep.AttemptLog = r.history
	r.refreshCheckpoints()
	if r.store == nil {
		return
	}
	hist := r.history[max(0, len(r.history)-maxLedger):]
	st := &State{Command: r.cfg.Command, Seed: r.cfg.Seed, Checkpoints: r.ledger.cps, Attempts: hist,
		AttemptCount: r.firstN + len(r.history), Failures: r.budget.failures, Updated: r.cfg.Clock.Now()}
	if rec := r.rep.Recovery; rec != nil {
		st.Preemptions = rec.Preemptions
	}
	if err := r.store.write(st); err != nil {
		r.log.Warn().Err(err).Msg("cannot write the state")
	}
}

// resolveResume is the first attempt's PRISM_RESUME: a path as given, or
// for ResumeLatest the newest acknowledged checkpoint of the state.
func (r *run) resolveResume() (string, error) {
	switch r.cfg.Resume {
	case "":
		return "", nil
	case ResumeLatest:
		if p := r.ledger.newest(); p != "" {
			return p, nil // carrying on the state's trajectory
		}
		if len(r.ledger.cps) > 0 {
			r.sayGone()
			r.log.Warn().Msg("--resume latest: no acknowledged checkpoint of the state can be resumed from: starting from the beginning")
			return "", nil
		}
		msg := "--resume latest: no acknowledged checkpoint yet: starting from the beginning"
		if r.store == nil {
			msg += " (no state folder: only the checkpoints acknowledged to this run count)"
		}
		ev := r.log.Info()
		if names := unacknowledged(r.ledger.dir); len(names) > 0 {
			ev = r.log.Warn().Strs("not_resumed", names)
			msg += "; the files in the checkpoint folder were never acknowledged to a prism-run on this state, so none is taken for a whole checkpoint"
		}
		ev.Msg(msg)
		return "", nil
	}
	if _, err := os.Stat(r.cfg.Resume); err != nil {
		return "", fmt.Errorf("%w: resume: %w", ErrConfig, err)
	}
	return filepath.Abs(r.cfg.Resume)
}

// unacknowledged names the first few entries of dir (not dot names).
func unacknowledged(dir string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if notState(e) && len(out) < 5 {
			out = append(out, e.Name())
		}
	}
	return out
}

// notState: an entry of a checkpoint folder that is not prism-run's own
// (its state folder, a dot name).
func notState(e fs.DirEntry) bool { return !strings.HasPrefix(e.Name(), ".") }

// maxLedger bounds the checkpoints the ledger, the state and the report
// keep: a week-long job that checkpoints every minute must not grow
// them without end (the oldest go first).
const maxLedger = 1000

// isResult: result markers, compared by --verify-repro.
func isResult(name string) bool { return name == "result" || strings.HasPrefix(name, "result_") }

func resultText(o policies.Observation) string {
	if o.Text != "" {
		return strconv.Quote(o.Text)
	}
	return strconv.FormatFloat(o.Value, 'g', -1, 64)
}

// verify is --verify-repro: the command once more, from the beginning
// with the same seed, supervised like any attempt, and its result
// markers compared with those of the run's last attempt (first).
func (r *run) verify(ctx context.Context, first *attempt) error {
	r.log.Info().Uint64("seed", r.cfg.Seed).Msg("the run exited with code 0; --verify-repro: running the command again from the beginning with the same seed")
	// Judged as the first run was: its own deadline, totals and windows.
	r.engine.NewRun(r.cfg.Clock.Now().Add(-r.paused))
	// Its own checkpoint folder: the second run must neither overwrite the
	// job's checkpoints nor become the one a later --resume latest takes.
	ck := filepath.Join(r.runDir, "verify-checkpoints")
	if err := os.Mkdir(ck, 0o700); err != nil {
		return fmt.Errorf("%w: --verify-repro: %w", ErrSetup, err)
	}
	r.madeDirs = append(r.madeDirs, ck) // a --user child's, as the checkpoint folder is
	if err := r.giveFolders(ck); err != nil {
		return err
	}
	a, err := r.startAttempt(attemptSpec{argv: r.cfg.Command, role: "verify", ckDir: ck})
	if err != nil {
		r.syncState()
		return err
	}
	out, err := a.supervise(ctx)
	r.endHistory(a, out, "end")
	r.rep.End = r.cfg.Clock.Now()
	defer r.syncState()
	if err != nil {
		return err
	}
	if r.ended(a, out).outside || out.Reason == telemetry.ReasonPolicy {
		// Stopped from outside or by a rule (a deadline the run from the
		// beginning does not meet): nothing was shown either way, and the
		// code is that stop's.
		r.conclude(out, a)
		v := "--verify-repro interrupted: not verified"
		if out.Reason == telemetry.ReasonPolicy {
			v = "--verify-repro: the second run was stopped by rule " + a.stop.stop.decision.Rule + ": not verified"
		}
		r.rep.Message += "; " + v
		r.recovery().Verdict = v
		return nil
	}
	why := differences(first.results, a.results)
	switch {
	case out.Reason != telemetry.ReasonExited || out.Code != 0:
		why = "the second run " + describeEnd(out) + ", the first exited with code 0"
	case len(first.results) == 0:
		why = "no result marker to compare: the command printed no `PRISM result=...` (or result_NAME=...)"
	}
	if why == "" {
		r.log.Info().Int("results", len(first.results)).Msg("reproduced: the second run's results are the same")
		r.rep.Message += fmt.Sprintf("; reproduced with seed %d (%d result(s) equal)", r.cfg.Seed, len(first.results))
		return nil
	}
	d := policies.Decision{Time: r.cfg.Clock.Now(), Rule: "verify-repro", Kind: "reproducibility",
		Severity: policies.SeverityHigh, Action: policies.ActionStop, Reason: why}
	r.decided(d, a.n)
	r.log.Error().Str("rule", d.Rule).Uint64("seed", r.cfg.Seed).Msg("not reproducible: " + why)
	o := Outcome{Reason: telemetry.ReasonNotReproducible}
	r.rep.Reason, r.rep.Exit, r.rep.Rule, r.rep.Signal = o.Reason, ExitCode(o), d.Rule, ""
	r.rep.Message = fmt.Sprintf("not reproducible with seed %d: %s", r.cfg.Seed, why)
	r.recovery().Verdict = "not reproducible: " + why
	return nil
}

// differences says how two runs' results differ ("" when they do not).
func differences(want, got map[string]string) string {
	var diffs []string
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if g, ok := got[k]; !ok {
			diffs = append(diffs, k+"="+want[k]+" then missing")
		} else if g != want[k] {
			diffs = append(diffs, k+"="+want[k]+" then "+g)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, k+" missing then "+got[k])
		}
	}
	return strings.Join(diffs, ", ")
}
