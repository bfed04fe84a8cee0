package supervisor

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// becomeSubreaper makes orphans of the child's tree (a daemon that
// double-forked, a setsid'd helper) reparent to prism-run instead of init,
// so that they stay findable and killable (prctl(2),
// PR_SET_CHILD_SUBREAPER, Linux >= 3.4).
func becomeSubreaper() error {
	return unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
}

// reaped is one child that wait4 collected.
type reaped struct {
	pid    int
	status unix.WaitStatus
}

// reapAll collects every child that has exited, without blocking. The
// supervisor owns all of its process's children (the whole point of being
// a subreaper), so it waits for any pid; os/exec's Wait is never used.
func reapAll(untraced bool) []reaped {
	var out []reaped
	flags := unix.WNOHANG
	if untraced {
		flags |= unix.WUNTRACED // a stopped child is reported too, once per stop
	}
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, flags, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || pid <= 0 {
			return out
		}
		out = append(out, reaped{pid, ws})
	}
}

// procEntry is what the supervisor needs of one /proc/PID/stat.
type procEntry struct {
	pid, ppid int
	state     byte
}

// readProcs lists the processes of the proc filesystem at root. A process
// that ends while it is read is skipped.
func readProcs(root string) ([]procEntry, error) {
	dirs, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", root, err)
	}
	out := make([]procEntry, 0, len(dirs))
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || pid <= 0 {
			continue
		}
		b, err := os.ReadFile(filepath.Join(root, d.Name(), "stat"))
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ESRCH) {
			continue
		}
		if err != nil {
			return nil, err
		}
		e, ok := parseStat(b)
		if ok && e.pid == pid {
			out = append(out, e)
		}
	}
	return out, nil
}

// parseStat reads "pid (comm) S ppid ...". comm may hold spaces and
// parentheses, so the state follows the last ')' (proc(5)).
func parseStat(b []byte) (procEntry, bool) {
	open := bytes.IndexByte(b, '(')
	end := bytes.LastIndexByte(b, ')')
	if open < 1 || end < open || end+2 >= len(b) {
		return procEntry{}, false
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b[:open])))
	if err != nil {
		return procEntry{}, false
	}
	rest := bytes.Fields(b[end+1:])
	if len(rest) < 2 || len(rest[0]) != 1 {
		return procEntry{}, false
	}
	ppid, err := strconv.Atoi(string(rest[1]))
	if err != nil {
		return procEntry{}, false
	}
	return procEntry{pid: pid, ppid: ppid, state: rest[0][0]}, true
}

// liveDescendants returns the processes below root that have not exited
// (zombies are dead: they only wait to be reaped).
func liveDescendants(procs []procEntry, root int) []int {
	children := map[int][]procEntry{}
	for _, p := range procs {
		children[p.ppid] = append(children[p.ppid], p)
	}
	var out []int
	seen := map[int]bool{root: true} // a pid read twice mid-change must not loop
	queue := []int{root}
	for len(queue) > 0 {
		next := queue[0]
		queue = queue[1:]
		for _, c := range children[next] {
			if seen[c.pid] {
				continue
			}
			seen[c.pid] = true
			queue = append(queue, c.pid)
			if c.state != 'Z' && c.state != 'X' {
				out = append(out, c.pid)
			}
		}
	}
	return out
}

// signalMasks reads the SigCgt (caught), SigIgn and SigBlk masks of
// /proc/PID/status (proc(5); bit n-1 is signal n). ok is false when they
// cannot be read.
func signalMasks(procRoot string, pid int) (caught, ignored, blocked uint64, ok bool) {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, 0, 0, false
	}
	found := 0
	for _, line := range bytes.Split(b, []byte("\n")) {
		k, v, cut := bytes.Cut(line, []byte(":"))
		if !cut {
			continue
		}
		var dst *uint64
		switch string(k) {
		case "SigCgt":
			dst = &caught
		case "SigIgn":
			dst = &ignored
		case "SigBlk":
			dst = &blocked
		default:
			continue
		}
		mask, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 16, 64)
		if err != nil {
			return 0, 0, 0, false
		}
		*dst = mask
		found++
	}
	return caught, ignored, blocked, found == 3
}

func sigBit(sig unix.Signal) uint64 { return uint64(1) << (uint(sig) - 1) }

// signalSafe reports whether sending sig to pid would not kill it by
// default action: the process catches, ignores or blocks it. A program
// that has not installed its SIGUSR1 handler yet (a Python job still
// importing its libraries) would otherwise die of a checkpoint request. ok
// is false when the masks cannot be read.
func signalSafe(procRoot string, pid int, sig unix.Signal) (safe, ok bool) {
	caught, ignored, blocked, ok := signalMasks(procRoot, pid)
	if !ok {
		return false, false
	}
	return (caught|ignored|blocked)&sigBit(sig) != 0, true
}

// catches reports whether pid has a handler for sig: it will act on it.
func catches(procRoot string, pid int, sig unix.Signal) bool {
	caught, _, _, ok := signalMasks(procRoot, pid)
	return ok && caught&sigBit(sig) != 0
}
