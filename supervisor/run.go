package supervisor

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/prism-run/prism-run/internal/procfs"
	"github.com/prism-run/prism-run/limits"
	"github.com/prism-run/prism-run/markers"
	"github.com/prism-run/prism-run/policies"
	"github.com/prism-run/prism-run/telemetry"
)

// Run starts cfg.Command and supervises it until it and every process it
// started have ended. The report is never nil; its Exit is the code
// prism-run should return (ExitCode of the run's Outcome), also when err
// is not nil (125, 126 or 127).
//
// Run is process-wide: it makes the process a child subreaper and reaps
// every child of the process (Reaper), so a process runs one Run at a
// time and starts no other child that it waits for with os/exec's Wait
// while a Run is under way.
func Run(ctx context.Context, cfg Config) (*telemetry.Report, error) {
	cfg.setDefaults()
	rep := telemetry.NewReport(cfg.RunID, cfg.Clock.Now())
	rep.Command, rep.Mission, rep.Seed = cfg.Command, cfg.Mission, cfg.Seed
	fail := func(err error) (*telemetry.Report, error) {
		rep.End, rep.Message = cfg.Clock.Now(), err.Error()
		rep.Exit = ExitCode(Failed(err))
		return rep, err
	}
	r, err := newRun(cfg, rep)
	defer r.cleanup() // on every path: the cgroup is the run's from here
	if err != nil {
		return fail(err)
	}
	// Attempts, one child each, under the same engine, report and
	// budget: restarts are a loop here (Nomad's executor: one attempt
	// per executor, restarts a layer up).
	if err := r.loop(ctx); err != nil {
		return fail(err)
	}
	return rep, nil
}

// run is one supervised run: what outlives any one child. It owns the
// policy engine (rules judge the whole run), the report, the run folder
// with its control file and checkpoints, the OOM accounting of the run's
// cgroup, the time the job spent stopped, and the reaper. Attempts (one
// child each) come and go under it.
type run struct {
	cfg    Config
	rep    *telemetry.Report
	log    zerolog.Logger
	engine *policies.Engine
	parser *markers.Parser
	reaper *Reaper
	hooks  *hooks // --on-violation (nil: none)

	resume     string              // PRISM_RESUME of the first attempt
	ledger     ledger              // the job's acknowledged checkpoints
	budget     *budget             // failures, backoff
	store      *stateStore         // the state folder, held (nil: no state kept)
	history    []telemetry.Attempt // the job's attempts, earlier invocations' first
	firstN     int                 // the job's attempts before history[0] (the state keeps the last 1000)
	runDir     string              // created by newRun, removed by cleanup when empty of checkpoints
	ownCkptDir bool                // the checkpoint folder is inside the run folder
	madeDirs   []string            // the folders prism-run made for the child's checkpoints, top first
	control    *controlFile

	paused time.Duration // time the job spent stopped by job control (see observe)
	pauses []pause       // each stop, for turning a run time back into wall time
	// betweenStop is a rule's ending decided while no child ran (a
	// deadline during the backoff).
	betweenStop  *policies.Decision
	oom          *oomWatch // nil without a cgroup
	cgroupClosed bool      // the cgroup has been removed
	// foreignProc: ProcRoot is another PID namespace's; no pid read there
	// is acted on (procfs.Foreign).
	foreignProc bool
	attempts    int
	swept       chan struct{} // closed when the stale run folders' sweep is over (nil: not started)
	ptyIn       *ptyInput     // --pty with a terminal on stdin: what is typed goes to the attempt's pty
}

// newRun prepares a run. The run it returns is never nil, and owns the
// configured cgroup from the start: its cleanup removes it whether or not
// the rest could be prepared.
func newRun(cfg Config, rep *telemetry.Report) (*run, error) {
	r := &run{cfg: cfg, rep: rep, log: cfg.Log, foreignProc: procfs.Foreign(cfg.ProcRoot)}
	if r.foreignProc {
		r.log.Warn().Str("proc", cfg.ProcRoot).Msg("the proc file system is another PID namespace's (unshare --pid without " +
			"--mount-proc?): the tree is found through the run's cgroup and process group only, protocol signals go to " +
			"the main child unchecked, and isolation cannot be verified")
	}
	if cg := cfg.Cgroup; cg != nil {
		rep.Cgroup = &telemetry.CgroupReport{Mode: cg.Mode().String(), Path: cg.Path(),
			MemoryLimit: cfg.CgroupLimits.Memory, PidsLimit: cfg.CgroupLimits.Pids}
		// The baseline is read before the child exists: a child that is
		// OOM-killed at once must still count.
		r.oom = newOOMWatch(cg, cfg.KillLog, rep.Cgroup, r.log)
	}
	if err := cfg.validate(); err != nil {
		return r, err
	}
	var err error
	if r.engine, err = policies.NewEngine(cfg.Clock, cfg.Rules); err != nil {
		return r, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if r.parser, err = markers.NewParser(cfg.MarkerPrefix, cfg.Patterns...); err != nil {
		return r, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	rep.Start = r.engine.Start()
	// Not on the child's start path: the sweep reads every prism-run-*
	// folder in the temporary folder, and waits only in cleanup.
	r.swept = make(chan struct{})
	go func() { defer close(r.swept); sweepRunFolders(r.cfg.ProcRoot, r.log) }()
	if err := r.prepareFolders(); err != nil {
		return r, err
	}
	r.reaper = NewReaper()
	if len(cfg.OnViolation) > 0 {
		r.hooks = newHooks(&r.cfg, r.reaper)
	}
	return r, nil
}

// prepareFolders makes the run folder (the control file and, by default,
// the checkpoints: fresh per run, so two runs never share one), resolves
// the checkpoint to resume from, and opens the control file.
func (r *run) prepareFolders() error {
	var err error
	r.runDir, err = os.MkdirTemp("", "prism-run-"+limits.SafeName(r.cfg.RunID)+"-")
	if err == nil {
		// A relative $TMPDIR would give the child relative paths
		// (PRISM_CONTROL, NOTIFY_SOCKET: sd_notify(3) refuses one) that
		// break as soon as it changes folder.
		r.runDir, err = filepath.Abs(r.runDir)
	}
	if err != nil {
		return fmt.Errorf("%w: run folder: %w", ErrSetup, err)
	}
	if r.cfg.OnRunFolder != nil {
		r.cfg.OnRunFolder(r.runDir)
	}
	// Who owns the folder, for a later prism-run to judge whether it is
	// gone (sweepRunFolders) when no watchdog removed it.
	if owner, oerr := procfs.SelfOwner(r.cfg.ProcRoot); oerr == nil {
		_ = os.WriteFile(filepath.Join(r.runDir, ownerFile), []byte(owner.String()+"\n"), 0o600)
	}
	ck := r.cfg.CheckpointDir
	if ck == "" {
		ck, r.ownCkptDir = filepath.Join(r.runDir, "checkpoints"), true
	}
	if ck, err = filepath.Abs(ck); err == nil {
		r.madeDirs, err = mkdirAll(ck)
	}
	if err != nil {
		return fmt.Errorf("%w: checkpoint folder: %w", ErrSetup, err)
	}
	r.rep.CheckpointDir = ck
	r.ledger.dir = ck
	if err := r.openState(); err != nil {
		return err
	}
	if r.resume, err = r.resolveResume(); err != nil {
		return err
	}
	if r.resume == "" || r.resume != r.ledger.newest() {
		// This invocation starts its own trajectory (fresh, or from a
		// --resume path): a restart goes back to its checkpoints, or to
		// that path, never to an earlier invocation's newer ones.
		r.ledger.floor = r.engine.Start()
	}
	if r.resume != "" {
		r.log.Info().Str("checkpoint", r.resume).Msg("resuming")
	}
	r.rep.ControlFile = filepath.Join(r.runDir, "control")
	if r.control, err = openControl(r.rep.ControlFile); err != nil {
		return err
	}
	return r.giveFolders(ck)
}

// cleanup ends what the run holds: the reaper, the cgroup (when no child
// ever started), the control file, and the run folder unless the child
// left checkpoints in it.
func (r *run) cleanup() {
	if r.swept != nil {
		<-r.swept
	}
	r.store.close()
	if r.hooks != nil {
		r.hooks.close(hooksFlush)
		if d, f := r.hooks.dropped.Load(), r.hooks.failed.Load(); d+f > 0 {
			r.rep.HooksDropped, r.rep.HooksFailed = d, f
		}
	}
	if r.reaper != nil {
		r.reaper.Close()
	}
	if r.ptyIn != nil {
		r.ptyIn.close()
	}
	r.closeCgroup()
	if r.control != nil {
		_ = r.control.close()
	}
	if r.runDir == "" {
		return
	}
	if r.ownCkptDir {
		if entries, err := os.ReadDir(r.rep.CheckpointDir); err == nil && slices.ContainsFunc(entries, notState) {
			r.log.Info().Str("dir", r.runDir).Msg("checkpoints kept")
			return
		}
	}
	_ = os.RemoveAll(r.runDir)
	if r.ownCkptDir {
		r.rep.CheckpointDir = ""
	}
	r.rep.ControlFile = ""
}

// closeCgroup removes the run's cgroup once nothing is left in it.
func (r *run) closeCgroup() {
	cg := r.cfg.Cgroup
	if cg == nil || r.cgroupClosed {
		return
	}
	r.cgroupClosed = true
	if err := limits.KillAndDelete(cg, r.cfg.Clock); err != nil {
		r.log.Warn().Err(err).Str("cgroup", cg.Path()).Msg("cannot remove the run's cgroup; the next prism-run will")
	}
}

// observe feeds the engine (the rules of kinds alone, when given) and
// returns its decisions. The rules live in
// run time: wall time less the time the job spent stopped by job control
// (Ctrl-Z, then fg), so a heartbeat, stall window or deadline does not
// count a pause the person asked for. Observations arrive in wall time and
// decisions go back to it.
func (r *run) observe(o policies.Observation, kinds ...string) []policies.Decision {
	if !o.Time.IsZero() {
		o.Time = o.Time.Add(-r.paused)
	}
	var ds []policies.Decision
	if kinds == nil {
		ds = r.engine.Observe(o)
	} else {
		ds = r.engine.ObserveKinds(o, kinds...)
	}
	for i := range ds {
		ds[i].Time = ds[i].Time.Add(r.paused)
		if !ds[i].Since.IsZero() {
			ds[i].Since = r.wall(ds[i].Since)
		}
	}
	return ds
}

// decided records a decision of the rules (a violation) made during
// attempt n: the report, and the sinks.
func (r *run) decided(d policies.Decision, n int) {
	r.rep.AddDecision(d)
	v := telemetry.Violation{RunID: r.cfg.RunID, Attempt: n, Decision: d}
	for _, s := range r.cfg.Sinks {
		s.Violation(v)
	}
	if r.hooks != nil {
		r.hooks.violation(v)
	}
}

// hooksFlush bounds how long the end of a run waits for --on-violation's
// queued programs.
const hooksFlush = 2 * time.Second

// event tells the sinks what happened to a child.
func (r *run) event(e telemetry.Event) {
	for _, s := range r.cfg.Sinks {
		s.Event(e)
	}
}

// pause is one stop of the job by job control: when it began, in run
// time, and the paused time in all once it ended.
type pause struct {
	at    time.Time
	total time.Duration
}

// wall turns a run time back into wall time: the pauses that began
// before it are added back (a rollback compares when a rule began to
// hold with when checkpoints were acknowledged, in wall time).
func (r *run) wall(rt time.Time) time.Time {
	var d time.Duration
	for _, p := range r.pauses {
		if p.at.Before(rt) {
			d = p.total
		}
	}
	return rt.Add(d)
}

// conclude writes how the run ended into the report: the reason, the
// message and the exit code.
func (r *run) conclude(o Outcome, a *attempt) {
	rep := r.rep
	rep.Reason = o.Reason
	rep.Exit = ExitCode(o)
	if o.Signal != 0 {
		rep.Signal = unix.SignalName(o.Signal)
	}
	switch o.Reason {
	case telemetry.ReasonError:
		rep.Rule, rep.Message = "", "cancelled"
	case telemetry.ReasonPolicy:
		d := a.stop.stop.decision
		rep.Rule = d.Rule
		rep.Message = fmt.Sprintf("stopped by rule %s: %s", d.Rule, d.Reason)
		if o.Acked {
			rep.Message += " (checkpoint acknowledged: resumable)"
		}
	case telemetry.ReasonExited:
		rep.Message = fmt.Sprintf("exited with code %d", o.Code)
	case telemetry.ReasonOOM:
		c := rep.Cgroup
		rep.Message = fmt.Sprintf("OOM-killed by the kernel (pid %d): memory limit %d bytes, peak %d bytes",
			a.pid, c.MemoryLimit, c.MemoryPeak)
	case telemetry.ReasonSignaled:
		rep.Message = "killed by " + rep.Signal
	}
	if rec := rep.Recovery; rec != nil && rec.Restarts > 0 {
		rep.Message += fmt.Sprintf(" (attempt %d of the job, after %d restart(s) in this run)", a.n, rec.Restarts)
	}
	if a.role == "fallback" {
		rep.Message = "the fallback " + strings.Join(a.argv, " ") + ": " + rep.Message
	}
	r.sayIdleAndMalformed()
}

// logEnd is the run's last log line: how it ended, and its exit code.
func (r *run) logEnd() {
	r.log.Info().Int("exit_code", r.rep.Exit).Str("reason", string(r.rep.Reason)).Msg(r.rep.Message)
}

// sayIdleAndMalformed tells, once at the end, what a person would
// otherwise never notice: rules whose metric never appeared (a rule on
// "los" does nothing, silently), and marker lines that could not be read.
func (r *run) sayIdleAndMalformed() {
	seen := slices.Collect(maps.Keys(r.rep.Markers))
	for name := range r.rep.Peaks {
		seen = append(seen, name)
	}
	slices.Sort(seen) // the nearest of equals is the same every time
	for _, m := range r.engine.Idle() {
		reason := policies.IdleReason(m, seen)
		r.rep.IdleRules = append(r.rep.IdleRules, reason)
		ev := r.log.Info()
		if strings.Contains(reason, "not a name prism-run knows") || strings.Contains(reason, "a typo?") {
			ev = r.log.Warn()
		}
		ev.Str("rule", m.Name).Msg(reason)
	}
	if n := r.rep.MalformedMarkers; n > 0 {
		r.log.Info().Int("malformed_markers", n).Msgf("%d marker line(s) could not be read (counted in the report); the first: %s",
			n, r.rep.FirstMalformed)
	}
}

// ownerFile in a run folder names the prism-run that made it (procfs.Owner).
const ownerFile = "owner"

// sweepRunFolders removes the run folders in os.TempDir() that a prism-run
// which is provably gone left behind (SIGKILLed without a watchdog: no
// cgroup), unless they hold checkpoints. A folder whose owner cannot be
// judged from here (another PID namespace, no owner file) is left alone.
func sweepRunFolders(procRoot string, log zerolog.Logger) {
	self, err := procfs.SelfOwner(procRoot)
	if err != nil {
		return
	}
	tmp := os.TempDir()
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), "prism-run-") {
			continue
		}
		dir := filepath.Join(tmp, e.Name())
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue
		}
		owner, _, ok := procfs.ParseOwner(strings.TrimSpace(string(b)))
		if gone, provable := owner.Gone(procRoot, self); !ok || !provable || !gone {
			continue
		}
		if cks, err := os.ReadDir(filepath.Join(dir, "checkpoints")); err == nil && len(cks) > 0 {
			continue // the work of a run that is gone: kept for a resume
		}
		if err := os.RemoveAll(dir); err == nil {
			log.Info().Str("dir", dir).Msg("removed the run folder of a prism-run that is gone")
		}
	}
}
