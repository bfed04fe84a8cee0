package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/prism-run/prism-run/limits"
	"github.com/prism-run/prism-run/markers"
	"github.com/prism-run/prism-run/policies"
)

// Environment variables of the control protocol (DESIGN.md).
const (
	EnvRunID         = "PRISM_RUN_ID"
	EnvMission       = "PRISM_MISSION"
	EnvControl       = "PRISM_CONTROL"
	EnvCheckpointDir = "PRISM_CHECKPOINT_DIR"
	EnvResume        = "PRISM_RESUME"
	EnvRestartCount  = "PRISM_RESTART_COUNT"
	EnvSeed          = "PRISM_SEED"
)

// Run starts cfg.Command and supervises it until it and every process it
// started have ended. The Result is never nil; it carries the exit code
// prism-run should return, also when err is not nil (125, 126 or 127).
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg.setDefaults()
	res := &Result{
		RunID:       cfg.RunID,
		Start:       cfg.Clock.Now(),
		Exit:        ExitInternal,
		Reason:      ReasonError,
		Markers:     map[string]MarkerStat{},
		Peaks:       map[string]Float{},
		Checkpoints: []Checkpoint{},
		Decisions:   []policies.Decision{},
	}
	s, err := prepare(cfg, res)
	if err != nil {
		res.End, res.Message = cfg.Clock.Now(), err.Error()
		return res, err
	}
	defer s.cleanup()
	if err := s.start(); err != nil {
		res.End, res.Message = cfg.Clock.Now(), err.Error()
		return res, err
	}
	err = s.loop(ctx)
	res.End = cfg.Clock.Now()
	return res, err
}

// session is one run's state, owned by the event loop's goroutine.
type session struct {
	cfg    Config
	res    *Result
	log    zerolog.Logger
	engine *policies.Engine
	parser *markers.Parser

	resume     string // PRISM_RESUME
	runDir     string // created by prepare, removed by cleanup when empty of checkpoints
	ownRunDir  bool
	ownCkptDir bool
	control    *controlFile

	cmd            *exec.Cmd
	pid            int // also the child's process group id (Setpgid)
	outR, errR     *os.File
	batches        chan batch
	pumpsDone      chan struct{}
	sigchld, spipe chan os.Signal

	exited bool
	status unix.WaitStatus

	warnedNoHandler map[syscall.Signal]bool // "not sent" was said at warning level

	tty       *terminal     // --foreground: the terminal handed to the child's group
	warnedTTY bool          // the "stopped by SIGTTIN" warning was given
	paused    time.Duration // time the job spent stopped by job control (see observe)

	cgClosed         bool
	oomBase, oomSeen uint64    // the cgroup's oom_kill count at the start, and last read
	oomLogged        uint64    // the count the last OOM violation record covered
	oomNamed         int       // the victims named in OOM records so far
	oomLoggedAt      time.Time // when that record was made

	pending *checkpointRequest
	ckTimer *time.Timer
	stop    *stopState
	kill    *time.Timer
}

// batch is what a pump found in one read of the child's output.
type batch struct {
	obs []policies.Observation
	bad []error
}

type checkpointRequest struct {
	rule    string
	at      time.Time
	forStop bool
}

// stopState is an ending the loop has decided on.
type stopState struct {
	decision  policies.Decision
	signalled bool // SIGTERM (or SIGKILL) has been sent
	acked     bool // the checkpoint asked for before stopping was acknowledged
	cancelled bool // the caller's context, not a policy
}

func prepare(cfg Config, res *Result) (*session, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	engine, err := policies.NewEngine(cfg.Clock, cfg.Rules)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	parser, err := markers.NewParser(cfg.MarkerPrefix, cfg.Patterns...)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	s := &session{cfg: cfg, res: res, log: cfg.Log, engine: engine, parser: parser, warnedNoHandler: map[syscall.Signal]bool{}}
	res.Start = engine.Start()

	// The run folder holds the control file and, by default, the
	// checkpoints; it is made fresh per run so two runs never share one.
	s.runDir, err = os.MkdirTemp("", "prism-run-"+safeName(cfg.RunID)+"-")
	if err != nil {
		return nil, fmt.Errorf("%w: run folder: %w", ErrSetup, err)
	}
	s.ownRunDir = true
	ck := cfg.CheckpointDir
	if ck == "" {
		ck, s.ownCkptDir = filepath.Join(s.runDir, "checkpoints"), true
	}
	if ck, err = filepath.Abs(ck); err == nil {
		err = os.MkdirAll(ck, 0o700)
	}
	if err != nil {
		s.cleanup()
		return nil, fmt.Errorf("%w: checkpoint folder: %w", ErrSetup, err)
	}
	res.CheckpointDir = ck
	if s.resume, err = resolveResume(cfg.Resume, ck); err != nil {
		s.cleanup()
		return nil, err
	}
	if s.resume != "" {
		s.log.Info().Str("checkpoint", s.resume).Msg("resuming")
	}
	res.ControlFile = filepath.Join(s.runDir, "control")
	if s.control, err = openControl(res.ControlFile); err != nil {
		s.cleanup()
		return nil, err
	}
	return s, nil
}

func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == 0 {
			return '_'
		}
		return r
	}, s)
}

// cleanup removes the run folder unless the child left checkpoints in it.
func (s *session) cleanup() {
	s.stopSignals()
	s.closeCgroup() // when the child never started
	if s.control != nil {
		_ = s.control.close()
	}
	if s.outR != nil {
		_ = s.outR.Close()
		_ = s.errR.Close()
	}
	if !s.ownRunDir {
		return
	}
	if s.ownCkptDir {
		if entries, err := os.ReadDir(s.res.CheckpointDir); err == nil && len(entries) > 0 {
			s.log.Info().Str("dir", s.runDir).Msg("checkpoints kept")
			return
		}
	}
	_ = os.RemoveAll(s.runDir)
	if s.ownCkptDir {
		s.res.CheckpointDir = ""
	}
	s.res.ControlFile = ""
}

func (s *session) childEnv() []string {
	base := s.cfg.Env
	if base == nil {
		base = os.Environ()
	}
	if s.cfg.CleanEnv {
		base = cleanEnv(base, s.cfg.KeepEnv)
	} else {
		base = append(base[:len(base):len(base)], setEnv(s.cfg.KeepEnv)...)
	}
	ours := map[string]string{
		EnvRunID:         s.cfg.RunID,
		EnvControl:       s.res.ControlFile,
		EnvCheckpointDir: s.res.CheckpointDir,
		EnvSeed:          strconv.FormatUint(s.cfg.Seed, 10),
		EnvRestartCount:  "0",
	}
	if s.cfg.Mission != "" {
		ours[EnvMission] = s.cfg.Mission
	}
	if s.resume != "" {
		ours[EnvResume] = s.resume
	}
	env := make([]string, 0, len(base)+len(ours))
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		// A nested prism-run replaces the outer one's protocol variables.
		if _, mine := ours[k]; !mine && k != EnvResume && k != EnvMission {
			env = append(env, kv)
		}
	}
	for _, k := range []string{EnvRunID, EnvMission, EnvControl, EnvCheckpointDir, EnvResume, EnvSeed, EnvRestartCount} {
		if v, ok := ours[k]; ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

func (s *session) start() error {
	if err := becomeSubreaper(); err != nil {
		s.log.Warn().Err(err).Msg("cannot become a child subreaper: descendants that detach will escape")
	}
	// SIGCHLD wakes the loop to reap. SIGPIPE is caught (not ignored) so
	// that a closed stdout makes our write fail with EPIPE instead of
	// killing prism-run (os/signal: "If the program is not calling
	// signal.Notify for SIGPIPE ... a write to a broken pipe on file
	// descriptors 1 or 2 will cause the program to exit"), while the child
	// still starts with SIGPIPE at its default: execve(2) resets caught
	// signals, but would keep an ignored one.
	s.sigchld = make(chan os.Signal, 1)
	signal.Notify(s.sigchld, unix.SIGCHLD)
	s.spipe = make(chan os.Signal, 1)
	signal.Notify(s.spipe, unix.SIGPIPE)

	outR, outW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSetup, err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		_ = outR.Close()
		_ = outW.Close()
		return fmt.Errorf("%w: %w", ErrSetup, err)
	}
	s.outR, s.errR = outR, errR
	if cg := s.cfg.Cgroup; cg != nil {
		s.res.Cgroup = &CgroupReport{Mode: cg.Mode().String(), Path: cg.Path(), MemoryLimit: s.cfg.MemoryLimit}
		// The baseline is read before the child exists: a child that is
		// OOM-killed at once must still count.
		if u, err := cg.Usage(); err == nil {
			s.oomBase, s.oomSeen = u.OOMKills, u.OOMKills
		}
	}
	cmd, shimR, err := s.command()
	if err != nil {
		_ = outW.Close()
		_ = errW.Close()
		s.res.Exit, s.res.Reason = classifyStartError(err)
		return s.startError(err)
	}
	cmd.Dir = s.cfg.Dir
	cmd.Env = s.childEnv()
	cmd.Stdin = s.cfg.Stdin // nil: /dev/null
	cmd.Stdout, cmd.Stderr = outW, errW
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
	if s.cfg.IsolateNet {
		cmd.SysProcAttr.Cloneflags |= syscall.CLONE_NEWNET
	}
	if s.cfg.Foreground {
		tty, terr := foregroundTerminal(s.cfg.Stdin)
		if terr != nil {
			s.log.Warn().Err(terr).Msg("--foreground: the terminal cannot be handed on; the child runs in a background process group")
		} else {
			// The forked child makes its own group the terminal's
			// foreground (tcsetpgrp on Ctty, a descriptor number in the
			// child: its stdin) before it execs, with signals blocked.
			s.tty = tty
			cmd.SysProcAttr.Foreground, cmd.SysProcAttr.Ctty = true, 0
		}
	}
	if cg := s.cfg.Cgroup; cg != nil && cg.Mode() == limits.ModeV2 {
		// clone3(CLONE_INTO_CGROUP): the child is in the run's cgroup from
		// its first instruction (Linux >= 5.7; Go's SysProcAttr.UseCgroupFD).
		dir, derr := os.Open(cg.Dir())
		if derr != nil {
			_ = outW.Close()
			_ = errW.Close()
			s.res.Exit, s.res.Reason = ExitInternal, ReasonError
			return fmt.Errorf("%w: open cgroup: %w", ErrSetup, derr)
		}
		defer dir.Close()
		cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, int(dir.Fd())
	}
	err = cmd.Start()
	_ = outW.Close()
	_ = errW.Close()
	if shimR != nil {
		for _, f := range cmd.ExtraFiles {
			_ = f.Close()
		}
		if err == nil {
			// Blocks until the shim has exec'd the command (the pipe closes)
			// or reported why it could not.
			if serr := limits.ReadShimError(shimR); serr != nil {
				var ws unix.WaitStatus
				_, _ = unix.Wait4(cmd.Process.Pid, &ws, 0, nil)
				err = serr
			}
		}
		_ = shimR.Close()
	}
	if err != nil {
		if s.tty != nil && cmd.Process != nil {
			s.tty.reclaim(cmd.Process.Pid) // the shim made it foreground, then failed
		}
		s.res.Exit, s.res.Reason = classifyStartError(err)
		return s.startError(err)
	}
	s.cmd, s.pid = cmd, cmd.Process.Pid
	s.res.PID = s.pid

	if s.cfg.NoNewPrivs {
		// Verify on the running child, not on what was asked: the shim has
		// exec'd by now (its error pipe closed), so this is the command.
		if err := verifyNoNewPrivs(s.cfg.ProcRoot, s.pid); err != nil {
			_ = unix.Kill(s.pid, unix.SIGKILL)
			var ws unix.WaitStatus
			_, _ = unix.Wait4(s.pid, &ws, 0, nil)
			s.res.Exit, s.res.Reason = ExitInternal, ReasonError
			return fmt.Errorf("%w: %w", ErrSetup, err)
		}
		s.log.Info().Int("pid", s.pid).Msg("verified: no_new_privs is set on the child")
	}
	if s.cfg.CleanEnv {
		if err := verifyEnv(s.cfg.ProcRoot, s.pid, cmd.Env); errors.Is(err, unix.ESRCH) || errors.Is(err, fs.ErrNotExist) {
			// The child has already exited: a zombie's environ is gone.
			s.log.Info().Int("pid", s.pid).Msg("clean environment not verified: the child exited at once")
		} else if err != nil {
			_ = unix.Kill(s.pid, unix.SIGKILL)
			var ws unix.WaitStatus
			_, _ = unix.Wait4(s.pid, &ws, 0, nil)
			s.res.Exit, s.res.Reason = ExitInternal, ReasonError
			return fmt.Errorf("%w: %w", ErrSetup, err)
		} else {
			s.log.Info().Int("pid", s.pid).Int("variables", len(cmd.Env)).Msg("verified: the child's environment is the clean one")
		}
	}
	s.log.Info().Int("pid", s.pid).Str("run_id", s.cfg.RunID).Strs("command", s.cfg.Command).Msg("child started")

	s.batches = make(chan batch, 64)
	s.pumpsDone = make(chan struct{}, 2)
	go s.pump(outR, s.cfg.Stdout, policies.SourceStdout)
	go s.pump(errR, s.cfg.Stderr, policies.SourceStderr)
	return nil
}

// command builds the command to start: the command itself, or the shim
// that confines itself and then becomes the command. With the shim it
// returns the read end of the shim's error pipe.
func (s *session) command() (*exec.Cmd, *os.File, error) {
	spec := &limits.ShimSpec{Rlimits: s.cfg.Rlimits, NoNewPrivs: s.cfg.NoNewPrivs, UID: s.cfg.UID, GID: s.cfg.GID,
		LoopbackUp: s.cfg.IsolateNet}
	if cg := s.cfg.Cgroup; cg != nil && cg.Mode() == limits.ModeV1 {
		// v1 has no CLONE_INTO_CGROUP: the shim joins before it execs.
		spec.CgroupProcs = cg.ProcsFiles()
	}
	if !spec.Needed() {
		return exec.Command(s.cfg.Command[0], s.cfg.Command[1:]...), nil, nil
	}
	// Resolve the command as os/exec would (prism-run's PATH), so that
	// "not found" is known before anything starts.
	path, err := exec.LookPath(s.cfg.Command[0])
	if err != nil {
		return nil, nil, err
	}
	spec.Path, spec.Args = path, s.cfg.Command
	cmd, err := limits.Command(s.cfg.Self, spec)
	if err != nil {
		return nil, nil, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	cmd.ExtraFiles = []*os.File{w}
	return cmd, r, nil
}

func (s *session) startError(err error) error {
	if s.res.Exit == ExitNotFound {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return fmt.Errorf("%w: %w", ErrCannotRun, err)
}

func classifyStartError(err error) (int, Reason) {
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
		return ExitNotFound, ReasonError
	}
	return ExitCannotRun, ReasonError
}

// pump passes one stream of the child through and hands what the markers
// package found to the loop. The bytes go out first: a slow loop can delay
// the next read, never a write already read.
func (s *session) pump(r *os.File, out io.Writer, src policies.Source) {
	defer func() { s.pumpsDone <- struct{}{} }()
	st := markers.NewStream(out, s.parser, src, s.cfg.Clock, s.cfg.HideMarkers)
	buf := make([]byte, 256<<10)
	send := func() {
		if obs, bad := st.Take(); len(obs) > 0 || len(bad) > 0 {
			s.batches <- batch{obs, bad}
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
				s.log.Warn().Err(werr).Str("stream", string(src)).Msg("output closed; closing the child's " + string(src))
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

// resolveResume turns Config.Resume into the path given to the child.
func resolveResume(resume, ckDir string) (string, error) {
	if resume != ResumeLatest {
		if resume == "" {
			return "", nil
		}
		if _, err := os.Stat(resume); err != nil {
			return "", fmt.Errorf("%w: resume: %w", ErrConfig, err)
		}
		return filepath.Abs(resume)
	}
	entries, err := os.ReadDir(ckDir)
	if err != nil {
		return "", fmt.Errorf("%w: resume latest: %w", ErrSetup, err)
	}
	var best string
	var bestTime time.Time
	for _, e := range entries {
		// Dot files are checkpoints still being written (temporary names).
		if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		if best == "" || fi.ModTime().After(bestTime) || (fi.ModTime().Equal(bestTime) && e.Name() > filepath.Base(best)) {
			best, bestTime = filepath.Join(ckDir, e.Name()), fi.ModTime()
		}
	}
	return best, nil
}

// cleanEnv keeps what a program needs to run at all and the protocol's
// variables, plus what keep names (the seed's zero trust: nothing of the
// caller's environment leaks in unasked).
func cleanEnv(base, keep []string) []string {
	allowed := map[string]bool{"PATH": true, "HOME": true, "LANG": true, "TERM": true}
	for _, k := range keep {
		if !strings.Contains(k, "=") {
			allowed[k] = true
		}
	}
	var out []string
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if allowed[k] || strings.HasPrefix(k, "PRISM_") {
			out = append(out, kv)
		}
	}
	return append(out, setEnv(keep)...)
}

// setEnv returns the "K=V" entries of keep. They are appended after the
// base: os/exec keeps the last value of a duplicated key (Cmd.Env), so
// they override.
func setEnv(keep []string) []string {
	var out []string
	for _, kv := range keep {
		if strings.Contains(kv, "=") {
			out = append(out, kv)
		}
	}
	return out
}

// verifyNoNewPrivs reads NoNewPrivs from /proc/PID/status (proc(5)).
func verifyNoNewPrivs(procRoot string, pid int) error {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "status"))
	if err != nil {
		return fmt.Errorf("verify no_new_privs: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && k == "NoNewPrivs" {
			if strings.TrimSpace(v) == "1" {
				return nil
			}
			return fmt.Errorf("verify no_new_privs: the child has NoNewPrivs %s", strings.TrimSpace(v))
		}
	}
	return errors.New("verify no_new_privs: this kernel does not report NoNewPrivs")
}

// verifyEnv checks /proc/PID/environ (the environment the command was
// exec'd with) holds nothing beyond want.
func verifyEnv(procRoot string, pid int, want []string) error {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "environ"))
	if err != nil {
		return fmt.Errorf("verify clean environment: %w", err)
	}
	allowed := map[string]bool{}
	for _, kv := range want {
		allowed[kv] = true
	}
	for _, kv := range strings.Split(strings.TrimRight(string(b), "\x00"), "\x00") {
		if kv != "" && !allowed[kv] {
			k, _, _ := strings.Cut(kv, "=")
			return fmt.Errorf("verify clean environment: the child has %s, which was not given", k)
		}
	}
	return nil
}
