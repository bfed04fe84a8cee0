package cli

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/prism-run/prism-run/internal/logging"
	"github.com/prism-run/prism-run/policies"
	"github.com/prism-run/prism-run/supervisor"
	"github.com/prism-run/prism-run/telemetry"
)

const usageText = `prism-run [flags] -- COMMAND [ARGS...]
prism-run check [--mission NAME] FILE...
prism-run missions [NAME]
prism-run replay [--mission NAME | --policy FILE] [--format text|json] FILE|-
prism-run doctor
prism-run version | --version
prism-run help | --help`

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
	checkpointDir, runID, markerPrefix, report, resume string
	mission, stateDir, restart, violations, record     string
	metricsListen, metricsTextfile, alertSeverity      string
	labels, alertWebhooks                              []string
	onViolation, onViolationTimeout, reportHTML        string
	verifyRepro                                        bool
	terminationLog, junit, onUSR1, onTERM              string
	terminationLogSet, githubSummary, notify, pty      bool
	policies                                           []string
	seed                                               uint64
	seedSet, hideMarkers, strict, dryRun, foreground   bool
	preserveStatus, unbuffered, version, noStatus      bool
	log                                                logging.Options

	// Confinement flags; rlimits as strings, read like the policy's [limits].
	rlimits              map[string]string
	noNewPrivs, cleanEnv bool
	isolateNet           bool
	gpus                 string
	env                  []string
	user                 string
}

// rlimitFlags are the rlimit and cgroup flags and the [limits] keys they
// set.
func rlimitFlags() []struct{ flag, key, usage string } {
	return []struct{ flag, key, usage string }{
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
}

func newApp(stdio IO, build Build, deps Deps, command []string, rep **telemetry.Report) *cli.App {
	o := &options{}
	stdout := stdio.Stdout
	flags := append(o.policyFlags(), o.confinementFlags()...)
	flags = append(flags, o.runFlags()...)
	flags = append(flags, o.outputFlags()...)
	flags = append(flags, &cli.BoolFlag{Name: "version", Usage: "print the version", Destination: &o.version})
	showDefaults(flags)
	return &cli.App{
		Name:            "prism-run",
		Usage:           "supervise a long GPU computation: confine, watch, checkpoint, stop",
		UsageText:       usageText,
		Description:     description,
		Version:         build.Version,
		HideVersion:     true,
		Writer:          stdout,
		ErrWriter:       stdio.Stderr,
		ExitErrHandler:  cliExit,
		HideHelpCommand: false, // `prism-run help` is help, as CLI users expect
		OnUsageError:    usageError,
		Flags:           flags,
		Commands: []*cli.Command{
			versionCommand(stdout, build),
			checkCommand(stdout),
			missionsCommand(stdout),
			replayCommand(stdout),
			doctorCommand(stdout, deps),
		},
		Action: func(c *cli.Context) error {
			o.read(c)
			if o.version {
				return printVersion(stdout, build)
			}
			cmd := command
			r := &runner{o: *o, command: cmd, stdio: stdio, build: build, deps: deps, dropEnv: configVars(flags)}
			if cmd != nil && c.Args().Present() {
				// `--unbuffered false -- cmd`, `foo -- cmd`: a word
				// that is neither a flag nor the command was meant as
				// something; running without it would be a guess.
				r.defaults()
				var err error
				*rep, err = r.fail(strayWord(c.Args().First()), nil)
				return err
			}
			if cmd == nil {
				cmd = c.Args().Slice()
				if err := notASubcommand(cmd); err != nil {
					return err
				}
			}
			r.command = cmd
			var err error
			*rep, err = r.run(c)
			return err
		},
	}
}

// strayWord is the error for a word before "--" that is not a flag.
func strayWord(w string) error {
	hint := "the whole command goes after --"
	if _, err := strconv.ParseBool(w); err == nil {
		hint = "a boolean flag takes its value as --flag=" + w
	}
	return fmt.Errorf("%w: %q before \"--\" is not a flag (%s)", errUsage, w, hint)
}

// envVars is the environment variable that sets a flag: PRISM_ and the
// flag's name. The flags whose variable would be one the child is given
// (PRISM_MISSION, PRISM_SEED, PRISM_RUN_ID, PRISM_CHECKPOINT_DIR,
// PRISM_RESUME: the protocol's) have none, so a prism-run started inside
// a supervised child never takes the outer run's as its own settings.
func envVars(flag string) []string {
	name := "PRISM_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
	if slices.Contains(supervisor.ProtocolVars(), name) {
		return nil
	}
	return []string{name}
}

// configVars are the environment variables prism-run reads as its own
// settings: never passed on to the child. PRISM_CPUPROFILE (Main) is one
// too: a prism-run inside the job would write its profile over this one's.
func configVars(flags []cli.Flag) []string {
	out := []string{"PRISM_CPUPROFILE"}
	for _, f := range flags {
		if ev, ok := f.(interface{ GetEnvVars() []string }); ok {
			out = append(out, ev.GetEnvVars()...)
		}
	}
	return out
}

// envList is --env's value: each use appends one K[=V], taken whole.
// urfave's StringSliceFlag would split "X=a,b" at the comma into "X=a"
// and "b"; a GenericFlag's Set is called once per use (and once with the
// whole of PRISM_ENV), so a value keeps its commas.
type envList struct{ list *[]string }

// Set appends one K[=V].
func (e *envList) Set(v string) error {
	*e.list = append(*e.list, v)
	return nil
}

// String is empty: there is no default to show in --help.
func (e *envList) String() string { return "" }

// read takes what the flag destinations cannot hold.
func (o *options) read(c *cli.Context) {
	o.seedSet = c.IsSet("seed")
	o.terminationLogSet = c.IsSet("termination-log")
	o.policies = c.StringSlice("policy")
	o.rlimits = map[string]string{}
	for _, f := range rlimitFlags() {
		if c.IsSet(f.flag) {
			o.rlimits[f.key] = c.String(f.flag)
		}
	}
}

// policyFlags choose the policy: the mission, the files, strict mode,
// and the flags that are shortcuts for policy fields.
func (o *options) policyFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "mission", EnvVars: envVars("mission"), Destination: &o.mission,
			Usage: "built-in mission `NAME` (prism-run missions lists them)"},
		&cli.StringSliceFlag{Name: "policy", EnvVars: envVars("policy"),
			Usage: "policy `FILE` (TOML) layered over the mission; repeat for more"},
		&cli.BoolFlag{Name: "strict", EnvVars: envVars("strict"), Destination: &o.strict,
			Usage: "refuse to start (exit 125) if a limit or isolation the policy asks for cannot be enforced"},
		&cli.BoolFlag{Name: "dry-run", EnvVars: envVars("dry-run"), Destination: &o.dryRun,
			Usage: "print the resolved policy and what would be enforced, then exit without starting anything"},
		&cli.StringFlag{Name: "timeout", EnvVars: envVars("timeout"),
			Usage: "ask for a checkpoint after `DUR` (seconds, or 500ms, 30m, 2h, 1d, 1h30m; 0 = none), then stop the child (exit 75 if the checkpoint was acknowledged, else 124)"},
		&cli.StringFlag{Name: "kill-after", EnvVars: envVars("kill-after"), Value: supervisor.DefaultKillAfter.String(),
			Usage: "send SIGKILL `DUR` after SIGTERM if the child is still running (0 = with SIGTERM)"},
		&cli.StringFlag{Name: "checkpoint-every", EnvVars: envVars("checkpoint-every"),
			Usage: "ask the child for a checkpoint (SIGUSR1) every `DUR`"},
		&cli.StringFlag{Name: "checkpoint-timeout", EnvVars: envVars("checkpoint-timeout"), Value: "60s",
			Usage: "how long a checkpoint request waits `DUR` for the child's checkpoint marker"},
		&cli.StringFlag{Name: "sample-interval", EnvVars: envVars("sample-interval"), Value: supervisor.DefaultTickInterval.String(),
			Usage: "how often the probes sample, `DUR` (at least 10ms)"},
		&cli.StringFlag{Name: "marker-prefix", EnvVars: envVars("marker-prefix"), Value: "PRISM", Destination: &o.markerPrefix,
			Usage: "`WORD` that starts a marker line"},
		&cli.StringFlag{Name: "restart", EnvVars: envVars("restart"), Destination: &o.restart, DefaultText: "never",
			Usage: "`MODE`: start the child again when it ends on its own: never | on-failure (a non-zero exit, a crash, an OOM kill) | always (an exit 0 too), from its newest acknowledged checkpoint, with backoff ([recovery] restart)"},
		&cli.StringFlag{Name: "max-restarts", EnvVars: envVars("max-restarts"), DefaultText: "3",
			Usage: "how many failures the job may restart after, `N` in all, across invocations on one state (preemption-like stops do not count) ([recovery] max_restarts)"},
	}
}

// confinementFlags confine the child: isolation, its user, its GPUs, and
// the rlimit and cgroup limits (rlimitFlags).
func (o *options) confinementFlags() []cli.Flag {
	flags := []cli.Flag{
		&cli.BoolFlag{Name: "no-new-privs", EnvVars: envVars("no-new-privs"), Destination: &o.noNewPrivs,
			Usage: "the child and its descendants can never gain privileges (PR_SET_NO_NEW_PRIVS)"},
		&cli.BoolFlag{Name: "clean-env", EnvVars: envVars("clean-env"), Destination: &o.cleanEnv,
			Usage: "give the child only PATH, HOME, LANG, TERM, CUDA_VISIBLE_DEVICES, PRISM_* and what --env names"},
		&cli.BoolFlag{Name: "isolate-net", EnvVars: envVars("isolate-net"), Destination: &o.isolateNet,
			Usage: "run the child in a new network namespace with loopback only (needs root)"},
		&cli.GenericFlag{Name: "env", EnvVars: envVars("env"), Value: &envList{list: &o.env},
			Usage: "`K[=V]`: set K for the child (V taken whole, commas included), or pass prism-run's K through --clean-env; repeatable"},
		&cli.StringFlag{Name: "user", EnvVars: envVars("user"), Destination: &o.user,
			Usage: "run the child as `UID[:GID]` or a user name (prism-run must be root)"},
		&cli.StringFlag{Name: "gpus", EnvVars: envVars("gpus"), Destination: &o.gpus,
			Usage: "`LIST` of GPU indices (0,2) the child may use: sets CUDA_VISIBLE_DEVICES (never outside an inherited one) and limits sampling to them; 'all' (the default) every GPU; 'none' turns GPU sampling off and leaves CUDA_VISIBLE_DEVICES as it is"},
	}
	for _, f := range rlimitFlags() {
		flags = append(flags, &cli.StringFlag{Name: f.flag, Usage: f.usage, EnvVars: envVars(f.flag)})
	}
	return flags
}

// runFlags name the run and what the child is given.
func (o *options) runFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "checkpoint-dir", EnvVars: envVars("checkpoint-dir"), Destination: &o.checkpointDir,
			DefaultText: "a per-run folder under $TMPDIR, kept if it holds any", Usage: "`DIR` the child writes checkpoints to"},
		&cli.StringFlag{Name: "resume", EnvVars: envVars("resume"), Destination: &o.resume,
			Usage: "checkpoint `PATH` (a file, or a folder: a sharded checkpoint) the child resumes from (PRISM_RESUME); 'latest' = the newest checkpoint the child acknowledged, from the state (none yet: start from the beginning)"},
		&cli.StringFlag{Name: "state-dir", EnvVars: envVars("state-dir"), Destination: &o.stateDir,
			DefaultText: "--checkpoint-dir/.prism-run when --checkpoint-dir is given", Usage: "`DIR` holding the job's state across invocations: acknowledged checkpoints, seed, attempts, failures (one prism-run at a time)"},
		&cli.StringFlag{Name: "run-id", EnvVars: envVars("run-id"), Destination: &o.runID,
			DefaultText: "time and random", Usage: "`ID` of this run"},
		&cli.Uint64Flag{Name: "seed", EnvVars: envVars("seed"), Destination: &o.seed,
			DefaultText: "the state's, else random", Usage: "`N` given to the child as PRISM_SEED, recorded in the report and the state"},
		&cli.BoolFlag{Name: "verify-repro", EnvVars: envVars("verify-repro"), Destination: &o.verifyRepro,
			Usage: "after an exit 0, run the command again from the beginning with the same seed and compare its result markers (PRISM result=...); a difference exits 65"},
		&cli.BoolFlag{Name: "unbuffered", EnvVars: envVars("unbuffered"), Value: true, Destination: &o.unbuffered,
			Usage: "give the child PYTHONUNBUFFERED=1 unless it is set, so a Python program's markers arrive when printed (--unbuffered=false: leave it)"},
		&cli.StringFlag{Name: "on-usr1", EnvVars: envVars("on-usr1"), Destination: &o.onUSR1, DefaultText: "checkpoint; checkpoint-stop inside a Slurm job",
			Usage: "what a SIGUSR1 sent to prism-run does: `checkpoint` (ask the child for one and go on) | checkpoint-stop (ask, then stop it: exit 75 once acknowledged, as sbatch --signal=B:USR1@T wants before a time limit)"},
		&cli.StringFlag{Name: "on-term", EnvVars: envVars("on-term"), Value: "forward", Destination: &o.onTERM,
			Usage: "what a SIGTERM sent to prism-run does: `forward` (to the child's group) | checkpoint-stop (ask the child for a checkpoint first, then stop it: exit 75 once acknowledged; a pod's deletion, a Slurm time limit; a second SIGTERM kills at once)"},
		&cli.BoolFlag{Name: "pty", EnvVars: envVars("pty"), Destination: &o.pty,
			Usage: "give the child a pseudo-terminal as its stdout (and stdin, when prism-run's is a terminal): its C library then line-buffers, so markers arrive when printed; output byte for byte (no \\r\\n) unless prism-run's stdout is a terminal; the window size follows; stderr stays a pipe"},
		&cli.BoolFlag{Name: "notify", EnvVars: envVars("notify"), Value: true, Destination: &o.notify,
			Usage: "give the child an sd_notify socket (NOTIFY_SOCKET): READY=1, STATUS=, WATCHDOG=1 (heartbeat rules) and PRISM_name=value (markers, a checkpoint acknowledgement included) count as its markers; READY and STATUS are passed on to prism-run's own NOTIFY_SOCKET (--notify=false: leave the child's environment alone)"},
		&cli.BoolFlag{Name: "preserve-status", EnvVars: envVars("preserve-status"), Destination: &o.preserveStatus,
			Usage: "after a policy stop, exit with the child's own code instead of 75 or 124 (as GNU timeout's flag)"},
		&cli.BoolFlag{Name: "foreground", EnvVars: envVars("foreground"), Destination: &o.foreground,
			Usage: "give the child the terminal (interactive programs: a REPL, pdb, a prompt); Ctrl-C and Ctrl-Z then go to the child's group, and Ctrl-Z suspends prism-run with it"},
	}
}

// outputFlags say where prism-run's own output goes.
func (o *options) outputFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "hide-markers", EnvVars: envVars("hide-markers"), Destination: &o.hideMarkers,
			Usage: "drop marker lines from the child's output"},
		&cli.StringFlag{Name: "report", EnvVars: envVars("report"), Destination: &o.report,
			Usage: "write a JSON run report to `FILE` on every exit"},
		&cli.StringFlag{Name: "report-html", EnvVars: envVars("report-html"), Destination: &o.reportHTML,
			Usage: "write an HTML report to `FILE` on every exit: one self-contained page, charts over time of memory, GPU and every marker with violations, checkpoints and restarts marked, and the report's facts"},
		&cli.StringFlag{Name: "violations", EnvVars: envVars("violations"), Destination: &o.violations,
			Usage: "append each violation (a rule's decision) to `FILE` as one JSON line, when it happens (critical ones fsync'd)"},
		&cli.StringFlag{Name: "metrics-listen", EnvVars: envVars("metrics-listen"), Destination: &o.metricsListen,
			Usage: "serve Prometheus metrics at http://`ADDR`/metrics: :PORT binds loopback only; another interface only when written out (0.0.0.0:9100)"},
		&cli.StringFlag{Name: "metrics-textfile", EnvVars: envVars("metrics-textfile"), Destination: &o.metricsTextfile,
			Usage: "write the metrics to `FILE` (node_exporter's textfile format, atomically) every sampling interval (at least 1s) and at exit"},
		&cli.GenericFlag{Name: "label", EnvVars: envVars("label"), Value: &envList{list: &o.labels},
			Usage: "`NAME=VALUE` put on every metric (with host, and inside Slurm slurm_job_id, slurm_array_job_id, slurm_array_task_id); repeatable"},
		&cli.GenericFlag{Name: "alert-webhook", EnvVars: envVars("alert-webhook"), Value: &envList{list: &o.alertWebhooks},
			Usage: "POST each violation at or above --alert-severity to `URL` as JSON with a text field (Slack and Mattermost incoming webhooks take it as it is); retried with backoff, never slowing the run; repeatable"},
		&cli.StringFlag{Name: "alert-severity", EnvVars: envVars("alert-severity"), Value: "high", Destination: &o.alertSeverity,
			Usage: "the lowest `SEVERITY` sent to --alert-webhook: low | medium | high | critical"},
		&cli.StringFlag{Name: "on-violation", EnvVars: envVars("on-violation"), Destination: &o.onViolation,
			Usage: "run `'PROGRAM ARGS...'` once per violation with it as JSON on stdin (split into words as a shell would, but no shell runs and nothing is expanded)"},
		&cli.StringFlag{Name: "on-violation-timeout", EnvVars: envVars("on-violation-timeout"), Destination: &o.onViolationTimeout,
			DefaultText: "10s", Usage: "kill --on-violation's program (its process group) after `DUR`"},
		&cli.StringFlag{Name: "record", EnvVars: envVars("record"), Destination: &o.record,
			Usage: "append every observation (markers, probe samples) and signal, with its time, to `FILE` in the format prism-run replay reads"},
		&cli.StringFlag{Name: "termination-log", EnvVars: envVars("termination-log"), Value: telemetry.DefaultTerminationLog, Destination: &o.terminationLog,
			Usage: "write the run's end in one line to `FILE` (Kubernetes' termination message: kubectl describe pod shows it); the default is written only where it exists, a path given is made; \"\" for none"},
		&cli.BoolFlag{Name: "github-summary", EnvVars: envVars("github-summary"), Destination: &o.githubSummary,
			Usage: "append a Markdown summary of the run (its end, violations by rule, peaks, checkpoints, restarts) to the file $GITHUB_STEP_SUMMARY names (GitHub Actions shows it on the job's page)"},
		&cli.StringFlag{Name: "junit", EnvVars: envVars("junit"), Destination: &o.junit,
			Usage: "write JUnit XML to `FILE` at exit: one test case per rule (a violation is a failure, a rule that never saw its metric is skipped) and one for the exit"},
		&cli.BoolFlag{Name: "no-status", EnvVars: envVars("no-status"), Destination: &o.noStatus,
			Usage: "no live status line (shown only when stderr is a terminal)"},
		&cli.StringFlag{Name: "log-format", EnvVars: envVars("log-format"), Value: "console", Destination: &o.log.Format,
			Usage: "`FORMAT` of prism-run's own log: console (lines for people, \"prism-run:\" and a full timestamp first) | json (one object per line)"},
		&cli.StringFlag{Name: "log-level", EnvVars: envVars("log-level"), Value: "info", Destination: &o.log.Level,
			Usage: "`LEVEL`: debug | info | warn | error"},
		&cli.StringFlag{Name: "log-file", EnvVars: envVars("log-file"), Destination: &o.log.File,
			Usage: "write prism-run's own log to `FILE` (appended) instead of stderr"},
	}
}

// resolvePolicy layers the mission, the policy files and the flags.
func resolvePolicy(c *cli.Context, o options) (*policies.Resolved, error) {
	layers, err := loadLayers(o.mission, o.policies)
	if err != nil {
		return nil, err
	}
	flags := &policies.Policy{}
	durs, err := durationFlags(c)
	if err != nil {
		return nil, err
	}
	if t := durs["timeout"]; t != nil && t.D() > 0 { // 0: no timeout, as GNU timeout reads it
		if err := timeoutNameFree(o, layers); err != nil {
			return nil, err
		}
		// The seed's world-record deadline: save a checkpoint, then abort.
		name, kind, sev, act := "timeout", policies.KindDeadline, "high", "checkpoint-stop"
		flags.Rules = append(flags.Rules, policies.RuleSpec{Name: &name, Kind: &kind, Severity: &sev, Action: &act, After: t})
	}
	flags.Actions.CheckpointEvery = durs["checkpoint-every"]
	flags.Actions.KillAfter = durs["kill-after"]
	flags.Actions.CheckpointTimeout = durs["checkpoint-timeout"]
	flags.Sampling.Interval = durs["sample-interval"]
	if c.IsSet("marker-prefix") {
		flags.Markers.Prefix = &o.markerPrefix
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
	if err := recoveryFlags(c, o, &flags.Recovery); err != nil {
		return nil, err
	}
	return policies.ResolveLayers(append(layerNames(o.mission, o.policies), "flags"), append(layers, flags))
}

// durationFlags reads the duration flags that were given, as GNU timeout
// and systemd users type them (policies.ParseDuration). Zero means zero:
// --kill-after 0 is SIGKILL with SIGTERM, --timeout 0 is no timeout; a
// zero that cannot work is refused with the reason.
func durationFlags(c *cli.Context) (map[string]*policies.Duration, error) {
	out := map[string]*policies.Duration{}
	for _, f := range []struct {
		name    string
		zeroWhy string // why 0 is refused ("" = 0 is accepted)
		atLeast time.Duration
	}{
		{"timeout", "", 0},
		{"kill-after", "", 0},
		{"checkpoint-every", "a period of 0 asks for checkpoints without end", 0},
		{"checkpoint-timeout", "a checkpoint request needs time to be answered (to stop without one, use a rule with action = \"stop\")", 0},
		{"sample-interval", "", 10 * time.Millisecond},
	} {
		if !c.IsSet(f.name) {
			continue
		}
		v, err := policies.ParseDuration(c.String(f.name))
		switch {
		case err != nil:
			return nil, fmt.Errorf("%w: --%s: %v", errUsage, f.name, err)
		case v == 0 && f.zeroWhy != "":
			return nil, fmt.Errorf("%w: --%s 0: %s", errUsage, f.name, f.zeroWhy)
		case v < f.atLeast:
			return nil, fmt.Errorf("%w: --%s %s: must be at least %s", errUsage, f.name, c.String(f.name), f.atLeast)
		}
		d := policies.Duration(v)
		out[f.name] = &d
	}
	return out, nil
}

// timeoutNameFree refuses --timeout when a policy layer has its own rule
// named "timeout" of another kind: the flag's deadline rule would merge
// into it field by field, and neither would mean what was written.
func timeoutNameFree(o options, layers []*policies.Policy) error {
	names := append([]string{}, o.policies...)
	if o.mission != "" {
		names = append([]string{"mission " + o.mission}, names...)
	}
	for i, l := range layers {
		for _, r := range l.Rules {
			if r.Name != nil && *r.Name == "timeout" && r.Kind != nil && *r.Kind != policies.KindDeadline {
				return fmt.Errorf("%w: --timeout makes a deadline rule named \"timeout\", and %s has a %s rule of that name: rename yours", errUsage, names[i], *r.Kind)
			}
		}
	}
	return nil
}

// resolveLayers resolves a mission and policy files, without flags (check,
// replay).
func resolveLayers(mission string, files []string) (*policies.Resolved, error) {
	layers, err := loadLayers(mission, files)
	if err != nil {
		return nil, err
	}
	return policies.ResolveLayers(layerNames(mission, files), layers)
}

// layerNames names the layers loadLayers loads, in order.
func layerNames(mission string, files []string) []string {
	var out []string
	if mission != "" {
		out = append(out, "mission "+mission)
	}
	return append(out, files...)
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

// rlimitLayer puts the rlimit and cgroup flags into the flags layer's
// [limits], read as the policy file reads them, so --dry-run shows them
// and they layer.
func rlimitLayer(flags map[string]string, l *policies.Limits) error {
	for key, v := range flags {
		one := &policies.Limits{}
		if err := setLimit(key, v, one); err != nil {
			return err
		}
		// The same bounds as a policy file's, said in the flag's terms.
		var fe *policies.FileError
		if err := one.Check(); errors.As(err, &fe) {
			return fmt.Errorf("%w: --%s %s: %s", errUsage, strings.ReplaceAll(key, "_", "-"), v, fe.Msg)
		}
		if err := setLimit(key, v, l); err != nil {
			return err
		}
	}
	// Bounds between flags (--memory-high above --memory), in flag terms.
	var fe *policies.FileError
	if err := l.Check(); errors.As(err, &fe) {
		flag := func(field string) string {
			return "--" + strings.ReplaceAll(strings.TrimPrefix(field, "limits."), "_", "-")
		}
		msg := regexp.MustCompile(`limits\.[a-z_]+`).ReplaceAllStringFunc(fe.Msg, flag)
		return fmt.Errorf("%w: %s: %s", errUsage, flag(fe.Field), msg)
	}
	return nil
}

func setLimit(key, v string, l *policies.Limits) error {
	switch key {
	case "nofile", "nproc":
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("%w: --%s %q: want a count", errUsage, key, v)
		}
		if key == "nofile" {
			l.Nofile = &n
		} else {
			l.Nproc = &n
		}
	case "pids":
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return fmt.Errorf("%w: --pids %q: want a positive count", errUsage, v)
		}
		l.Pids = &n
	case "cpus":
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || !(f > 0) {
			return fmt.Errorf("%w: --cpus %q: want a positive number of cores", errUsage, v)
		}
		l.CPUs = &f
	case "cpu_time":
		d, err := policies.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("%w: --cpu-time: %v", errUsage, err)
		}
		pd := policies.Duration(d)
		l.CPUTime = &pd
	default: // sizes
		z, err := policies.ParseBytes(v)
		if err != nil {
			return fmt.Errorf("%w: --%s: %v", errUsage, key, err)
		}
		switch key {
		case "memory":
			l.Memory = &z
		case "memory_high":
			l.MemoryHigh = &z
		case "as":
			l.AS = &z
		case "core":
			l.Core = &z
		case "fsize":
			l.Fsize = &z
		}
	}
	return nil
}

// showDefaults makes the help show a switch's default as on or off.
func showDefaults(flags []cli.Flag) {
	for _, f := range flags {
		if b, ok := f.(*cli.BoolFlag); ok && b.DefaultText == "" {
			b.DefaultText = map[bool]string{true: "on", false: "off"}[b.Value]
		}
	}
}

// notASubcommand catches a mistyped subcommand (`prism-run chek p.toml`):
// a first word that no program on PATH has and that is close to a
// subcommand's name gets a suggestion instead of a run of a program that
// does not exist. (After "--" every word is the command's.)
func notASubcommand(cmd []string) error {
	if len(cmd) == 0 || strings.ContainsRune(cmd[0], '/') || supervisor.Found(cmd[0]) {
		return nil
	}
	for _, sub := range []string{"check", "missions", "replay", "doctor", "version", "help"} {
		if policies.EditDistance(cmd[0], sub) <= 2 {
			return fmt.Errorf("%w: %q is neither a subcommand nor a program on PATH; did you mean `prism-run %s`? (to run a program, put it after --)", errUsage, cmd[0], sub)
		}
	}
	return nil
}

// recoveryFlags reads --restart and --max-restarts, shortcuts for
// [recovery] restart and max_restarts (as systemd's Restart= and
// StartLimitBurst= are for a unit).
func recoveryFlags(c *cli.Context, o options, r *policies.Recovery) error {
	if c.IsSet("restart") {
		if !slices.Contains(policies.RestartModes(), o.restart) {
			return fmt.Errorf("%w: --restart (or PRISM_RESTART) %q: want %s", errUsage, o.restart, strings.Join(policies.RestartModes(), " | "))
		}
		r.Restart = &o.restart
	}
	if c.IsSet("max-restarts") {
		n, err := strconv.ParseInt(c.String("max-restarts"), 10, 64)
		if err != nil || n < 0 || n > 1_000_000 {
			return fmt.Errorf("%w: --max-restarts (or PRISM_MAX_RESTARTS) %q: want a whole number from 0 to 1000000", errUsage, c.String("max-restarts"))
		}
		r.MaxRestarts = &n
	}
	return nil
}
