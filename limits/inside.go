package limits

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// Starter is a cgroup that can start a child inside itself without the
// shim (v1; v2 needs neither: clone3's CLONE_INTO_CGROUP).
type Starter interface {
	// CanStartInside reports whether StartInside may be used: not with
	// a CPU quota, which would throttle prism-run's forking thread with
	// the child's work (for seconds at --cpus 0.01).
	CanStartInside() bool
	// StartInside calls start, which must fork the child (os/exec's
	// Start), on an OS thread of this process that has joined the
	// cgroup, and moves that thread back to its own cgroups afterwards.
	StartInside(start func() error) error
}

// ErrStrandedThread is StartInside's error when the forking thread could
// not leave the run's cgroup: the child started (its status is start's),
// and the thread stays parked inside the cgroup, alive, because the
// child's Pdeathsig is tied to it.
var ErrStrandedThread = errors.New("cgroup: the forking thread could not leave the run's cgroup")

// CanStartInside implements Starter.
func (c *v1Cgroup) CanStartInside() bool { return !c.cpuQuota }

// StartInside implements Starter for cgroup v1, where membership is per
// thread: writing a thread id to a controller's "tasks" file moves that
// thread alone (Documentation/admin-guide/cgroup-v1/cgroups.rst, "tasks:
// list of tasks (by PID) attached to that cgroup"), and a new task
// starts in its parent thread's cgroups (cgroup_fork in
// kernel/cgroup/cgroup.c). So the child is inside the run's cgroups from
// its first instruction, as with the shim (ShimSpec.CgroupProcs), without
// a second process start on the child's start path.
//
// The thread is locked to start's goroutine throughout. It is moved back
// before it is unlocked; it never exits, since the child's Pdeathsig fires
// when the thread that forked it exits (prctl(2)). When it cannot leave
// (ErrStrandedThread) it is parked for the life of the process.
func (c *v1Cgroup) StartInside(start func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		err, stranded := c.startOnThread(start)
		if stranded {
			done <- err
			select {} // see ErrStrandedThread
		}
		runtime.UnlockOSThread()
		done <- err
	}()
	return <-done
}

// startOnThread joins, starts and leaves; it runs on a locked thread.
// stranded: the thread is still in (some of) the run's cgroups.
func (c *v1Cgroup) startOnThread(start func() error) (err error, stranded bool) {
	tid := []byte(strconv.Itoa(unix.Gettid()))
	own, err := os.ReadFile("/proc/thread-self/cgroup")
	if err != nil {
		return fmt.Errorf("%w: %w", ErrCgroup, err), false
	}
	ownV1, _ := OwnCgroups(own)
	var joined []string // controllers this thread was moved into
	// The thread is a task of the pids cgroup until it leaves, which is
	// after the child's exec: the limit is one higher meanwhile, so the
	// child's tree can always have its pids.max tasks (else an early fork
	// of the child failed one time in three at --pids 2).
	restorePids := c.widenPids()
	leave := func() error {
		var errs []error
		for _, ctl := range joined {
			m := c.mounts[ctl]
			errs = append(errs, os.WriteFile(filepath.Join(m.Dir(ownV1[ctl]), "tasks"), tid, 0))
		}
		return errors.Join(errs...)
	}
	for _, ctl := range Controllers {
		dir, ok := c.dirs[ctl]
		if !ok {
			continue
		}
		if _, ok := ownV1[ctl]; !ok {
			err = fmt.Errorf("%w: this thread is in no %s cgroup", ErrCgroup, ctl)
			break
		}
		if err = os.WriteFile(filepath.Join(dir, "tasks"), tid, 0); err != nil {
			err = fmt.Errorf("%w: join %s: %w", ErrCgroup, dir, err)
			break
		}
		joined = append(joined, ctl)
	}
	if err == nil {
		err = start()
	}
	if lerr := leave(); lerr != nil {
		return errors.Join(err, fmt.Errorf("%w: %w", ErrStrandedThread, lerr)), true
	}
	if perr := restorePids(); perr != nil {
		// The child runs with one pid more than asked: said, not hidden.
		return errors.Join(err, fmt.Errorf("%w: restore pids.max %d: %w", ErrCgroup, c.pidsMax, perr)), false
	}
	return err, false
}

// widenPids raises pids.max by one for the forking thread, and returns
// what puts it back (a no-op without a pids limit).
func (c *v1Cgroup) widenPids() func() error {
	dir, ok := c.dirs["pids"]
	if !ok || c.pidsMax <= 0 {
		return func() error { return nil }
	}
	file := filepath.Join(dir, "pids.max")
	if err := os.WriteFile(file, []byte(strconv.FormatInt(c.pidsMax+1, 10)), 0); err != nil {
		return func() error { return nil }
	}
	return func() error { return os.WriteFile(file, []byte(strconv.FormatInt(c.pidsMax, 10)), 0) }
}
