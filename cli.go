package main

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/prism-run/prism-run/limits"
	"github.com/prism-run/prism-run/policies"
	"github.com/prism-run/prism-run/probes/gpu"
	"github.com/prism-run/prism-run/supervisor"
	"github.com/prism-run/prism-run/telemetry"
)

const usageText = `prism-run [flags] -- COMMAND [ARGS...]
   prism-run check [--mission NAME] FILE...
   prism-run missions [NAME]
   prism-run replay [--mission NAME | --policy FILE] [--format text|json] FILE|-
   prism-run doctor
   prism-run version`

const description = `prism-run starts COMMAND as a child, passes its output through byte for
byte, reads PRISM markers from it, asks it for checkpoints (SIGUSR1) and
stops it when a policy says so, then exits with a code that says why:
the child's own code; 75 stopped by a policy after a confirmed checkpoint
(resumable); 124 stopped by a policy without one; 125 prism-run failed;
126 found but not executable; 127 not found; 128+N killed by signal N.

Policies layer: --mission, then each --policy file in order, then flags;
later wins, and rules merge by name.

Every flag can also be set by the environment variable named in [].

Examples:
   # the PWSA mission: stop the tracker at its first frame over 5 ms
   prism-run --mission pwsa -- ./tracker

   # stop after 2h, asking for a checkpoint first; exit 75 if it was written
   prism-run --timeout 2h -- ./solver --frames 10000

   # checkpoint every 10 minutes, keep checkpoints in ./ck, write a report
   prism-run --checkpoint-every 10m --checkpoint-dir ck --report run.json -- python train.py

   # see what a mission plus your policy resolves to, without running anything
   prism-run --mission llm --policy mine.toml --dry-run

   # inside Slurm: sbatch --signal=B:USR1@300 turns into a checkpoint request
   srun prism-run --mission world-record --checkpoint-dir "$SCRATCH/ck" --resume latest -- ./colorer`

// options are the parsed flags of one run.
type options struct {
	timeout, killAfter, checkpointEvery, checkpointTimeout time.Duration
	checkpointDir, runID, markerPrefix, report, resume     string
	mission                                                string
	policies                                               []string
	seed                                                   uint64
	seedSet, hideMarkers, strict, dryRun, foreground       bool
	log                                                    logOptions

	// Confinement flags; rlimits as strings, read like the policy's [limits].
	rlimits              map[string]string
	noNewPrivs, cleanEnv bool
	isolateNet           bool
	gpus                 string
	sampleInterval       time.Duration
	env                  []string
	user                 string
}

// rlimitFlags are the rlimit flags and the [limits] keys they set.
var rlimitFlags = []struct{ flag, key, usage string }{
	{"as", "as", "address-space limit of the child, `SIZE` such as 16GiB (RLIMIT_AS)"},
	{"nofile", "nofile", "open files the child may have, `N` (RLIMIT_NOFILE)"},
	{"nproc", "nproc", "processes the child's user may have, `N` (RLIMIT_NPROC)"},
	{"core", "core", "core dump size, `SIZE`; 0 = none (RLIMIT_CORE)"},
	{"cpu-time", "cpu_time", "CPU time of each process, `DUR` such as 2h (RLIMIT_CPU)"},
	{"fsize", "fsize", "largest file the child may write, `SIZE` (RLIMIT_FSIZE)"},
	{"memory", "memory", "hard memory limit of the run's cgroup, `SIZE`: over it the kernel OOM-kills (exit 137, reason oom)"},
	{"memory-high", "memory_high", "memory throttle of the run's cgroup, `SIZE` (v2 memory.high, v1 soft limit)"},
	{"cpus", "cpus", "CPU quota of the run's cgroup in cores, `N` such as 0.5"},
	{"pids", "pids", "most processes and threads in the run's cgroup, `N`"},
}

func newApp(stdout, stderr io.Writer, command []string, res **supervisor.Result, nvml func() gpu.Library) *cli.App {
	var o options
	policyFlags := []cli.Flag{
		&cli.StringFlag{Name: "mission", EnvVars: []string{"PRISM_MISSION"}, Destination: &o.mission,
			Usage: "built-in mission `NAME` (prism-run missions lists them)"},
		&cli.StringSliceFlag{Name: "policy", EnvVars: []string{"PRISM_POLICY"},
			Usage: "policy `FILE` (TOML) layered over the mission; repeat for more"},
	}
	app := &cli.App{
		Name:            "prism-run",
		Usage:           "supervise a long GPU computation: confine, watch, checkpoint, stop",
		UsageText:       usageText,
		Description:     description,
		Version:         version,
		HideVersion:     true,
		Writer:          stdout,
		ErrWriter:       stderr,
		ExitErrHandler:  cliExit,
		HideHelpCommand: true,
		OnUsageError:    usageError,
		Flags: append(append([]cli.Flag{}, policyFlags...),
			&cli.BoolFlag{Name: "strict", EnvVars: []string{"PRISM_STRICT"}, Destination: &o.strict,
				Usage: "refuse to start (exit 125) if a limit or isolation the policy asks for cannot be enforced"},
			&cli.BoolFlag{Name: "no-new-privs", EnvVars: []string{"PRISM_NO_NEW_PRIVS"}, Destination: &o.noNewPrivs,
				Usage: "the child and its descendants can never gain privileges (PR_SET_NO_NEW_PRIVS)"},
			&cli.BoolFlag{Name: "clean-env", EnvVars: []string{"PRISM_CLEAN_ENV"}, Destination: &o.cleanEnv,
				Usage: "give the child only PATH, HOME, LANG, TERM, PRISM_* and what --env names"},
			&cli.BoolFlag{Name: "isolate-net", EnvVars: []string{"PRISM_ISOLATE_NET"}, Destination: &o.isolateNet,
				Usage: "run the child in a new network namespace with loopback only (needs root)"},
			&cli.StringSliceFlag{Name: "env", EnvVars: []string{"PRISM_ENV"},
				Usage: "`K[=V]`: set K for the child, or pass prism-run's K through --clean-env; repeatable"},
			&cli.StringFlag{Name: "user", EnvVars: []string{"PRISM_USER"}, Destination: &o.user,
				Usage: "run the child as `UID[:GID]` or a user name (prism-run must be root)"},
			&cli.StringFlag{Name: "gpus", EnvVars: []string{"PRISM_GPUS"}, Destination: &o.gpus,
				Usage: "`LIST` of GPU indices (0,2) the child may use: sets CUDA_VISIBLE_DEVICES and limits sampling to them; 'none' turns GPU sampling off"},
			&cli.DurationFlag{Name: "sample-interval", EnvVars: []string{"PRISM_SAMPLE_INTERVAL"}, Value: supervisor.DefaultTickInterval, Destination: &o.sampleInterval,
				Usage: "how often the probes sample, `DUR` (at least 10ms)"},
			&cli.BoolFlag{Name: "dry-run", EnvVars: []string{"PRISM_DRY_RUN"}, Destination: &o.dryRun,
				Usage: "print the resolved policy and what would be enforced, then exit without starting anything"},
			&cli.DurationFlag{Name: "timeout", EnvVars: []string{"PRISM_TIMEOUT"}, Destination: &o.timeout,
				Usage: "ask for a checkpoint after `DUR`, then stop the child (exit 75 if the checkpoint was acknowledged, else 124)"},
			&cli.DurationFlag{Name: "kill-after", EnvVars: []string{"PRISM_KILL_AFTER"}, Value: supervisor.DefaultKillAfter, Destination: &o.killAfter,
				Usage: "send SIGKILL `DUR` after SIGTERM if the child is still running"},
			&cli.DurationFlag{Name: "checkpoint-every", EnvVars: []string{"PRISM_CHECKPOINT_EVERY"}, Destination: &o.checkpointEvery,
				Usage: "ask the child for a checkpoint (SIGUSR1) every `DUR`"},
			&cli.DurationFlag{Name: "checkpoint-timeout", EnvVars: []string{"PRISM_CHECKPOINT_TIMEOUT"}, Value: supervisor.DefaultCheckpointTimeout, Destination: &o.checkpointTimeout,
				Usage: "how long a checkpoint request waits `DUR` for the child's checkpoint marker"},
			&cli.StringFlag{Name: "checkpoint-dir", EnvVars: []string{"PRISM_CHECKPOINT_DIR"}, Destination: &o.checkpointDir,
				Usage: "`DIR` the child writes checkpoints to (default: a per-run folder under $TMPDIR, kept if it holds any)"},
			&cli.StringFlag{Name: "resume", EnvVars: []string{"PRISM_RESUME"}, Destination: &o.resume,
				Usage: "checkpoint `FILE` the child resumes from (PRISM_RESUME); 'latest' = the newest in --checkpoint-dir, if any"},
			&cli.StringFlag{Name: "run-id", EnvVars: []string{"PRISM_RUN_ID"}, Destination: &o.runID,
				Usage: "`ID` of this run (default: time and random)"},
			&cli.Uint64Flag{Name: "seed", EnvVars: []string{"PRISM_SEED"}, Destination: &o.seed,
				Usage: "`N` given to the child as PRISM_SEED and recorded in the report (default: random)"},
			&cli.StringFlag{Name: "marker-prefix", EnvVars: []string{"PRISM_MARKER_PREFIX"}, Value: "PRISM", Destination: &o.markerPrefix,
				Usage: "`WORD` that starts a marker line"},
			&cli.BoolFlag{Name: "hide-markers", EnvVars: []string{"PRISM_HIDE_MARKERS"}, Destination: &o.hideMarkers,
				Usage: "drop marker lines from the child's output"},
			&cli.BoolFlag{Name: "foreground", EnvVars: []string{"PRISM_FOREGROUND"}, Destination: &o.foreground,
				Usage: "give the child the terminal (interactive programs: a REPL, pdb, a prompt); Ctrl-C and Ctrl-Z then go to the child's group, and Ctrl-Z suspends prism-run with it"},
			&cli.StringFlag{Name: "report", EnvVars: []string{"PRISM_REPORT"}, Destination: &o.report,
				Usage: "write a JSON run report to `FILE` on every exit"},
			&cli.StringFlag{Name: "log-format", EnvVars: []string{"PRISM_LOG_FORMAT"}, Value: "auto", Destination: &o.log.format,
				Usage: "`FORMAT` of prism-run's own log: auto (console on a terminal, else json) | console | json"},
			&cli.StringFlag{Name: "log-level", EnvVars: []string{"PRISM_LOG_LEVEL"}, Value: "info", Destination: &o.log.level,
				Usage: "`LEVEL`: debug | info | warn | error"},
			&cli.StringFlag{Name: "log-file", EnvVars: []string{"PRISM_LOG_FILE"}, Destination: &o.log.file,
				Usage: "write prism-run's own log to `FILE` (appended) instead of stderr"},
		),
		Commands: []*cli.Command{
			{
				Name:  "version",
				Usage: "print the version",
				Action: func(*cli.Context) error {
					fmt.Fprintf(stdout, "prism-run %s (commit %s, built %s, %s %s/%s)\n", version, commit, date,
						runtime.Version(), runtime.GOOS, runtime.GOARCH)
					return nil
				},
			},
			checkCommand(stdout),
			missionsCommand(stdout),
			replayCommand(stdout),
			doctorCommand(stdout, nvml),
		},
		Action: func(c *cli.Context) error {
			o.seedSet = c.IsSet("seed")
			o.policies = c.StringSlice("policy")
			o.env = c.StringSlice("env")
			o.rlimits = map[string]string{}
			for _, f := range rlimitFlags {
				if c.IsSet(f.flag) {
					o.rlimits[f.key] = c.String(f.flag)
				}
			}
			cmd := command
			if cmd == nil {
				cmd = c.Args().Slice()
			}
			return supervise(c, o, cmd, stdout, stderr, res, nvml)
		},
	}
	for _, f := range rlimitFlags {
		app.Flags = append(app.Flags, &cli.StringFlag{Name: f.flag, EnvVars: []string{"PRISM_" + strings.ToUpper(strings.ReplaceAll(f.flag, "-", "_"))}, Usage: f.usage})
	}
	return app
}

func usageError(_ *cli.Context, err error, _ bool) error {
	return fmt.Errorf("%w: %v (see prism-run --help)", errUsage, err)
}

func supervise(c *cli.Context, o options, command []string, stdout, stderr io.Writer, resOut **supervisor.Result, nvml func() gpu.Library) error {
	if len(command) == 0 && !o.dryRun {
		return fmt.Errorf("%w: no command to run (prism-run [flags] -- COMMAND [ARGS...])", errUsage)
	}
	shared := newSharedStderr(stderr)
	log, closeLog, err := newLogger(o.log, shared.Log())
	if err != nil {
		return err
	}
	defer closeLog()
	if o.runID == "" {
		o.runID = newRunID(time.Now())
	}
	if !o.seedSet {
		o.seed = randomSeed()
	}
	rep := &runReport{Version: version, Command: command, Mission: o.mission, Policies: o.policies, Seed: o.seed, Attempts: 1}
	fail := func(err error) error {
		// Bad input still gets its report, and the same exit code.
		r := &supervisor.Result{RunID: o.runID, Start: time.Now(), End: time.Now(), Exit: supervisor.ExitInternal,
			Reason: supervisor.ReasonError, Message: err.Error()}
		*resOut = r
		rep.Result = r
		writeReport(log, o.report, rep)
		return err
	}
	pol, err := resolvePolicy(c, o)
	if err != nil {
		return fail(err)
	}
	gaps := enforcementGaps(pol.Policy, os.Geteuid())
	if o.dryRun {
		return dryRun(stdout, o, pol, gaps, command)
	}
	if pol.Strict && len(gaps) > 0 {
		return fail(fmt.Errorf("%w: cannot enforce %s", errStrict, joinGaps(gaps)))
	}
	for _, g := range gaps {
		log.Warn().Str("setting", g.setting).Msg("not enforced: " + g.why)
	}

	rl, err := rlimitsOf(pol.Policy.Limits)
	if err != nil {
		return fail(err)
	}
	uid, gid, err := lookupUser(o.user)
	if err != nil {
		return fail(err)
	}
	gpus, gpuEnv, err := parseGPUs(o.gpus)
	if err != nil {
		return fail(err)
	}
	var gpuProbe *gpu.Background
	if gpus == nil || len(gpus) > 0 {
		gpuProbe, err = startGPU(log, nvml, gpus, pol.Strict && needsGPU(pol.Policy))
		if err != nil {
			return fail(err)
		}
		defer gpuProbe.Close()
	}
	cg, cgSpec, cgErr := runCgroup(log, pol.Policy.Limits, o.runID)
	if cgErr != nil && cgSpec != (limits.CgroupSpec{}) {
		// Limits were asked for and cannot be had: strict refuses, else
		// one warning and the run goes on unconfined.
		g := []gap{{"limits.memory/memory_high/cpus/pids", cgErr.Error()}}
		if pol.Strict {
			return fail(fmt.Errorf("%w: cannot enforce %s", errStrict, joinGaps(g)))
		}
		log.Warn().Err(cgErr).Msg("not enforced: cgroup limits (memory, memory_high, cpus, pids)")
	}
	if cg != nil {
		// Before supervisor.Run makes prism-run a subreaper (see
		// StartWatchdog).
		wd, err := limits.StartWatchdog("/proc/self/exe", cg, stderr)
		if err != nil {
			log.Warn().Err(err).Msg("no watchdog: if prism-run is killed, what its child started lives on until the next prism-run starts")
		}
		defer wd.Done()
	}
	var killLog supervisor.KillLog
	if cg != nil {
		if kl, err := limits.OpenKernelLog("/dev/kmsg"); err != nil {
			log.Debug().Err(err).Msg("OOM victims will be counted, not named")
		} else {
			defer kl.Close()
			killLog = kl
		}
	}

	// Catch the signals to forward before the child exists.
	sigs := make(chan os.Signal, 16)
	supervisor.NotifySignals(sigs)
	defer signal.Stop(sigs)

	res, err := supervisor.Run(c.Context, supervisor.Config{
		Command:           command,
		Stdin:             os.Stdin,
		Stdout:            stdout,
		Stderr:            shared.Child(),
		RunID:             o.runID,
		Mission:           o.mission,
		Seed:              o.seed,
		CheckpointDir:     o.checkpointDir,
		Resume:            o.resume,
		KillAfter:         pol.KillAfter,
		CheckpointTimeout: pol.CheckpointTimeout,
		TickInterval:      pol.SampleInterval,
		MarkerPrefix:      pol.MarkerPrefix,
		Patterns:          pol.Patterns,
		CheckpointSignal:  unix.SignalNum(pol.CheckpointSignal),
		DegradeSignal:     unix.SignalNum(pol.DegradeSignal),
		HideMarkers:       o.hideMarkers,
		Foreground:        o.foreground,
		Rules:             pol.Rules,
		Signals:           sigs,
		Log:               log,
		Rlimits:           rl,
		NoNewPrivs:        isSet(pol.Policy.Isolation.NoNewPrivs),
		CleanEnv:          isSet(pol.Policy.Isolation.CleanEnv),
		IsolateNet:        isSet(pol.Policy.Isolation.IsolateNet) && os.Geteuid() == 0, // else a gap, warned above
		KeepEnv:           append(o.env, gpuEnv...),
		Samplers:          samplers(cg, gpuProbe),
		Watchers:          watchers(gpuProbe),
		UID:               uid,
		GID:               gid,
		Cgroup:            cg,
		MemoryLimit:       cgSpec.Memory,
		KillLog:           killLog,
	})
	*resOut = res
	rep.Result = res
	writeReport(log, o.report, rep)
	if err != nil {
		log.Error().Msg(err.Error())
		return fmt.Errorf("%w: %w", errReported, err)
	}
	return nil
}

// resolvePolicy layers the mission, the policy files and the flags.
func resolvePolicy(c *cli.Context, o options) (*policies.Resolved, error) {
	layers, err := loadLayers(o.mission, o.policies)
	if err != nil {
		return nil, err
	}
	flags := &policies.Policy{}
	if o.timeout != 0 {
		if o.timeout < 0 {
			return nil, fmt.Errorf("%w: --timeout must be positive", errUsage)
		}
		// The seed's world-record deadline: save a checkpoint, then abort.
		name, kind, sev, act, after := "timeout", "deadline", "high", "checkpoint-stop", policies.Duration(o.timeout)
		flags.Rules = append(flags.Rules, policies.RuleSpec{Name: &name, Kind: &kind, Severity: &sev, Action: &act, After: &after})
	}
	setDur := func(flag string, v time.Duration, dst **policies.Duration) error {
		if !c.IsSet(flag) {
			return nil
		}
		if v <= 0 && flag != "kill-after" || v < 0 {
			return fmt.Errorf("%w: --%s must be positive", errUsage, flag)
		}
		d := policies.Duration(v)
		*dst = &d
		return nil
	}
	for _, f := range []struct {
		name string
		v    time.Duration
		dst  **policies.Duration
	}{
		{"checkpoint-every", o.checkpointEvery, &flags.Actions.CheckpointEvery},
		{"kill-after", o.killAfter, &flags.Actions.KillAfter},
		{"checkpoint-timeout", o.checkpointTimeout, &flags.Actions.CheckpointTimeout},
	} {
		if err := setDur(f.name, f.v, f.dst); err != nil {
			return nil, err
		}
	}
	if c.IsSet("marker-prefix") {
		flags.Markers.Prefix = &o.markerPrefix
	}
	if c.IsSet("sample-interval") {
		d := policies.Duration(o.sampleInterval)
		flags.Sampling.Interval = &d
	}
	if err := rlimitLayer(o.rlimits, &flags.Limits); err != nil {
		return nil, err
	}
	if o.noNewPrivs {
		flags.Isolation.NoNewPrivs = &o.noNewPrivs
	}
	if o.cleanEnv {
		flags.Isolation.CleanEnv = &o.cleanEnv
	}
	if o.isolateNet {
		flags.Isolation.IsolateNet = &o.isolateNet
	}
	if c.IsSet("strict") {
		flags.Strict = &o.strict
	}
	return policies.Resolve(policies.Merge(append(layers, flags)...))
}

// resolveLayers resolves a mission and policy files, without flags (check,
// replay).
func resolveLayers(mission string, files []string) (*policies.Resolved, error) {
	layers, err := loadLayers(mission, files)
	if err != nil {
		return nil, err
	}
	return policies.Resolve(policies.Merge(layers...))
}

func loadLayers(mission string, files []string) ([]*policies.Policy, error) {
	var layers []*policies.Policy
	if mission != "" {
		p, err := policies.LoadMission(mission)
		if err != nil {
			return nil, fmt.Errorf("%w: --mission: %w", errUsage, err)
		}
		layers = append(layers, p)
	}
	for _, f := range files {
		p, err := policies.LoadFile(f)
		if err != nil {
			return nil, err
		}
		layers = append(layers, p)
	}
	return layers, nil
}

// gap is a setting the policy asks for that this build cannot enforce.
type gap struct{ setting, why string }

// enforcementGaps lists the settings of a policy that cannot be enforced
// for this user (cgroup limits are checked when the cgroup is made).
// Strict mode refuses to run with any.
func enforcementGaps(p *policies.Policy, euid int) []gap {
	if isSet(p.Isolation.IsolateNet) && euid != 0 {
		return []gap{{"isolation.isolate_net", "a network namespace needs root (CAP_SYS_ADMIN)"}}
	}
	return nil
}

func isSet(b *bool) bool { return b != nil && *b }

func joinGaps(gaps []gap) string {
	s := ""
	for i, g := range gaps {
		if i > 0 {
			s += ", "
		}
		s += g.setting
	}
	return s + " (" + gaps[0].why + ")"
}

// runReport is the JSON run report: the supervisor's Result plus what only
// the command line knows.
type runReport struct {
	Version  string   `json:"prism_run_version"`
	Command  []string `json:"command"`
	Mission  string   `json:"mission,omitempty"`
	Policies []string `json:"policies,omitempty"`
	Seed     uint64   `json:"seed"`
	Attempts int      `json:"attempts"`
	*supervisor.Result
}

func writeReport(log zerologger, path string, rep *runReport) {
	if path == "" {
		return
	}
	if err := telemetry.WriteJSONAtomic(path, rep); err != nil {
		log.Error().Err(err).Msg("cannot write the run report")
	}
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
