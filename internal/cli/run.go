package cli

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"time"
	"unicode"

	"github.com/google/shlex"
	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/prism-run/prism-run/internal/logging"
	"github.com/prism-run/prism-run/internal/plan"
	"github.com/prism-run/prism-run/policies"
	"github.com/prism-run/prism-run/supervisor"
	"github.com/prism-run/prism-run/telemetry"
)

// outputsFlush bounds how long the end of a run waits for the
// violations log and the recording to write what is queued.
const outputsFlush = 2 * time.Second

// maxRunID bounds --run-id: it goes into the run folder's and the
// cgroup's names, with room to spare below NAME_MAX (255).
const maxRunID = 128

// runner is one `prism-run [flags] -- COMMAND`: flags -> policy -> plan
// -> supervisor.Run, and the report written on every exit path.
type runner struct {
	o       options
	command []string
	stdio   IO
	build   Build
	deps    Deps
	log     zerolog.Logger
	setup   *plan.Setup // what Prepare made (nil before)
	dropEnv []string    // prism-run's own settings: never the child's

	timeline    *telemetry.Timeline   // --report-html's charts (nil: none yet)
	slurm       *telemetry.SlurmFacts // the Slurm job prism-run runs in (nil: none), read once
	onUSR1      policies.Action       // --on-usr1, resolved (checkOutputs)
	onTERM      policies.Action       // --on-term, resolved (checkOutputs)
	hookArgv    []string              // --on-violation, split
	hookTimeout time.Duration         // --on-violation-timeout
}

// run does the run (or the dry run) and returns its report: nil for a dry
// run or a failure before the log exists, whose exit code comes from err.
func (r *runner) run(c *cli.Context) (*telemetry.Report, error) {
	o := &r.o
	r.defaults()
	if len(r.command) == 0 && !o.dryRun {
		return r.fail(fmt.Errorf("%w: no command to run (prism-run [flags] -- COMMAND [ARGS...])", errUsage), nil)
	}
	shared := logging.NewSharedStderr(r.stdio.Stderr)
	log, closeLog, err := logging.New(o.log, shared.Log())
	if err != nil {
		r.log = zerolog.Nop()
		return r.fail(err, nil)
	}
	defer closeLog()
	r.log = log
	if len(o.runID) > maxRunID || strings.ContainsFunc(o.runID, unicode.IsControl) {
		return r.fail(fmt.Errorf("%w: --run-id: at most %d characters, none of them control characters (it names the run's folder and cgroup)", errUsage, maxRunID), nil)
	}
	// A report that cannot be written is known now, not after a 23-hour
	// run.
	if err := telemetry.CheckWritable(o.report); err != nil {
		return nil, fmt.Errorf("%w: --report %s: %v", errUsage, o.report, err)
	}
	if err := r.checkOutputs(); err != nil {
		return r.fail(err, nil)
	}
	pol, err := resolvePolicy(c, *o)
	if err != nil {
		return r.fail(err, nil)
	}
	host := plan.ReadHost()
	p, err := plan.New(pol, plan.Request{User: o.user, GPUs: o.gpus, Env: o.env, Unbuffered: o.unbuffered,
		CheckpointDir: o.checkpointDir, StateDir: o.stateDir, Resume: o.resume}, host)
	if err != nil {
		return r.fail(err, nil)
	}
	if len(r.command) > 0 {
		if err := supervisor.CheckCommand(r.command[0]); err != nil {
			return r.fail(err, p)
		}
	}
	if err := r.onViolation(); err != nil {
		return r.fail(err, p)
	}
	if fb := pol.Recovery.Fallback; len(fb) > 0 {
		// A failover that would find no program is known now, not when
		// everything else has failed.
		if err := supervisor.CheckCommand(fb[0]); err != nil {
			why := "not found"
			if errors.Is(err, supervisor.ErrCannotRun) {
				why = "cannot be run"
			}
			return r.fail(fmt.Errorf("%w: [recovery] fallback %q: %s (as the child's command is looked up: prism-run's PATH)", supervisor.ErrConfig, fb[0], why), p)
		}
	}
	if o.dryRun {
		// What a run finds as it starts NVML.
		if err := p.ProbeGPU(r.deps.NVML); err != nil {
			return r.fail(err, nil)
		}
		if err := p.Describe(r.stdio.Stdout, r.layers(), r.command); err != nil {
			return nil, err
		}
		// The plan is shown; the exit says what a run would do.
		return nil, p.Refusal()
	}
	setup, err := p.Prepare(log, o.runID, plan.Deps{NVML: r.deps.NVML, Stderr: r.stdio.Stderr, Host: host})
	if err != nil {
		return r.fail(err, p)
	}
	defer setup.Close()
	r.setup = setup
	return r.supervise(c, p, setup, shared)
}

// defaults fills in the run id and the seed when not given, so that every
// report, a refused run's included, names them; and reads the Slurm job
// once (the report, the metric labels and --on-usr1's default use it).
func (r *runner) defaults() {
	r.slurm = telemetry.ReadSlurm(os.Getenv)
	if r.o.runID == "" {
		r.o.runID = newRunID(time.Now())
	}
	if !r.o.seedSet {
		r.o.seed = randomSeed()
	}
}

// supervise hands the plan to the supervisor and writes the report.
func (r *runner) supervise(c *cli.Context, p *plan.Plan, setup *plan.Setup, shared *logging.SharedStderr) (*telemetry.Report, error) {
	o := &r.o
	// Catch the signals to forward before the child exists.
	sigs := make(chan os.Signal, 16)
	supervisor.NotifySignals(sigs)
	defer signal.Stop(sigs)

	cfg := p.Config(setup)
	cfg.Command, cfg.Stdin, cfg.Stdout, cfg.Stderr = r.command, r.stdio.Stdin, r.stdio.Stdout, shared.Child()
	cfg.RunID, cfg.Mission, cfg.Seed, cfg.SeedSet = o.runID, o.mission, o.seed, o.seedSet
	cfg.CheckpointDir, cfg.StateDir, cfg.Resume, cfg.VerifyRepro = o.checkpointDir, o.stateDir, o.resume, o.verifyRepro
	cfg.HideMarkers, cfg.Foreground, cfg.PreserveStatus = o.hideMarkers, o.foreground, o.preserveStatus
	cfg.Notify, cfg.OuterNotifySocket = o.notify, os.Getenv(supervisor.EnvNotifySocket)
	// An outer prism-run gave this one its control file: the socket is its.
	cfg.OuterIsPrismRun = os.Getenv(supervisor.EnvControl) != ""
	cfg.PTY = o.pty
	cfg.OnUSR1, cfg.OnTERM = r.onUSR1, r.onTERM
	cfg.Signals, cfg.Log, cfg.DropEnv = sigs, r.log, r.dropEnv
	cfg.OnViolation, cfg.OnViolationTimeout = r.hookArgv, r.hookTimeout
	outs, err := r.openOutputs(&cfg)
	if err != nil {
		return r.fail(err, p)
	}
	stopStatus := r.startStatus(&cfg, shared)
	rep, err := supervisor.Run(c.Context, cfg)
	stopStatus()
	outs.close(rep, r.log)
	r.writeReport(rep, p)
	if err != nil {
		r.log.Error().Msg(err.Error())
		return rep, fmt.Errorf("%w: %w", errReported, err)
	}
	return rep, nil
}

// onViolation reads --on-violation (split into words as a shell would,
// with google/shlex: quotes and backslashes, no expansion, no shell run)
// and its timeout, and finds the program now, not at the first violation.
func (r *runner) onViolation() error {
	o := &r.o
	if o.onViolation == "" {
		return nil
	}
	argv, err := shlex.Split(o.onViolation)
	if err != nil || len(argv) == 0 {
		why := "no program"
		if err != nil {
			why = err.Error()
		}
		return fmt.Errorf("%w: --on-violation %q: want PROGRAM [ARGS...] (%s)", errUsage, o.onViolation, why)
	}
	if err := supervisor.CheckCommand(argv[0]); err != nil {
		return fmt.Errorf("%w: --on-violation %q: %s not found or not runnable", supervisor.ErrConfig, o.onViolation, argv[0])
	}
	r.hookArgv = argv
	if o.onViolationTimeout != "" {
		d, err := policies.ParseDuration(o.onViolationTimeout)
		if err != nil || d <= 0 {
			return fmt.Errorf("%w: --on-violation-timeout %q: want a positive duration", errUsage, o.onViolationTimeout)
		}
		r.hookTimeout = d
	}
	return nil
}

// statusEvery is how often the live status line is redrawn (at most 4
// times a second).
const statusEvery = 250 * time.Millisecond

// startStatus shows the live status line while the run lasts, when
// stderr is a terminal and --no-status is not given; the child's stdout,
// when it is that terminal too, passes through the same erase-and-redraw.
// It returns what takes the line away.
func (r *runner) startStatus(cfg *supervisor.Config, shared *logging.SharedStderr) func() {
	if r.o.noStatus || !shared.Terminal() {
		return func() {}
	}
	clk := r.deps.clock()
	st := telemetry.NewStatus(clk.Now())
	cfg.Sinks = append(cfg.Sinks, st)
	if f, ok := r.stdio.Stdout.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
		cfg.Stdout = shared.Stdout(cfg.Stdout)
	}
	width := func() int {
		if f, ok := r.stdio.Stderr.(*os.File); ok {
			if ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ); err == nil {
				return int(ws.Col)
			}
		}
		return 0
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := clk.NewTicker(statusEvery)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case now := <-t.C():
				shared.SetStatus(st.Line(now, width()))
			}
		}
	}()
	return func() {
		close(stop)
		<-done
		shared.SetStatus("")
	}
}

// outputs are the run's streams to files: the violations log and the
// recording. Neither may slow the run: each has a bounded queue, and
// what it drops is counted in the report.
type outputs struct {
	violations *telemetry.ViolationLog
	record     *telemetry.Recording
	metrics    *telemetry.Metrics
	alerts     *telemetry.Alerter
	textfile   string
	stopServe  func()
	stopText   chan struct{}
	textDone   chan struct{}
}

// openOutputs opens what the flags ask for and hands it to cfg.
func (r *runner) openOutputs(cfg *supervisor.Config) (*outputs, error) {
	o, outs := &r.o, &outputs{}
	var err error
	if o.violations != "" {
		if outs.violations, err = telemetry.OpenViolationLog(o.violations); err != nil {
			return nil, fmt.Errorf("%w: --violations: %v", errUsage, err)
		}
		cfg.Sinks = append(cfg.Sinks, outs.violations)
	}
	if o.record != "" {
		prefix := cfg.MarkerPrefix
		if prefix == "" {
			prefix = "PRISM"
		}
		if outs.record, err = telemetry.OpenRecording(o.record, prefix, r.deps.clock().Now()); err != nil {
			outs.close(nil, r.log)
			return nil, fmt.Errorf("%w: --record: %v", errUsage, err)
		}
		cfg.Sinks = append(cfg.Sinks, outs.record)
	}
	if o.reportHTML != "" {
		r.timeline = telemetry.NewTimeline(r.deps.clock().Now())
		cfg.Sinks = append(cfg.Sinks, r.timeline)
	}
	if len(o.alertWebhooks) > 0 {
		if err := r.openAlerts(cfg, outs); err != nil {
			outs.close(nil, r.log)
			return nil, err
		}
	}
	if o.metricsListen != "" || o.metricsTextfile != "" {
		if err := r.openMetrics(cfg, outs); err != nil {
			outs.close(nil, r.log)
			return nil, err
		}
	}
	return outs, nil
}

// checkOutputs refuses, before anything starts, what the output flags
// could not do: a file that cannot be written, a bad URL, severity or
// label; each in one line (125). A flag whose feature is off is still
// checked: a typo must not wait for the day it is turned on.
func (r *runner) checkOutputs() error {
	o := &r.o
	for _, f := range []struct{ flag, path string }{{"violations", o.violations}, {"record", o.record}} {
		if err := telemetry.CheckAppendable(f.path); err != nil {
			return fmt.Errorf("%w: --%s %s: %v", errUsage, f.flag, f.path, err)
		}
	}
	for _, f := range []struct{ flag, path string }{{"metrics-textfile", o.metricsTextfile}, {"report-html", o.reportHTML}, {"junit", o.junit}} {
		if err := telemetry.CheckWritable(f.path); err != nil {
			return fmt.Errorf("%w: --%s %s: %v", errUsage, f.flag, f.path, err)
		}
	}
	if o.pty && o.foreground {
		return fmt.Errorf("%w: --pty and --foreground: the child gets a terminal of its own with --pty (prism-run's is forwarded to it); choose one", errUsage)
	}
	var err error
	if r.onUSR1, r.onTERM, err = signalActions(*o, r.slurm != nil); err != nil {
		return err
	}
	if o.terminationLogSet {
		if err := telemetry.CheckAppendable(o.terminationLog); err != nil {
			return fmt.Errorf("%w: --termination-log %s: %v", errUsage, o.terminationLog, err)
		}
	}
	if o.githubSummary {
		if path := os.Getenv("GITHUB_STEP_SUMMARY"); path == "" {
			r.log.Warn().Msg("--github-summary: GITHUB_STEP_SUMMARY is not set (not a GitHub Actions step?): no summary will be written")
		} else if err := telemetry.CheckAppendable(path); err != nil {
			return fmt.Errorf("%w: --github-summary: $GITHUB_STEP_SUMMARY %s: %v", errUsage, path, err)
		}
	}
	if _, err := policies.ParseSeverity(strings.ToLower(o.alertSeverity)); err != nil {
		return fmt.Errorf("%w: --alert-severity %q: want low | medium | high | critical", errUsage, o.alertSeverity)
	}
	for _, u := range o.alertWebhooks {
		if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" || strings.ContainsAny(u, " \t\n") {
			return fmt.Errorf("%w: --alert-webhook %q: want an http:// or https:// URL", errUsage, u)
		}
	}
	for _, l := range o.labels {
		if _, _, err := telemetry.ParseLabel(l); err != nil {
			return fmt.Errorf("%w: --label %v", errUsage, err)
		}
	}
	if len(o.labels) > 0 && o.metricsListen == "" && o.metricsTextfile == "" {
		r.log.Warn().Msg("--label labels metrics, and none are on: add --metrics-listen or --metrics-textfile")
	}
	return nil
}

// openAlerts starts the webhook sender (--alert-webhook); checkOutputs
// has read its URLs and severity.
func (r *runner) openAlerts(cfg *supervisor.Config, outs *outputs) error {
	o := &r.o
	min, err := policies.ParseSeverity(strings.ToLower(o.alertSeverity))
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	outs.alerts = telemetry.NewAlerter(telemetry.AlertOptions{URLs: o.alertWebhooks, Min: min, Host: host})
	cfg.Sinks = append(cfg.Sinks, outs.alerts)
	return nil
}

// openMetrics makes the run's metrics and serves them (--metrics-listen,
// listening now: a port in use is known before the child starts) and
// writes them (--metrics-textfile, every sampling interval, at least 1 s).
func (r *runner) openMetrics(cfg *supervisor.Config, outs *outputs) error {
	o := &r.o
	labels := map[string]string{}
	if h, err := os.Hostname(); err == nil {
		labels["host"] = h
	}
	for k, v := range r.slurm.Labels() {
		labels[k] = v
	}
	for _, l := range o.labels {
		k, v, err := telemetry.ParseLabel(l)
		if err != nil {
			return fmt.Errorf("%w: --label %v", errUsage, err)
		}
		labels[k] = v
	}
	outs.metrics = telemetry.NewMetrics(telemetry.MetricsInfo{Labels: labels, Mission: o.mission, Version: r.build.Version})
	cfg.Sinks = append(cfg.Sinks, outs.metrics)
	if o.metricsListen != "" {
		addr, err := telemetry.ListenAddr(o.metricsListen)
		if err != nil {
			return fmt.Errorf("%w: --metrics-listen %s: %v", errUsage, o.metricsListen, err)
		}
		bound, stop, err := outs.metrics.Serve(addr)
		if err != nil {
			return fmt.Errorf("%w: --metrics-listen %s: %v", supervisor.ErrSetup, o.metricsListen, err)
		}
		outs.stopServe = stop
		r.log.Info().Str("url", "http://"+bound+"/metrics").Msg("serving metrics")
	}
	if o.metricsTextfile != "" {
		outs.textfile = o.metricsTextfile
		if err := outs.metrics.WriteTextfile(outs.textfile); err != nil {
			return fmt.Errorf("%w: --metrics-textfile: %v", errUsage, err)
		}
		every := max(cfg.TickInterval, time.Second)
		outs.stopText, outs.textDone = make(chan struct{}), make(chan struct{})
		go func() {
			defer close(outs.textDone)
			t := r.deps.clock().NewTicker(every)
			defer t.Stop()
			for {
				select {
				case <-outs.stopText:
					return
				case <-t.C():
					if err := outs.metrics.WriteTextfile(outs.textfile); err != nil {
						r.log.Warn().Err(err).Msg("cannot write the metrics textfile")
					}
				}
			}
		}()
	}
	return nil
}

// close gives what is still queued a bounded moment (the report and the
// exit must not wait on a stuck disk), and counts what was dropped in
// rep (nil: a run that never started).
func (outs *outputs) close(rep *telemetry.Report, log zerolog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), outputsFlush)
	defer cancel()
	if outs.stopText != nil {
		close(outs.stopText)
		<-outs.textDone
	}
	if outs.textfile != "" {
		// At exit, with the child's end in it: short CI jobs are read from
		// this last one.
		if err := outs.metrics.WriteTextfile(outs.textfile); err != nil {
			log.Error().Err(err).Msg("cannot write the metrics textfile")
		}
	}
	if outs.stopServe != nil {
		outs.stopServe()
	}
	if a := outs.alerts; a != nil {
		a.Close(ctx) // the last alerts go out, within the bound
		if rep != nil {
			rep.Alerts = &telemetry.AlertCounts{Sent: a.Sent(), Failed: a.Failed(), Dropped: a.Dropped()}
		}
		if n := a.Failed() + a.Dropped(); n > 0 {
			log.Warn().Int64("failed", a.Failed()).Int64("dropped", a.Dropped()).Msg("alerts not delivered")
		}
	}
	if v := outs.violations; v != nil {
		if err := v.Close(ctx); err != nil {
			log.Error().Err(err).Msg("the violations log is incomplete")
		}
		if rep != nil {
			rep.ViolationsDropped = v.Dropped()
		}
		if n := v.Dropped(); n > 0 {
			log.Warn().Int64("dropped", n).Msg("violations not written: the log could not keep up (they are in the report's decisions)")
		}
	}
	if rc := outs.record; rc != nil {
		if rep != nil && !rep.End.IsZero() {
			rc.Ended(rep.End)
		}
		if err := rc.Close(ctx); err != nil {
			log.Error().Err(err).Msg("the recording is incomplete")
		}
		if rep != nil {
			rep.RecordingDropped = rc.Dropped()
		}
		if n := rc.Dropped(); n > 0 {
			log.Warn().Int64("dropped", n).Msg("observations not recorded: the recording could not keep up")
		}
	}
}

// fail ends a run that failed before its child: bad input still gets its
// report, with the exit code the error means.
func (r *runner) fail(err error, p *plan.Plan) (*telemetry.Report, error) {
	now := time.Now()
	rep := telemetry.NewReport(r.o.runID, now)
	rep.End, rep.Message = now, err.Error()
	rep.Exit = supervisor.ExitCode(supervisor.Failed(err))
	rep.Command, rep.Mission, rep.Seed = r.command, r.o.mission, r.o.seed
	r.writeReport(rep, p)
	return rep, err
}

// writeReport adds what only the command line knows and writes the
// report, if one was asked for: the plan's items when a child ran under
// it, and what could not be enforced.
func (r *runner) writeReport(rep *telemetry.Report, p *plan.Plan) {
	rep.Version, rep.Policies = r.build.Version, r.o.policies
	rep.Slurm = r.slurm
	if !rep.End.IsZero() {
		rep.DurationSeconds = rep.End.Sub(rep.Start).Seconds()
	}
	if p != nil {
		host, _ := os.Hostname()
		rep.Host = &telemetry.HostFacts{Name: host, CgroupMode: p.CgroupMode.String(), NVML: r.nvmlFact(p), GPUs: p.GPUs}
	}
	if p != nil {
		if rep.PID != 0 {
			rep.Enforced = p.Enforced()
		}
		for _, g := range append(p.Gaps, r.setup.LateGaps()...) {
			rep.NotEnforced = append(rep.NotEnforced, telemetry.Gap{Setting: g.Setting, Why: g.Why})
		}
	}
	if err := rep.Write(r.o.report); err != nil {
		r.log.Error().Err(err).Msg("cannot write the run report")
	}
	if r.o.reportHTML != "" {
		if err := telemetry.WriteHTML(r.o.reportHTML, rep, r.timeline); err != nil {
			r.log.Error().Err(err).Msg("cannot write the HTML report")
		}
	}
	r.writeEnd(rep, p)
}

// writeEnd writes the run's end where schedulers and CI systems look for
// it: the termination message (Kubernetes), the step summary (GitHub
// Actions) and JUnit XML (any CI). Each failure is logged, never fatal:
// the report is already written.
func (r *runner) writeEnd(rep *telemetry.Report, p *plan.Plan) {
	o := &r.o
	if err := telemetry.WriteTerminationLog(o.terminationLog, telemetry.EndLine(rep), !o.terminationLogSet); err != nil {
		r.log.Error().Err(err).Msg("cannot write the termination message")
	}
	var rules []telemetry.RuleInfo
	if p != nil && p.Policy != nil {
		for _, rl := range p.Policy.Rules {
			m := rl.Meta()
			rules = append(rules, telemetry.RuleInfo{Name: m.Name, Kind: m.Kind, Metric: m.Metric, Severity: m.Severity.String()})
		}
	}
	if path := os.Getenv("GITHUB_STEP_SUMMARY"); o.githubSummary && path != "" {
		if err := telemetry.AppendGitHubSummary(path, rep, rules); err != nil {
			r.log.Error().Err(err).Msg("cannot write the GitHub step summary")
		}
	}
	if o.junit != "" {
		if err := telemetry.WriteJUnit(o.junit, rep, rules); err != nil {
			r.log.Error().Err(err).Msg("cannot write the JUnit XML")
		}
	}
}

// nvmlFact says whether the run sampled GPUs through NVML, and if not why.
func (r *runner) nvmlFact(p *plan.Plan) string {
	// NVML starts in the background: a failure shows as a late gap.
	for _, g := range append(p.Gaps, r.setup.LateGaps()...) {
		if strings.Contains(g.Why, "NVML") {
			return "unavailable: " + g.Why
		}
	}
	if r.setup != nil && r.setup.GPU != nil {
		switch done, err := r.setup.GPU.Ready(); {
		case err != nil:
			return "unavailable: " + err.Error()
		case done:
			return "used"
		default:
			return "not ready (its start had not finished)"
		}
	}
	if !p.NeedsGPU {
		return "not needed"
	}
	return "unavailable"
}

// layers names the policy layers in order, for --dry-run.
func (r *runner) layers() []string {
	var out []string
	if r.o.mission != "" {
		out = append(out, "mission "+r.o.mission)
	}
	for _, p := range r.o.policies {
		out = append(out, "policy "+p)
	}
	return append(out, "flags")
}

func versionCommand(stdout io.Writer, build Build) *cli.Command {
	return &cli.Command{
		Name:   "version",
		Usage:  "print the version",
		Action: func(*cli.Context) error { return printVersion(stdout, build) },
	}
}

func printVersion(stdout io.Writer, build Build) error {
	_, err := fmt.Fprintf(stdout, "prism-run %s (commit %s, built %s, %s %s/%s)\n", build.Version, build.Commit, build.Date,
		runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return err
}

func newRunID(now time.Time) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return now.UTC().Format("20060102T150405") + "-" + hex.EncodeToString(b[:])
}

func randomSeed() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	// Below 2^53, so the seed survives any JSON reader's float64.
	return binary.LittleEndian.Uint64(b[:]) >> 11
}

// signalActions are what SIGUSR1 and SIGTERM sent to prism-run do, or
// a usage error naming the flag. Inside a Slurm job SIGUSR1 is a
// checkpoint-stop unless --on-usr1 says otherwise: there it comes from
// sbatch --signal=B:USR1@T, the warning before the time limit, and a job
// that checkpointed and went on would be killed at the limit.
func signalActions(o options, inSlurm bool) (usr1, term policies.Action, err error) {
	switch o.onUSR1 {
	case "checkpoint-stop":
		usr1 = policies.ActionCheckpointStop
	case "checkpoint":
		usr1 = policies.ActionCheckpoint
	case "":
		usr1 = policies.ActionCheckpoint
		if inSlurm {
			usr1 = policies.ActionCheckpointStop
		}
	default:
		return "", "", fmt.Errorf("%w: --on-usr1 %q: want checkpoint | checkpoint-stop", errUsage, o.onUSR1)
	}
	switch o.onTERM {
	case "checkpoint-stop":
		term = policies.ActionCheckpointStop
	case "forward":
	default:
		return "", "", fmt.Errorf("%w: --on-term %q: want forward | checkpoint-stop", errUsage, o.onTERM)
	}
	return usr1, term, nil
}
