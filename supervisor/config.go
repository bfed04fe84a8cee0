// Package supervisor owns the child's lifecycle: it starts the command in
// its own process group, pumps its output through the markers package,
// runs the one event loop that feeds the policy engine and carries out its
// decisions, forwards signals, kills the whole tree at the end and says why
// the run ended.
package supervisor

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
	"k8s.io/utils/clock"

	"github.com/prism-run/prism-run/internal/procfs"
	"github.com/prism-run/prism-run/limits"
	"github.com/prism-run/prism-run/markers"
	"github.com/prism-run/prism-run/policies"
	"github.com/prism-run/prism-run/telemetry"
)

// Defaults of DESIGN.md.
const (
	DefaultKillAfter         = 10 * time.Second
	DefaultCheckpointTimeout = 60 * time.Second
	DefaultTickInterval      = 100 * time.Millisecond
)

// ResumeLatest as Config.Resume picks the newest checkpoint the child
// acknowledged, from the state folder, or none: the same command line then
// starts fresh the first time and resumes after every requeue.
const ResumeLatest = "latest"

// Config is one supervised run.
type Config struct {
	Command []string // the command and its arguments
	Dir     string   // working directory ("" = prism-run's)
	Env     []string // the child's base environment (nil = prism-run's own)

	Stdin *os.File // nil = /dev/null
	// Foreground hands the terminal on Stdin to the child's process group
	// when prism-run is the terminal's foreground job (interactive
	// programs; Ctrl-C and Ctrl-Z then reach the child's group directly).
	Foreground     bool
	Stdout, Stderr io.Writer // where the child's output passes to

	// OnUSR1 and OnTERM are what a SIGUSR1 / SIGTERM sent to prism-run
	// does: ActionCheckpointStop asks the child for a checkpoint, then
	// stops it (exit 75 once acknowledged); anything else, the default
	// (SIGUSR1 a checkpoint request, SIGTERM forwarded).
	OnUSR1, OnTERM policies.Action
	// PTY makes the child's stdout a pseudo-terminal (ptyTerm), and its
	// stdin too when Stdin is a terminal; not with Foreground.
	PTY bool
	// Notify gives each child an sd_notify socket (NOTIFY_SOCKET, and
	// WATCHDOG_USEC when a heartbeat rule would hear WATCHDOG=1): its
	// datagrams are observations like markers (markers.ParseNotify).
	Notify bool
	// OuterNotifySocket is prism-run's own NOTIFY_SOCKET ("" none): the
	// child's READY=1 and STATUS= are passed on to it, and its marker
	// lines too when OuterIsPrismRun (prism-run runs under another).
	OuterNotifySocket string
	OuterIsPrismRun   bool

	RunID   string
	Mission string
	Seed    uint64
	// SeedSet: Seed was chosen by the user; otherwise a state folder's
	// seed replaces it (a resumed job keeps its seed).
	SeedSet bool
	// VerifyRepro runs the command a second time, from the beginning
	// with the same seed, after a run that exited 0, and compares the
	// result markers (result, result_*): a difference is exit 65.
	VerifyRepro bool

	// Recovery is what follows a child's end: restarts, their budget and
	// backoff, the fallback, checkpoint retention (the zero value: no
	// restart; a rule's recovery action then ends the run).
	Recovery policies.RecoveryPlan
	// StateDir holds the job's state across invocations (acknowledged
	// checkpoints, failures, attempts, seed); "" = StateFolderName in
	// CheckpointDir when one is given, else none.
	StateDir string

	// CheckpointDir is where the child writes checkpoints; "" = a
	// "checkpoints" folder inside a per-run folder under os.TempDir(),
	// removed at the end when the child left nothing in it.
	CheckpointDir string

	// Resume is the checkpoint the child resumes from (PRISM_RESUME): a
	// path, or ResumeLatest for the newest checkpoint acknowledged on the
	// state (never merely the newest file); "" = none.
	Resume string

	KillAfter time.Duration // SIGTERM -> SIGKILL grace; 0 = SIGKILL right after SIGTERM
	// PreserveStatus: after a policy stop, exit with the child's own code
	// instead of 75 or 124 (GNU timeout's --preserve-status).
	PreserveStatus    bool
	CheckpointTimeout time.Duration // how long a checkpoint request waits for its acknowledgement
	TickInterval      time.Duration // how often the clock feeds the engine

	MarkerPrefix string
	HideMarkers  bool
	// Patterns turn the child's own log lines into observations.
	Patterns []*regexp.Regexp

	// The protocol's signals (0 = SIGUSR1 and SIGUSR2).
	CheckpointSignal, DegradeSignal syscall.Signal
	// SendUnhandled sends the protocol's signals to the main child even
	// when /proc shows it neither catches, blocks, ignores nor waits for
	// them (whose default action would kill it).
	SendUnhandled bool

	Rules []policies.Rule
	// Clock gives the time and makes every timer and ticker of the run
	// (nil = the system clock); tests pass a fake one.
	Clock clock.WithTicker

	// Confinement applied to the child before it runs (through the limits
	// package's shim when needed).
	Rlimits    []limits.Rlimit
	NoNewPrivs bool
	UID, GID   *int
	Groups     []int // supplementary groups with GID (limits.ShimSpec)
	// CleanEnv gives the child only PATH, HOME, LANG, TERM, CUDA_VISIBLE_DEVICES, the PRISM_*
	// variables and KeepEnv ("K=V" sets K; "K" passes prism-run's K).
	CleanEnv bool
	KeepEnv  []string
	// DefaultEnv ("K=V") is given to the child when its environment does
	// not set K, or sets it empty (which Python, like most programs,
	// reads as unset) (PYTHONUNBUFFERED=1: a Python child's markers then
	// arrive when printed, not when its buffer fills).
	DefaultEnv []string
	// DropEnv names variables never passed to the child (prism-run's own
	// settings, PRISM_TIMEOUT and the like), clean environment or not.
	DropEnv []string
	// IsolateNet runs the child in a new network namespace with only its
	// loopback interface, up (needs CAP_SYS_ADMIN and CAP_NET_ADMIN).
	IsolateNet bool

	// Cgroup is the run's own cgroup, created by the caller (nil = none:
	// the tree is then tracked through /proc alone). The child is put in
	// it before it runs, its limits hold for every descendant, and it is
	// how the whole tree is killed and how OOM kills are seen.
	Cgroup limits.Cgroup
	// CgroupLimits are the limits the cgroup was made with, for the report
	// and the records.
	CgroupLimits limits.CgroupSpec
	// KillLog names the processes the kernel OOM-killed (limits.KernelLog
	// over /dev/kmsg); nil = the report counts OOM kills without names.
	KillLog KillLog

	// OnViolation is a program run once per violation (argv, no shell),
	// with the violation as JSON on its stdin, for at most
	// OnViolationTimeout (0 = DefaultHookTimeout); nil = none.
	OnViolation        []string
	OnViolationTimeout time.Duration

	// Sinks are told what the run does as it happens: the violations
	// log, the recording, the metrics (telemetry). Each method must
	// return at once: they are called from the event loop.
	Sinks []Sink

	// OnRunFolder, if set, is told the run folder once it exists (the
	// cgroup's watchdog removes it should prism-run be SIGKILLed).
	OnRunFolder func(dir string)

	// Helpers are prism-run's own processes that its subreaper role or
	// PID 1 may adopt (the cgroup's watchdog): never leftovers of the run,
	// never signalled by it. Identities, not pids: a pid can be reused.
	Helpers []procfs.Identity

	// Samplers run on every tick (TickInterval) while the child runs;
	// Watchers report events as they come.
	Samplers []Sampler
	Watchers []Watcher

	// Self is the prism-run executable the shim re-executes
	// ("" = /proc/self/exe).
	Self string

	// Signals delivers the signals sent to prism-run that are to be
	// forwarded or turned into checkpoint requests; the caller owns the
	// signal.Notify (NotifySignals). Nil = none.
	Signals <-chan os.Signal

	Log zerolog.Logger

	// ProcRoot is the proc filesystem (tests point it elsewhere); "" = /proc.
	ProcRoot string
}

func (c *Config) setDefaults() {
	if c.CheckpointTimeout == 0 {
		c.CheckpointTimeout = DefaultCheckpointTimeout
	}
	if c.TickInterval == 0 {
		c.TickInterval = DefaultTickInterval
	}
	if c.CheckpointSignal == 0 {
		c.CheckpointSignal = syscall.SIGUSR1
	}
	if c.DegradeSignal == 0 {
		c.DegradeSignal = syscall.SIGUSR2
	}
	if c.MarkerPrefix == "" {
		c.MarkerPrefix = markers.DefaultPrefix
	}
	if c.Clock == nil {
		c.Clock = clock.RealClock{}
	}
	if c.ProcRoot == "" {
		c.ProcRoot = procfs.Root
	}
	if c.Self == "" {
		c.Self = "/proc/self/exe"
	}
	if c.Stdout == nil {
		c.Stdout = io.Discard
	}
	if c.Stderr == nil {
		c.Stderr = io.Discard
	}
}

func (c *Config) validate() error {
	switch {
	case len(c.Command) == 0 || c.Command[0] == "":
		return fmt.Errorf("%w: no command to run", ErrConfig)
	case c.RunID == "":
		return fmt.Errorf("%w: no run id", ErrConfig)
	case c.KillAfter < 0:
		return fmt.Errorf("%w: kill-after must not be negative", ErrConfig)
	case c.CheckpointTimeout < 0:
		return fmt.Errorf("%w: checkpoint-timeout must not be negative", ErrConfig)
	case c.TickInterval < time.Millisecond:
		return fmt.Errorf("%w: tick interval below 1ms", ErrConfig)
	case c.PTY && c.Foreground:
		return fmt.Errorf("%w: --pty and --foreground: the child gets a terminal of its own with --pty (prism-run's is forwarded to it); choose one", ErrConfig)
	}
	return nil
}

// NotifySignals relays to c the signals Run acts on when they are sent to
// prism-run: SIGINT, SIGTERM, SIGHUP, SIGQUIT and SIGUSR2 are forwarded to
// the child's group, SIGUSR1 is a checkpoint request, SIGTSTP stops the
// job as a whole. Call it before Run, so none is lost while the child
// starts; Notify (unlike Ignore) leaves the child with default
// dispositions after execve.
func NotifySignals(c chan<- os.Signal) {
	signal.Notify(c, unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2, unix.SIGTSTP)
}

// Sink takes what a run does, as it happens, for an output that must
// never slow it (telemetry.Nop gives the methods a sink does not need).
type Sink interface {
	// Observe: an observation of the child's output or of a probe.
	Observe(policies.Observation)
	// Signal: a signal sent to prism-run, at t.
	Signal(t time.Time, name string)
	// Violation: a decision of the rules.
	Violation(telemetry.Violation)
	// Event: a child started or ended, a checkpoint was acknowledged.
	Event(telemetry.Event)
}

// KillLog is where the kernel says which processes it OOM-killed.
type KillLog interface {
	// OOMKills returns the kills logged since the last call, anywhere on
	// the host; the supervisor keeps those in the run's cgroup.
	OOMKills() []limits.OOMKill
}
