// Package procfs reads the few things prism-run needs from the proc file
// system (proc(5)): a process's parent, state and start time
// (/proc/PID/stat), its signal masks and no_new_privs flag
// (/proc/PID/status), and the list of processes. It is the one place
// these files are parsed. The root is a parameter, so tests point it at a
// fake tree in t.TempDir().
package procfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Root is the real proc file system.
const Root = "/proc"

// Stat is what prism-run needs of one /proc/PID/stat.
type Stat struct {
	PID, PPID int
	// PGRP is the process group.
	PGRP int
	// State is the one-letter state: R, S, D, Z (zombie), T (stopped), ...
	State byte
	// StartTime is field 22, the time the process started after boot, in
	// clock ticks: with the pid it names one process for good, since a
	// reused pid has a later start time.
	StartTime uint64
}

// Identity names one process for good: a pid alone does not (it is
// reused once the process is reaped), a pid with its start time does.
type Identity struct {
	PID       int
	StartTime uint64
}

// Identity is the process's identity.
func (s Stat) Identity() Identity { return Identity{s.PID, s.StartTime} }

// IdentityOf reads the identity of pid under root.
func IdentityOf(root string, pid int) (Identity, error) {
	s, err := ReadStat(root, pid)
	return s.Identity(), err
}

// Without returns procs less the processes with one of the identities.
func Without(procs []Stat, ids []Identity) []Stat {
	if len(ids) == 0 {
		return procs
	}
	out := procs[:0:0]
	for _, p := range procs {
		if !slices.Contains(ids, p.Identity()) {
			out = append(out, p)
		}
	}
	return out
}

// Dead reports whether the process has exited and only waits to be
// reaped (zombie) or is being torn down.
func (s Stat) Dead() bool { return s.State == 'Z' || s.State == 'X' }

// ErrGone is returned for a process that no longer exists.
var ErrGone = errors.New("procfs: no such process")

// ReadStat reads /proc/PID/stat under root.
func ReadStat(root string, pid int) (Stat, error) {
	b, err := os.ReadFile(filepath.Join(root, strconv.Itoa(pid), "stat"))
	if gone(err) {
		return Stat{}, fmt.Errorf("%w: %d", ErrGone, pid)
	}
	if err != nil {
		return Stat{}, err
	}
	s, ok := ParseStat(b)
	if !ok {
		return Stat{}, fmt.Errorf("procfs: cannot parse /proc/%d/stat", pid)
	}
	return s, nil
}

func gone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ESRCH)
}

// ParseStat reads "pid (comm) S ppid ... starttime ...". comm may hold
// spaces and parentheses, so the fields are counted from the last ')'
// (proc(5)). A line too short for the start time still gives the rest
// (StartTime 0).
func ParseStat(b []byte) (Stat, bool) {
	open := bytes.IndexByte(b, '(')
	end := bytes.LastIndexByte(b, ')')
	if open < 1 || end < open || end+2 >= len(b) {
		return Stat{}, false
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b[:open])))
	if err != nil {
		return Stat{}, false
	}
	rest := bytes.Fields(b[end+1:])
	if len(rest) < 2 || len(rest[0]) != 1 {
		return Stat{}, false
	}
	ppid, err := strconv.Atoi(string(rest[1]))
	if err != nil {
		return Stat{}, false
	}
	s := Stat{PID: pid, PPID: ppid, State: rest[0][0]}
	if len(rest) > 2 {
		s.PGRP, _ = strconv.Atoi(string(rest[2]))
	}
	// Field 22 of the line is rest[19]: fields 1 (pid) and 2 (comm) come
	// before the ')'.
	if len(rest) > 19 {
		s.StartTime, _ = strconv.ParseUint(string(rest[19]), 10, 64)
	}
	return s, true
}

// List reads every process of the proc file system at root. A process
// that ends while it is read is skipped.
func List(root string) ([]Stat, error) {
	dirs, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", root, err)
	}
	out := make([]Stat, 0, len(dirs))
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || pid <= 0 {
			continue
		}
		s, err := ReadStat(root, pid)
		if errors.Is(err, ErrGone) {
			continue
		}
		if err != nil {
			// A stat that cannot be parsed is a process mid-change;
			// anything else (EACCES on a hardened /proc) is an error.
			var pe *fs.PathError
			if errors.As(err, &pe) {
				return nil, err
			}
			continue
		}
		if s.PID == pid {
			out = append(out, s)
		}
	}
	return out, nil
}

// LiveDescendants returns the pids of the processes below root that have
// not exited (zombies are dead: they only wait to be reaped), breadth
// first.
func LiveDescendants(procs []Stat, root int) []int {
	tree := LiveTree(procs, root)
	out := make([]int, len(tree))
	for i, s := range tree {
		out[i] = s.PID
	}
	return out
}

// LiveTree is LiveDescendants with each process's Stat, whose Identity a
// signal can be checked against (a pid alone can be reused meanwhile).
func LiveTree(procs []Stat, root int) []Stat {
	children := map[int][]Stat{}
	for _, p := range procs {
		children[p.PPID] = append(children[p.PPID], p)
	}
	var out []Stat
	seen := map[int]bool{root: true} // a pid read twice mid-change must not loop
	queue := []int{root}
	for len(queue) > 0 {
		next := queue[0]
		queue = queue[1:]
		for _, c := range children[next] {
			if seen[c.PID] {
				continue
			}
			seen[c.PID] = true
			queue = append(queue, c.PID)
			if !c.Dead() {
				out = append(out, c)
			}
		}
	}
	return out
}

// IsDead reports whether pid has exited (or cannot be read at all).
func IsDead(root string, pid int) bool {
	s, err := ReadStat(root, pid)
	return err != nil || s.Dead()
}

// Status is what prism-run needs of one /proc/PID/status.
type Status struct {
	// SigCgt, SigIgn and SigBlk are the caught, ignored and blocked
	// signal masks: bit n-1 is signal n.
	SigCgt, SigIgn, SigBlk uint64
	// NoNewPrivs is the no_new_privs flag (Linux >= 4.10 reports it);
	// HasNoNewPrivs says whether the kernel reported it at all.
	NoNewPrivs, HasNoNewPrivs bool
}

// ReadStatus reads /proc/PID/status under root. It fails when the signal
// masks are not all there.
func ReadStatus(root string, pid int) (Status, error) {
	b, err := os.ReadFile(filepath.Join(root, strconv.Itoa(pid), "status"))
	if gone(err) {
		return Status{}, fmt.Errorf("%w: %d", ErrGone, pid)
	}
	if err != nil {
		return Status{}, err
	}
	return ParseStatus(b)
}

// ParseStatus reads the "Key:\tvalue" lines of a status file.
func ParseStatus(b []byte) (Status, error) {
	var s Status
	masks := 0
	for _, line := range bytes.Split(b, []byte("\n")) {
		k, v, cut := bytes.Cut(line, []byte(":"))
		if !cut {
			continue
		}
		v = bytes.TrimSpace(v)
		var dst *uint64
		switch string(k) {
		case "SigCgt":
			dst = &s.SigCgt
		case "SigIgn":
			dst = &s.SigIgn
		case "SigBlk":
			dst = &s.SigBlk
		case "NoNewPrivs":
			s.HasNoNewPrivs, s.NoNewPrivs = true, string(v) == "1"
			continue
		default:
			continue
		}
		mask, err := strconv.ParseUint(string(v), 16, 64)
		if err != nil {
			return Status{}, fmt.Errorf("procfs: status %s: %w", k, err)
		}
		*dst = mask
		masks++
	}
	if masks != 3 {
		return Status{}, errors.New("procfs: status lacks the signal masks")
	}
	return s, nil
}

// SigBit is sig's bit in a status mask.
func SigBit(sig unix.Signal) uint64 { return uint64(1) << (uint(sig) - 1) }

// Catches reports whether the process has a handler for sig.
func (s Status) Catches(sig unix.Signal) bool { return s.SigCgt&SigBit(sig) != 0 }

// Survives reports whether sig would not kill the process by its default
// action: it catches, ignores or blocks it.
func (s Status) Survives(sig unix.Signal) bool {
	return (s.SigCgt|s.SigIgn|s.SigBlk)&SigBit(sig) != 0
}

// Owner names a process in a way that holds across PID namespaces and pid
// reuse: the inode of its PID namespace (/proc/PID/ns/pid), its pid there,
// and its start time. A run records its owner where another prism-run may
// later judge whether it is gone (the run's cgroup name, the run folder).
type Owner struct {
	NS    uint64 // the PID namespace's inode
	PID   int    // the pid in that namespace
	Start uint64 // start time, clock ticks after boot (/proc/PID/stat field 22)
}

// Foreign reports whether the proc file system at root belongs to another
// PID namespace than this process's (`unshare --pid` without
// --mount-proc): its pids are not this namespace's, so nothing read there
// about a pid may be acted on. A root without a "self" link (a test's
// fake tree) is not foreign.
func Foreign(root string) bool {
	self, err := os.Readlink(filepath.Join(root, "self"))
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(self)
	return err == nil && pid != os.Getpid()
}

// SelfOwner is this process's Owner, read from the proc file system at
// root. Where that is another PID namespace's (Foreign), the owner has no
// namespace (NS 0): no one can prove it gone, so nothing of it is swept.
func SelfOwner(root string) (Owner, error) {
	if Foreign(root) {
		return Owner{PID: os.Getpid()}, nil
	}
	ns, err := os.Readlink(filepath.Join(root, "self", "ns", "pid"))
	if err != nil {
		return Owner{}, err
	}
	var o Owner
	if _, err := fmt.Sscanf(ns, "pid:[%d]", &o.NS); err != nil {
		return Owner{}, fmt.Errorf("procfs: read %s: %q", "ns/pid", ns)
	}
	st, err := ReadStat(root, os.Getpid())
	if err != nil {
		return Owner{}, err
	}
	o.PID, o.Start = st.PID, st.StartTime
	return o, nil
}

// String is the owner as it is written into names: "NS-PID-START".
func (o Owner) String() string { return fmt.Sprintf("%d-%d-%d", o.NS, o.PID, o.Start) }

// ParseOwner reads the first three "-"-separated fields of s as an owner
// and returns what follows them ("" when nothing does).
func ParseOwner(s string) (Owner, string, bool) {
	f := strings.SplitN(s, "-", 4)
	if len(f) < 3 {
		return Owner{}, "", false
	}
	ns, err1 := strconv.ParseUint(f[0], 10, 64)
	pid, err2 := strconv.Atoi(f[1])
	start, err3 := strconv.ParseUint(f[2], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || pid <= 0 {
		return Owner{}, "", false
	}
	rest := ""
	if len(f) == 4 {
		rest = f[3]
	}
	return Owner{NS: ns, PID: pid, Start: start}, rest, true
}

// Gone says whether the owner is provably gone, as seen by a process
// whose own Owner is self, through the proc file system at root. Only an
// owner of self's own PID namespace can be judged (provable): it is gone
// when no process has its pid, or the one that has it started at another
// time (the pid was reused). An owner of another namespace cannot be
// judged from here: its pid means nothing in this one.
func (o Owner) Gone(root string, self Owner) (gone, provable bool) {
	if o.NS != self.NS || o.NS == 0 {
		return false, false
	}
	st, err := ReadStat(root, o.PID)
	if errors.Is(err, ErrGone) {
		return true, true
	}
	if err != nil {
		return false, false
	}
	return st.StartTime != o.Start || st.Dead(), true
}

// SignalfdMask is the union of the signal masks of pid's signalfds, read
// from /proc/PID/fdinfo/FD ("sigmask:" in hex, signalfd(2)); 0 when it
// has none or they cannot be read. A process that reads a signal from a
// signalfd blocks it in every thread, and takes it without dying.
func SignalfdMask(root string, pid int) uint64 {
	dir := filepath.Join(root, strconv.Itoa(pid), "fdinfo")
	fds, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var mask uint64
	for _, fd := range fds {
		b, err := os.ReadFile(filepath.Join(dir, fd.Name()))
		if err != nil {
			continue
		}
		for _, line := range bytes.Split(b, []byte("\n")) {
			if v, ok := bytes.CutPrefix(line, []byte("sigmask:")); ok {
				if m, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 16, 64); err == nil {
					mask |= m
				}
			}
		}
	}
	return mask
}

// WaitedSignals is the set of signals the process's threads are waiting
// for in sigtimedwait(2)/sigwaitinfo(2)/sigwait(3) (all of them the
// rt_sigtimedwait system call). During such a wait the kernel takes the
// waited signals out of the thread's blocked mask, so SigBlk in
// /proc/PID/status does not show them although the signal would be taken
// by the wait, not kill the process. The set is read from the call's
// first argument (a sigset_t in the process's memory, /proc/PID/mem),
// which needs the same access as ptrace: root, or the parent under Yama's
// default. ok is false when nothing could be read.
func WaitedSignals(root string, pid int) (mask uint64, ok bool) {
	tasks, err := os.ReadDir(filepath.Join(root, strconv.Itoa(pid), "task"))
	if err != nil {
		return 0, false
	}
	for _, t := range tasks {
		b, err := os.ReadFile(filepath.Join(root, strconv.Itoa(pid), "task", t.Name(), "syscall"))
		if err != nil {
			continue
		}
		addr, waiting := sigtimedwaitSet(string(b))
		if !waiting {
			ok = true
			continue
		}
		set, err := readWord(filepath.Join(root, strconv.Itoa(pid), "mem"), addr)
		if err != nil {
			return mask, false
		}
		mask, ok = mask|set, true
	}
	return mask, ok
}

// sigtimedwaitSet reads /proc/PID/task/TID/syscall ("NR ARG1 ARG2 ... SP
// PC", proc(5)): the address of the waited set when the thread is blocked
// in rt_sigtimedwait.
func sigtimedwaitSet(line string) (uint64, bool) {
	f := strings.Fields(line)
	if len(f) < 2 || f[0] != strconv.Itoa(unix.SYS_RT_SIGTIMEDWAIT) {
		return 0, false
	}
	addr, err := strconv.ParseUint(strings.TrimPrefix(f[1], "0x"), 16, 64)
	return addr, err == nil
}

// readWord reads 8 bytes of a process's memory at addr (a sigset_t's
// first word holds signals 1..64, as the status masks do).
func readWord(memPath string, addr uint64) (uint64, error) {
	f, err := os.Open(memPath)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var b [8]byte
	if _, err := f.ReadAt(b[:], int64(addr)); err != nil {
		return 0, err
	}
	return binary.NativeEndian.Uint64(b[:]), nil
}

// ReadEnviron reads /proc/PID/environ under root: the environment the
// process was exec'd with ("K=V" entries). A zombie's is empty.
func ReadEnviron(root string, pid int) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(root, strconv.Itoa(pid), "environ"))
	if gone(err) {
		return nil, fmt.Errorf("%w: %d", ErrGone, pid)
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, kv := range strings.Split(strings.TrimRight(string(b), "\x00"), "\x00") {
		if kv != "" {
			out = append(out, kv)
		}
	}
	return out, nil
}

// SignalFate says what sending sig to process pid would do. safe: it
// would not kill the process by the signal's default action: the process
// catches or ignores it, or every one of its threads blocks it or waits
// for it in sigtimedwait (the kernel delivers a process-directed signal
// to any thread that does not block it, so one thread that neither blocks
// nor waits is enough to die of it; SigBlk is per thread, read from
// /proc/PID/task/*/status). acts: a handler or a waiting thread takes it.
// ok is false when the masks cannot be read.
func SignalFate(root string, pid int, sig unix.Signal) (safe, acts, ok bool) {
	st, err := ReadStatus(root, pid)
	if err != nil {
		return false, false, false
	}
	if st.Catches(sig) {
		return true, true, true
	}
	if st.SigIgn&SigBit(sig) != 0 {
		return true, false, true
	}
	tasks, err := os.ReadDir(filepath.Join(root, strconv.Itoa(pid), "task"))
	if err != nil {
		return false, false, false
	}
	waited, _ := WaitedSignals(root, pid)
	waits := waited&SigBit(sig) != 0
	for _, t := range tasks {
		b, err := os.ReadFile(filepath.Join(root, strconv.Itoa(pid), "task", t.Name(), "status"))
		if err != nil {
			continue // a thread that ended meanwhile
		}
		ts, err := ParseStatus(b)
		if err != nil {
			return false, false, false
		}
		if ts.SigBlk&SigBit(sig) != 0 {
			// Blocked: pending until unblocked, then its default action,
			// unless something takes it off the queue: a sigwait of
			// another thread, or a signalfd. (A shell blocks signals for
			// a moment around its fork and wait: a request sent then
			// killed it once unblocked.)
			if waits || SignalfdMask(root, pid)&SigBit(sig) != 0 {
				continue
			}
			return false, false, true
		}
		sc, err := os.ReadFile(filepath.Join(root, strconv.Itoa(pid), "task", t.Name(), "syscall"))
		if err != nil {
			return false, false, false
		}
		if addr, in := sigtimedwaitSet(string(sc)); in {
			if set, err := readWord(filepath.Join(root, strconv.Itoa(pid), "mem"), addr); err == nil && set&SigBit(sig) != 0 {
				continue // this thread's wait takes it
			}
		}
		return false, false, true // this thread would take it by default: death
	}
	return true, waits, true
}

// Descendants lists pid's descendants by the kernel's own child lists
// (/proc/PID/task/TID/children, Linux >= 3.5 with CONFIG_PROC_CHILDREN),
// reading the stat of the tree's processes only, where List reads every
// process of the host: the run's end on a busy host read thousands.
// ok is false when the kernel has no child lists (the caller then uses
// List). proc(5) warns that a list may miss a child being created or
// reaped meanwhile: callers use it only beside a cgroup, whose process
// list holds every such child, and poll until the tree is empty.
func Descendants(root string, pid int) (out []Stat, ok bool, err error) {
	if !childListsKept(filepath.Join(root, strconv.Itoa(pid), "task", strconv.Itoa(pid), "children")) {
		return nil, false, nil
	}
	seen := map[int]bool{pid: true}
	queue := []int{pid}
	for len(queue) > 0 {
		parent := queue[0]
		queue = queue[1:]
		tasks, _ := os.ReadDir(filepath.Join(root, strconv.Itoa(parent), "task"))
		for _, t := range tasks {
			b, _ := os.ReadFile(filepath.Join(root, strconv.Itoa(parent), "task", t.Name(), "children"))
			for _, f := range strings.Fields(string(b)) {
				c, cerr := strconv.Atoi(f)
				if cerr != nil || seen[c] {
					continue
				}
				seen[c] = true
				s, serr := ReadStat(root, c)
				if serr != nil || s.PID != c {
					continue // gone since, or mid-change: the next poll sees it
				}
				out = append(out, s)
				queue = append(queue, c)
			}
		}
	}
	return out, true, nil
}

// childListsKept reports whether the kernel keeps the child list at path.
func childListsKept(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
