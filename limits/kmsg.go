package limits

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// OOMKill is one OOM kill as the kernel logged it.
type OOMKill struct {
	PID    int    `json:"pid"`
	Task   string `json:"task"`             // the process's name (comm)
	Cgroup string `json:"cgroup,omitempty"` // the memory cgroup it was in, as the kernel names it
}

// oomKillRe matches the summary line the kernel logs for every OOM kill
// since Linux 4.19 (mm/oom_kill.c, dump_oom_summary):
//
//	oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/a/b,task_memcg=/a/b,task=stress-ng-vm,pid=9113,uid=0
//
// mems_allowed may hold commas ("0,2") and a task name may too, so the
// fields are found from the right: the name runs up to the last ",pid=".
var oomKillRe = regexp.MustCompile(`^oom-kill:.*,task_memcg=([^,]*),task=(.*),pid=(\d+),uid=\d+`)

// ParseOOMKill reads one kernel log message (the text after the record's
// "prefix;" in /dev/kmsg). ok is false for any other message.
func ParseOOMKill(msg string) (k OOMKill, ok bool) {
	m := oomKillRe.FindStringSubmatch(msg)
	if m == nil {
		return OOMKill{}, false
	}
	pid, err := strconv.Atoi(m[3])
	if err != nil {
		return OOMKill{}, false
	}
	return OOMKill{PID: pid, Task: m[2], Cgroup: m[1]}, true
}

// InCgroup reports whether the kill happened in the cgroup whose path
// ends in name, or below it. The kernel prints paths from the root of its
// own hierarchy, which a container's cgroup namespace does not show, so
// the unique last part (RunCgroupName) is what is compared.
func (k OOMKill) InCgroup(name string) bool {
	if name == "" {
		return false
	}
	return strings.HasSuffix(k.Cgroup, "/"+name) || strings.Contains(k.Cgroup, "/"+name+"/")
}

// KernelLog reads the OOM kills the kernel logs to /dev/kmsg from the
// moment it is opened. Reading /dev/kmsg needs root or CAP_SYSLOG where
// kernel.dmesg_restrict is 1; without it prism-run still knows how many
// processes were killed (the cgroup's counters), not which.
type KernelLog struct {
	fd  int
	buf []byte
}

// OpenKernelLog opens the kernel log at path (/dev/kmsg) positioned after
// its last record, so only what happens from now on is read.
func OpenKernelLog(path string) (*KernelLog, error) {
	// A raw descriptor, not an *os.File: the Go poller would park a read
	// until a record comes, and a read must return EAGAIN when none has.
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open kernel log: %w", err)
	}
	// SEEK_END on /dev/kmsg: "seek after the last record" (the kernel's
	// Documentation/ABI/testing/dev-kmsg).
	if _, err := unix.Seek(fd, 0, unix.SEEK_END); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("seek kernel log: %w", err)
	}
	return &KernelLog{fd: fd, buf: make([]byte, 8192)}, nil
}

// maxRecordsPerRead bounds one drain: a kernel that logs faster than we
// read must not keep the supervisor's loop busy.
const maxRecordsPerRead = 4096

// OOMKills returns the OOM kills logged since the last call. Each read of
// /dev/kmsg returns one record; EPIPE says records were overwritten before
// we read them (the next read goes on with the oldest still there).
func (k *KernelLog) OOMKills() []OOMKill {
	var out []OOMKill
	for i := 0; i < maxRecordsPerRead; i++ {
		n, err := unix.Read(k.fd, k.buf)
		if errors.Is(err, unix.EPIPE) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || n <= 0 {
			return out // EAGAIN: nothing more for now
		}
		rec := string(k.buf[:n])
		_, msg, found := strings.Cut(rec, ";")
		if !found {
			continue
		}
		if line, _, _ := strings.Cut(msg, "\n"); line != "" {
			if kill, ok := ParseOOMKill(line); ok {
				out = append(out, kill)
			}
		}
	}
	return out
}

// Close releases the log.
func (k *KernelLog) Close() error { return unix.Close(k.fd) }
