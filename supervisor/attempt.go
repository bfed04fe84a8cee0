package supervisor

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/prism-run/prism-run/internal/procfs"
	"github.com/prism-run/prism-run/limits"
	"github.com/prism-run/prism-run/markers"
	"github.com/prism-run/prism-run/policies"
	"github.com/prism-run/prism-run/telemetry"
)

// attempt is one child of a run: its process, its output pumps, its
// terminal, and its stop/checkpoint machine. The run's event loop
// (supervise) is the attempt's: it ends when the child and everything it
// started are gone.
type attempt struct {
	r *run
	attemptSpec
	n       int // its index in the job, 0 for the first (PRISM_RESTART_COUNT)
	idx     int // its entry in run.history
	started time.Time
	cmd     *exec.Cmd
	child   *Child
	pid     int // also the child's process group id (Setpgid)

	outR, errR *os.File
	batches    chan batch
	pumpsDone  chan struct{}
	notify     *notifySocket // the child's NOTIFY_SOCKET (nil: none)
	pty        *ptyTerm      // --pty: the child's stdout (nil: a pipe)
	spipe      chan os.Signal

	exited bool
	status unix.WaitStatus

	stop            *stopMachine
	warnedNoHandler map[syscall.Signal]bool // "not sent" was said at warning level

	cgroupDir *os.File       // v2: the cgroup folder the child is cloned into
	inside    limits.Starter // v1: the cgroup the child is forked inside (nil: the shim joins, or none)

	tty       *terminal // --foreground: the terminal handed to the child's group
	warnedTTY bool      // the "stopped by SIGTTIN" warning was given

	// acked is the newest checkpoint this child acknowledged ("" none).
	acked string
	// results are the values of its result markers (result, result_*),
	// for --verify-repro: the last of each name, as text.
	results map[string]string
}

// attemptSpec is what differs between the attempts of a run.
type attemptSpec struct {
	argv    []string // the command to start (the run's, or the fallback)
	role    string   // "" | "fallback" | "verify" (telemetry.Attempt.Role)
	resume  string   // PRISM_RESUME ("" = start fresh)
	ckDir   string   // PRISM_CHECKPOINT_DIR when not the run's
	backoff time.Duration
}

// batch is what a pump found in one read of the child's output.
type batch struct {
	obs []policies.Observation
	bad []error
	// free takes obs back once handled, for its pump to reuse (nil: the
	// sender keeps none).
	free chan<- []policies.Observation
	// tick: the sampler's tick, which is the loop's too (one timer, not
	// two: on this project's VM each timer wakeup costs a Go process
	// about 0.25 ms of CPU, BENCHMARKS.md).
	tick bool
}

// startAttempt starts the run's next child.
func (r *run) startAttempt(spec attemptSpec) (*attempt, error) {
	a := &attempt{r: r, attemptSpec: spec, n: r.firstN + len(r.history), idx: len(r.history), started: r.cfg.Clock.Now(),
		warnedNoHandler: map[syscall.Signal]bool{}, results: map[string]string{}}
	r.attempts++
	r.rep.Attempts = r.attempts
	att := telemetry.Attempt{N: a.n, RunID: r.cfg.RunID, Role: spec.role, Start: a.started, Resume: spec.resume,
		BackoffSeconds: spec.backoff.Seconds()}
	if spec.role == "fallback" {
		att.Command = spec.argv
	}
	r.history = append(r.history, att)
	a.stop = newStopMachine(r.cfg.Clock, r.cfg.CheckpointTimeout, r.cfg.KillAfter, a, r.log)
	if err := a.start(); err != nil {
		a.closePipes()
		h := &r.history[a.idx]
		code := ExitCode(Failed(err))
		h.End, h.Reason, h.Exit, h.Next = r.cfg.Clock.Now(), telemetry.ReasonError, &code, "could not start: "+err.Error()
		return nil, err
	}
	r.history[a.idx].PID = a.pid
	r.event(telemetry.Event{Kind: telemetry.EventStarted, Time: a.started, Attempt: a.n, Restart: r.attempts > 1})
	return a, nil
}

func (a *attempt) start() error {
	cfg := &a.r.cfg
	if err := becomeSubreaper(); err != nil {
		a.r.log.Warn().Err(err).Msg("cannot become a child subreaper: descendants that detach will escape")
	}
	// SIGPIPE is caught (not ignored) so that a closed stdout makes our
	// write fail with EPIPE instead of killing prism-run (os/signal: "If
	// the program is not calling signal.Notify for SIGPIPE ... a write to
	// a broken pipe on file descriptors 1 or 2 will cause the program to
	// exit"), while the child still starts with SIGPIPE at its default:
	// execve(2) resets caught signals, but would keep an ignored one.
	a.spipe = make(chan os.Signal, 1)
	signal.Notify(a.spipe, unix.SIGPIPE)

	outW, errW, err := a.openPipes()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSetup, err)
	}
	if cfg.Notify {
		if a.notify, err = openNotify(a.r.runDir, cfg.UID, cfg.OuterNotifySocket, cfg.OuterIsPrismRun); err != nil {
			a.r.log.Warn().Err(err).Msg("the child gets no NOTIFY_SOCKET")
		}
	}
	cmd, shimR, err := a.command()
	if err == nil {
		cmd.Dir, cmd.Env = cfg.Dir, a.childEnv()
		cmd.Stdin = cfg.Stdin // nil: /dev/null
		if a.pty != nil && a.pty.stdin {
			cmd.Stdin = a.pty.slave
		} else if a.pty != nil && a.pty.noStdin {
			cmd.Stdin = nil // /dev/null
		}
		cmd.Stdout, cmd.Stderr = outW, errW
		err = a.setProcAttr(cmd)
	}
	if err == nil {
		err = a.spawn(cmd, shimR)
	}
	_ = outW.Close()
	_ = errW.Close()
	if err != nil {
		return err
	}
	if err := a.verifyIsolation(); err != nil {
		return err
	}
	ev := a.r.log.Info().Int("pid", a.pid).Str("run_id", cfg.RunID).Strs("command", a.argv)
	if a.n > 0 {
		ev = ev.Int("restart_count", a.n)
	}
	if a.resume != "" {
		ev = ev.Str("resume", a.resume)
	}
	ev.Msg("child started")
	a.batches = make(chan batch, 64)
	a.pumpsDone = make(chan struct{}, 2)
	go a.pump(a.outR, cfg.Stdout, policies.SourceStdout)
	go a.pump(a.errR, cfg.Stderr, policies.SourceStderr)
	if a.notify != nil {
		go a.notify.read(a.r.parser, cfg.Clock, a.batches, a.r.log)
	}
	if a.pty != nil {
		a.pty.follow()
		if a.pty.stdin {
			if a.r.ptyIn == nil {
				a.r.ptyIn = &ptyInput{}
				a.r.ptyIn.start(cfg.Stdin)
			}
			a.r.ptyIn.set(a.pty.master)
		}
	}
	return nil
}

func (a *attempt) openPipes() (outW, errW *os.File, err error) {
	var outR *os.File
	if a.r.cfg.PTY {
		if a.pty, err = openPTY(a.r.cfg.Stdin, a.r.cfg.Stdout, a.r.cfg.Stderr, a.r.cfg.UID); err != nil {
			return nil, nil, err
		}
		outR, outW = a.pty.master, a.pty.slave
	} else if outR, outW, err = os.Pipe(); err != nil {
		return nil, nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		_ = outR.Close()
		_ = outW.Close()
		return nil, nil, err
	}
	a.outR, a.errR = outR, errR
	widenPipe(outR)
	widenPipe(errR)
	return outW, errW, nil
}

// pipeSize is the child's output pipes' buffer: a reader woken once per
// 64 KiB (the default, pipe(7)) spent half of a plain flood's time in
// wakeups; 1 MiB is the most an unprivileged process may ask
// (/proc/sys/fs/pipe-max-size's default).
const pipeSize = 1 << 20

// widenPipe asks for pipeSize (F_SETPIPE_SZ, Linux >= 2.6.35); refused
// (a lower pipe-max-size, or the user's pipe quota spent), the pipe keeps
// its size.
func widenPipe(f *os.File) {
	if sc, err := f.SyscallConn(); err == nil {
		_ = sc.Control(func(fd uintptr) { _, _ = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, pipeSize) })
	}
}

func (a *attempt) closePipes() {
	signal.Stop(a.spipe)
	if a.pty != nil {
		if a.r.ptyIn != nil {
			a.r.ptyIn.set(nil)
		}
		a.pty.close()
	}
	if a.notify != nil {
		_ = a.notify.close()
	}
	if a.outR != nil {
		_ = a.outR.Close()
		_ = a.errR.Close()
	}
}

// setProcAttr sets how the child is cloned: its own process group,
// Pdeathsig, a network namespace, the terminal, the v2 cgroup.
func (a *attempt) setProcAttr(cmd *exec.Cmd) error {
	cfg := &a.r.cfg
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Its own process group, so that signals reach the whole job and
		// a Ctrl-C at prism-run's terminal reaches it only through us.
		Setpgid: true,
		// If prism-run is SIGKILLed, the kernel kills the child. The
		// signal fires when the forking *thread* exits (prctl(2)); the Go
		// runtime never ends a thread unless a goroutine exits while
		// locked to it, which prism-run never does. execve(2) keeps it
		// (it is cleared only for set-user-ID programs), so it survives
		// the shim.
		Pdeathsig: syscall.SIGKILL,
	}
	if cfg.IsolateNet {
		cmd.SysProcAttr.Cloneflags |= syscall.CLONE_NEWNET
	}
	if a.pty != nil {
		// A session of its own with the pty as its controlling terminal
		// (its stdout, descriptor 1 in the child), as a login shell has:
		// the session's group is the child's pid, as Setpgid would make
		// it (setpgid after setsid would fail: EPERM).
		cmd.SysProcAttr.Setpgid = false
		cmd.SysProcAttr.Setsid, cmd.SysProcAttr.Setctty, cmd.SysProcAttr.Ctty = true, true, 1
	}
	if cfg.Foreground {
		tty, err := foregroundTerminal(cfg.Stdin)
		if err != nil {
			a.r.log.Warn().Err(err).Msg("--foreground: the terminal cannot be handed on; the child runs in a background process group")
		} else {
			// The forked child makes its own group the terminal's
			// foreground (tcsetpgrp on Ctty, a descriptor number in the
			// child: its stdin) before it execs, with signals blocked.
			a.tty = tty
			cmd.SysProcAttr.Foreground, cmd.SysProcAttr.Ctty = true, 0
		}
	}
	if cg := cfg.Cgroup; cg != nil && cg.Mode() == limits.ModeV2 {
		// clone3(CLONE_INTO_CGROUP): the child is in the run's cgroup from
		// its first instruction (Linux >= 5.7; Go's SysProcAttr.UseCgroupFD).
		// The descriptor is only read by the clone, so it is closed once
		// the child exists (spawn).
		dir, err := os.Open(cg.Dir())
		if err != nil {
			return fmt.Errorf("%w: open cgroup: %w", ErrSetup, err)
		}
		cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, int(dir.Fd())
		a.cgroupDir = dir
	}
	return nil
}

// spawn starts cmd through the run's reaper; with the shim, it waits for
// the shim to exec the command or to say why it could not.
func (a *attempt) spawn(cmd *exec.Cmd, shimR *os.File) error {
	var child *Child
	var err error
	if a.inside != nil {
		err = a.inside.StartInside(func() error {
			child, err = a.r.reaper.Start(cmd)
			return err
		})
		switch {
		case err != nil && child != nil:
			// Started, inside; what went wrong after is the cgroup's.
			a.r.log.Error().Err(err).Msg("the child started inside the run's cgroup, but prism-run could not put the cgroup back as it was")
			err = nil
		case errors.Is(err, limits.ErrCgroup):
			return fmt.Errorf("%w: confining the child: %w", ErrSetup, err)
		}
	} else {
		child, err = a.r.reaper.Start(cmd)
	}
	if a.cgroupDir != nil {
		_ = a.cgroupDir.Close()
	}
	if shimR != nil {
		for _, f := range cmd.ExtraFiles {
			_ = f.Close()
		}
		if err == nil {
			// Blocks until the shim has exec'd the command (the pipe
			// closes on execve) or reported why it could not.
			if serr := limits.ReadShimError(shimR); serr != nil {
				child.Wait()
				err = serr
			}
		}
		_ = shimR.Close()
	}
	if err != nil {
		if a.tty != nil && cmd.Process != nil {
			a.tty.reclaim(cmd.Process.Pid) // the shim made it foreground, then failed
		}
		return startError(err)
	}
	a.cmd, a.child, a.pid = cmd, child, child.Pid
	a.r.rep.PID = a.pid
	return nil
}

// command builds the command to start: the command itself, or the shim
// that confines itself and then becomes the command. With the shim it
// returns the read end of the shim's error pipe.
func (a *attempt) command() (*exec.Cmd, *os.File, error) {
	cfg := &a.r.cfg
	spec := &limits.ShimSpec{Rlimits: cfg.Rlimits, NoNewPrivs: cfg.NoNewPrivs, UID: cfg.UID, GID: cfg.GID,
		Groups: cfg.Groups, LoopbackUp: cfg.IsolateNet}
	if cg := cfg.Cgroup; cg != nil && cg.Mode() == limits.ModeV1 {
		// v1 has no CLONE_INTO_CGROUP: the child is forked from a thread
		// that joined the cgroup (limits.Starter), or, when the shim
		// runs anyway or that cannot be, the shim joins before it execs.
		if st, ok := cg.(limits.Starter); ok && st.CanStartInside() {
			a.inside = st
		} else {
			spec.CgroupProcs = cg.ProcsFiles()
		}
	}
	if spec.Needed() && a.inside != nil {
		// One way in is enough: the shim starts inside already.
		a.inside = nil
		spec.CgroupProcs = cfg.Cgroup.ProcsFiles()
	}
	if !spec.Needed() {
		return exec.Command(a.argv[0], a.argv[1:]...), nil, nil
	}
	// Resolve the command as os/exec would (prism-run's PATH), so that
	// "not found" is known before anything starts.
	path, err := exec.LookPath(a.argv[0])
	if err != nil {
		return nil, nil, startError(err)
	}
	spec.Path, spec.Args = path, a.argv
	cmd, err := limits.Command(cfg.Self, spec)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrSetup, err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrSetup, err)
	}
	cmd.ExtraFiles = []*os.File{w}
	return cmd, r, nil
}

// Found reports whether name is a program os/exec would find (prism-run's
// PATH), as the child's start would look it up.
func Found(name string) bool {
	_, err := exec.LookPath(name)
	return err == nil
}

// CheckCommand finds before the start what starting name would fail on,
// as os/exec resolves it (exec.LookPath, prism-run's PATH): not found
// (ErrNotFound, 127), or a file that is not executable (ErrCannotRun,
// 126). A program that becomes runnable later is not the run's concern.
func CheckCommand(name string) error {
	_, err := exec.LookPath(name)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%w: %s: %w", ErrCannotRun, name, err)
	case errors.Is(err, exec.ErrNotFound), errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return fmt.Errorf("%w: %s: %w", ErrCannotRun, name, err)
}

// startError classifies a failure to start the command: not found (127),
// found but not runnable (126), or prism-run's own failure to confine it
// before the exec (125): a cgroup it could not join, an rlimit the kernel
// refused, a user it could not become. The shim says which stage failed.
func startError(err error) error {
	var se *limits.ShimError
	if errors.As(err, &se) && se.Stage != limits.StageExec {
		return fmt.Errorf("%w: confining the child: %w", ErrSetup, err)
	}
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return fmt.Errorf("%w: %w", ErrCannotRun, err)
}

// verifyIsolation checks on the running child, not on what was asked,
// that no_new_privs is set and the environment is the clean one; a child
// that fails the check is killed before it does anything (exit 125).
func (a *attempt) verifyIsolation() error {
	cfg := &a.r.cfg
	fail := func(err error) error {
		_ = unix.Kill(a.pid, unix.SIGKILL)
		a.child.Wait()
		return fmt.Errorf("%w: %w", ErrSetup, err)
	}
	if (cfg.NoNewPrivs || cfg.CleanEnv) && a.r.foreignProc {
		return fail(errors.New("cannot verify the isolation asked for: /proc is another PID namespace's (mount this namespace's: unshare --mount-proc)"))
	}
	if cfg.NoNewPrivs {
		// The shim has exec'd by now (its error pipe closed), so this is
		// the command.
		switch err := verifyNoNewPrivs(cfg.ProcRoot, a.pid); {
		case errors.Is(err, procfs.ErrGone):
			// The reaper took it already: it ran and ended at once.
			a.r.log.Info().Int("pid", a.pid).Msg("no_new_privs not verified: the child exited at once")
		case err != nil:
			return fail(err)
		default:
			a.r.log.Info().Int("pid", a.pid).Msg("verified: no_new_privs is set on the child")
		}
	}
	if cfg.CleanEnv {
		err := verifyEnvSettled(cfg.Clock, cfg.ProcRoot, a.pid, a.cmd.Env)
		switch {
		case errors.Is(err, procfs.ErrGone):
			// The child has already exited: a zombie's environ is gone.
			a.r.log.Info().Int("pid", a.pid).Msg("clean environment not verified: the child exited at once")
		case err != nil:
			return fail(err)
		default:
			a.r.log.Info().Int("pid", a.pid).Int("variables", len(a.cmd.Env)).Msg("verified: the child's environment is the clean one")
		}
	}
	return nil
}

// pump passes one stream of the child through and hands what the markers
// package found to the loop. The bytes go out first: a slow loop can delay
// the next read, never a write already read.
func (a *attempt) pump(r *os.File, out io.Writer, src policies.Source) {
	defer func() { a.pumpsDone <- struct{}{} }()
	st := markers.NewStream(out, a.r.parser, src, a.r.cfg.Clock, a.r.cfg.HideMarkers)
	buf := make([]byte, 256<<10)
	free := make(chan []policies.Observation, 4)
	send := func() {
		if obs, bad := st.Take(); len(obs) > 0 || len(bad) > 0 {
			a.batches <- batch{obs: obs, bad: bad, free: free}
		}
		select {
		case o := <-free:
			st.Reuse(o)
		default:
		}
	}
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if _, werr := st.Write(buf[:n]); werr != nil {
				send()
				// Our output is gone (e.g. `prism-run ... | head`). Close
				// the pipe so the child meets EPIPE/SIGPIPE exactly as it
				// would have without prism-run in between.
				a.r.log.Warn().Err(werr).Str("stream", string(src)).Msg("output closed; closing the child's " + string(src))
				_ = r.Close()
				return
			}
			send()
		}
		if err != nil {
			break
		}
	}
	_ = st.Close()
	send()
}
