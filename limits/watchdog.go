package limits

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/prism-run/prism-run/internal/procfs"
	"golang.org/x/sys/unix"
)

// WatchArg is the first argument that makes prism-run the watchdog of a
// run's cgroup.
const WatchArg = "__prism-watch"

// Watchdog ends a run's cgroup when prism-run dies before it could: a
// SIGKILLed prism-run takes its direct child with it (Pdeathsig), but not
// the processes that child started, and the cgroup's whole point is that
// nothing escapes. The watchdog is a small process outside the run's
// cgroup, in a session of its own, holding the read end of a pipe whose
// only write end is prism-run's: when prism-run ends a run it writes
// "done" and the watchdog exits; when prism-run dies the kernel closes the
// pipe, the watchdog reads EOF, kills what is left in the cgroup, removes
// it, and removes the run folder (unless it holds checkpoints). Without it the next prism-run to start would (CleanStale).
type Watchdog struct {
	w     *os.File
	id    procfs.Identity
	pidfd int // the watchdog's pidfd (-1: none): Done waits on it
}

// StartWatchdog starts the watchdog of cg and returns without waiting
// for it: the child's start does not wait on a second Go runtime's
// start-up (the watchdog's pipe buffers prism-run's lines until it reads
// them). self is the prism-run executable (/proc/self/exe).
//
// The watchdog is prism-run's own child, in a session of its own (setsid:
// no signal to prism-run's process group or terminal reaches it), and
// never part of the run: its identity (Identity) is known from the start,
// while it is an unreaped child of prism-run and its pid cannot be reused,
// so the run's leftover sweep can leave it out even when prism-run, a
// child subreaper, is its parent. When prism-run dies it is reparented
// (to init or the nearest subreaper) and reads EOF on its pipe.
func StartWatchdog(self string, cg Cgroup, stderr io.Writer) (*Watchdog, error) {
	r, w, err := os.Pipe() // close-on-exec: the run's child never holds w
	if err != nil {
		return nil, fmt.Errorf("watchdog: %w", err)
	}
	defer r.Close()
	dirs := make([]string, 0, len(cg.ProcsFiles()))
	for _, f := range cg.ProcsFiles() {
		dirs = append(dirs, filepath.Dir(f))
	}
	cmd := exec.Command(self, append([]string{WatchArg, "watch"}, dirs...)...)
	cmd.Args[0] = "prism-run"
	cmd.Stdin = r
	if f, ok := stderr.(*os.File); ok {
		// Only a file: for any other writer os/exec would copy through a
		// pipe held by the watchdog for as long as it lives.
		cmd.Stderr = f
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("watchdog: %w", err)
	}
	d := &Watchdog{w: w, pidfd: -1}
	d.id, _ = procfs.IdentityOf(procfs.Root, cmd.Process.Pid)
	if fd, err := unix.PidfdOpen(cmd.Process.Pid, 0); err == nil { // Linux >= 5.3
		d.pidfd = fd
	}
	// Never waited for here: prism-run's reaper (wait4(-1)) or, once
	// prism-run is gone, init collects its status. Release drops the
	// pidfd os/exec holds for it.
	_ = cmd.Process.Release()
	return d, nil
}

// Identity is the watchdog process's identity (zero if unknown): it is
// prism-run's own, never part of the run, whoever adopted it.
func (d *Watchdog) Identity() procfs.Identity {
	if d == nil {
		return procfs.Identity{}
	}
	return d.id
}

// Guard asks the watchdog to remove the run folder dir too, should
// prism-run die, unless dir/checkpoints holds checkpoints (they are the
// work: the next run resumes from them).
func (d *Watchdog) Guard(dir string) {
	if d == nil || d.w == nil || strings.ContainsAny(dir, "\n") {
		return
	}
	_, _ = d.w.WriteString("guard " + dir + "\n")
}

// Done tells the watchdog the run ended as it should: it exits without
// touching anything.
func (d *Watchdog) Done() {
	if d == nil || d.w == nil {
		return
	}
	_, _ = d.w.WriteString("done\n")
	_ = d.w.Close()
	d.w = nil
	if d.pidfd >= 0 {
		// Until it has exited (a pidfd polls readable then, reaped or
		// not; pidfd_open(2)), at most a second: it holds prism-run's
		// stderr, and whoever reads that through a pipe should see its
		// end when prism-run ends.
		fds := []unix.PollFd{{Fd: int32(d.pidfd), Events: unix.POLLIN}}
		for end := time.Now().Add(doneWait); time.Now().Before(end); {
			// EINTR: the Go runtime's own signals (preemption) cut polls short.
			if n, err := unix.Poll(fds, int(time.Until(end)/time.Millisecond)+1); n > 0 || err != unix.EINTR {
				break
			}
		}
		_ = unix.Close(d.pidfd)
		d.pidfd = -1
	}
}

// doneWait bounds how long Done waits for the watchdog to exit.
const doneWait = time.Second

// WatchMain runs the watchdog: "watch DIR..." waits on stdin and cleans
// up if prism-run died. It returns an exit code.
func WatchMain(args []string, stderr io.Writer) int {
	if len(args) < 2 {
		fmt.Fprintln(stderr, "prism-run: watchdog: usage: watch DIR...")
		return 2
	}
	switch args[0] {
	case "watch":
		// Only the pipe ends it: a `pkill prism-run` or a Ctrl-C at the
		// terminal meant for prism-run must not take the watchdog first.
		signal.Ignore(syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT)
		return watch(os.Stdin, args[1:], stderr)
	}
	fmt.Fprintf(stderr, "prism-run: watchdog: unknown step %q\n", args[0])
	return 2
}

// watch reads prism-run's lines on in: "guard DIR" adds a run folder to
// clean, "done" ends the watch with nothing to do (the run ended as it
// should). EOF without "done" means prism-run died: kill and remove what
// is left of the run's cgroup folders (dirs), and remove the guarded run
// folders that hold no checkpoints.
func watch(in io.Reader, dirs []string, stderr io.Writer) int {
	var guarded []string
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		line := sc.Text()
		if line == "done" {
			return 0
		}
		if dir, ok := strings.CutPrefix(line, "guard "); ok {
			guarded = append(guarded, dir)
		}
	}
	var errs []error
	cleaned := false
	for _, dir := range dirs {
		if _, err := os.Stat(dir); err != nil {
			continue // the run removed it before prism-run died
		}
		cleaned = true
		errs = append(errs, killAndRemove(dir))
	}
	for _, dir := range guarded {
		errs = append(errs, removeRunFolder(dir, stderr))
	}
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintf(stderr, "prism-run: watchdog: prism-run died during its run; cleaning up failed: %v\n", err)
		return 1
	}
	if cleaned {
		fmt.Fprintf(stderr, "prism-run: watchdog: prism-run died during its run; killed what was left in its cgroup and removed it (%s)\n", dirs[0])
	} else if len(dirs) > 0 {
		// Another prism-run's start swept it first (its owner is provably
		// gone): the same end, said all the same.
		fmt.Fprintf(stderr, "prism-run: watchdog: prism-run died during its run; its cgroup was already removed (%s)\n", dirs[0])
	}
	return 0
}

// removeRunFolder removes a run folder unless its checkpoint folder holds
// checkpoints, which are kept where they are (and said so).
func removeRunFolder(dir string, stderr io.Writer) error {
	if entries, err := os.ReadDir(filepath.Join(dir, "checkpoints")); err == nil && len(entries) > 0 {
		fmt.Fprintf(stderr, "prism-run: watchdog: prism-run died; its checkpoints are kept in %s\n", dir)
		return nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove run folder: %w", err)
	}
	return nil
}
