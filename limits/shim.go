// Package limits confines the child: rlimits, cgroups (v2, v1 or none),
// isolation (no_new_privs, a clean environment, another user, a network
// namespace), whole-tree kill and OOM events.
//
// Settings that must take effect before the child runs a single
// instruction of its own, and that os/exec cannot apply (rlimits,
// no_new_privs, joining a v1 cgroup, changing user after that), are applied
// by a shim: prism-run re-executes itself as `prism-run __prism-exec SPEC`,
// the shim applies them to itself, then execve(2)s the command, which
// inherits all of them. Failures before the execve reach prism-run over a
// close-on-exec pipe (how os/exec itself reports a failed exec), so 126
// and 127 keep their meaning.
package limits

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// ShimArg is the first argument that makes prism-run (or a test binary)
// act as the shim. main and the test binaries dispatch on it.
const ShimArg = "__prism-exec"

// shimErrFD is the descriptor of the error pipe in the shim (ExtraFiles[0]).
const shimErrFD = 3

// Rlimit is one resource limit for the child.
type Rlimit struct {
	Name     string `json:"name"` // "nofile", "as", ... (see RlimitResources)
	Resource int    `json:"resource"`
	Cur      uint64 `json:"cur"`
	Max      uint64 `json:"max"`
}

// RlimitResources maps prism-run's names to setrlimit(2) resources.
var RlimitResources = map[string]int{
	"as":       unix.RLIMIT_AS,
	"nofile":   unix.RLIMIT_NOFILE,
	"nproc":    unix.RLIMIT_NPROC,
	"core":     unix.RLIMIT_CORE,
	"cpu_time": unix.RLIMIT_CPU,
	"fsize":    unix.RLIMIT_FSIZE,
}

// NewRlimit makes a limit whose soft and hard values are both v.
func NewRlimit(name string, v uint64) (Rlimit, error) {
	res, ok := RlimitResources[name]
	if !ok {
		return Rlimit{}, fmt.Errorf("limits: unknown rlimit %q", name)
	}
	return Rlimit{Name: name, Resource: res, Cur: v, Max: v}, nil
}

// ShimSpec is what the shim does before it becomes the command.
type ShimSpec struct {
	Path        string   `json:"path"` // resolved by prism-run
	Args        []string `json:"args"` // argv, argv[0] included
	Rlimits     []Rlimit `json:"rlimits,omitempty"`
	NoNewPrivs  bool     `json:"no_new_privs,omitempty"`
	CgroupProcs []string `json:"cgroup_procs,omitempty"` // v1: cgroup.procs files to join
	UID         *int     `json:"uid,omitempty"`
	GID         *int     `json:"gid,omitempty"`
	// Groups are the supplementary groups with GID (the user's, from
	// the group database, as su and Docker set them); nil: GID alone.
	Groups []int `json:"groups,omitempty"`
	// LoopbackUp: the shim runs in a new network namespace (the caller
	// sets CLONE_NEWNET) and brings its loopback interface up.
	LoopbackUp bool `json:"loopback_up,omitempty"`
}

// Needed reports whether the shim has anything to do.
func (s *ShimSpec) Needed() bool {
	return len(s.Rlimits) > 0 || s.NoNewPrivs || len(s.CgroupProcs) > 0 || s.UID != nil || s.GID != nil || s.LoopbackUp
}

// StageExec is the stage of a ShimError from the execve itself: the
// command's failure (not found, not executable). Every other stage is the
// confinement's, prism-run's own.
const StageExec = "exec"

// ShimError is how the shim reports a failure before the execve.
type ShimError struct {
	Stage string `json:"stage"`
	Errno int    `json:"errno"`
	Msg   string `json:"msg"`
}

// Error says where the shim failed and why: "STAGE: MESSAGE".
func (e *ShimError) Error() string { return e.Stage + ": " + e.Msg }

// Unwrap gives the errno, so that errors.Is(err, fs.ErrNotExist) and
// friends classify a failed exec as os/exec's own error would.
func (e *ShimError) Unwrap() error {
	if e.Errno == 0 {
		return nil
	}
	return syscall.Errno(e.Errno)
}

// Command returns the command that runs spec through the shim: self is
// the prism-run executable (/proc/self/exe), and errW must be passed as
// its ExtraFiles[0].
func Command(self string, spec *ShimSpec) (*exec.Cmd, error) {
	b, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, ShimArg, string(b))
	cmd.Args[0] = "prism-run"
	return cmd, nil
}

// ReadShimError reads the error pipe after the shim started: nil when the
// exec succeeded (the pipe closed on execve, nothing written).
func ReadShimError(r *os.File) error {
	var e ShimError
	dec := json.NewDecoder(r)
	if err := dec.Decode(&e); err != nil {
		return nil // EOF: the command is running
	}
	return &e
}

// ShimMain is the shim: it applies the spec to itself and execs the
// command. It returns only on failure, with an exit code.
func ShimMain(args []string) int {
	// Everything below must happen on one OS thread: no_new_privs is a
	// per-thread attribute (prctl(2): "set the calling thread's
	// no_new_privs attribute"), and the execve that follows inherits the
	// calling thread's. Without the lock the goroutine may set it on one
	// thread and exec from another (seen under load: a child without it).
	runtime.LockOSThread()
	errPipe := os.NewFile(shimErrFD, "prism-run-shim-errors")
	fail := func(stage string, err error) int {
		e := ShimError{Stage: stage, Msg: err.Error()}
		var errno syscall.Errno
		if errors.As(err, &errno) {
			e.Errno = int(errno)
		}
		_ = json.NewEncoder(errPipe).Encode(&e)
		// The shim's own status is never prism-run's: prism-run reads the
		// error above and its exit code comes from supervisor.ExitCode.
		// The shell's convention is kept for anyone running the shim by hand.
		if errors.Is(err, syscall.ENOENT) {
			return 127
		}
		return 126
	}
	if len(args) != 1 {
		return fail("shim", errors.New("usage: prism-run __prism-exec SPEC"))
	}
	var spec ShimSpec
	if err := json.Unmarshal([]byte(args[0]), &spec); err != nil {
		return fail("shim", err)
	}
	// The pipe must close when the exec succeeds.
	syscall.CloseOnExec(shimErrFD)
	// v1: join the run's cgroups first, while still privileged; the
	// command then starts inside them (v2 needs none of this: clone3 puts
	// the shim there already, CLONE_INTO_CGROUP).
	pid := []byte(strconv.Itoa(os.Getpid()))
	for _, p := range spec.CgroupProcs {
		if err := os.WriteFile(p, pid, 0); err != nil {
			return fail("cgroup", fmt.Errorf("join %s: %w", p, err))
		}
	}
	if spec.LoopbackUp {
		if err := loopbackUp(); err != nil {
			return fail("isolate_net", fmt.Errorf("bring up lo: %w", err))
		}
	}
	for _, r := range spec.Rlimits {
		// syscall.Setrlimit, not unix's: for RLIMIT_NOFILE the Go runtime
		// would otherwise restore its own saved soft limit on exec
		// (syscall: "the original limit is restored in child processes
		// unless Setrlimit is called").
		if err := syscall.Setrlimit(r.Resource, &syscall.Rlimit{Cur: r.Cur, Max: r.Max}); err != nil {
			return fail("rlimit", fmt.Errorf("%s=%d: %w", r.Name, r.Cur, err))
		}
	}
	if spec.GID != nil {
		if err := syscall.Setgroups(append([]int{*spec.GID}, spec.Groups...)); err != nil {
			return fail("user", fmt.Errorf("setgroups: %w", err))
		}
		if err := syscall.Setgid(*spec.GID); err != nil {
			return fail("user", fmt.Errorf("setgid %d: %w", *spec.GID, err))
		}
	}
	if spec.UID != nil {
		// Go's Setuid changes every thread (since Go 1.16).
		if err := syscall.Setuid(*spec.UID); err != nil {
			return fail("user", fmt.Errorf("setuid %d: %w", *spec.UID, err))
		}
	}
	if spec.NoNewPrivs {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fail("no_new_privs", err)
		}
	}
	err := syscall.Exec(spec.Path, spec.Args, os.Environ())
	return fail(StageExec, fmt.Errorf("%s: %w", spec.Path, err))
}

// loopbackUp sets IFF_UP on "lo" (netdevice(7): SIOCGIFFLAGS, then
// SIOCSIFFLAGS), the one interface a fresh network namespace has, down.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}
