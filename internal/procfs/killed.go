package procfs

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// pfExiting is the kernel's PF_EXITING task flag (/proc/PID/stat field 9):
// the process is in its exit.
const pfExiting = 0x4

// Killed reports whether pid is on its way out although /proc may still
// show it running: it has exited (or cannot be read), it is in its exit
// (PF_EXITING), or a SIGKILL is pending for it, sent and not acted on yet.
// The kernel's OOM killer counts a kill (memory.events, memory.oom_control)
// when it sends that SIGKILL, so a victim seen "alive" just after the
// count rose may be the one it hit.
func Killed(root string, pid int) bool {
	b, err := os.ReadFile(filepath.Join(root, strconv.Itoa(pid), "stat"))
	if err != nil {
		return true
	}
	s, ok := ParseStat(b)
	if !ok || s.Dead() {
		return true
	}
	// Field 9 is the 7th after the ')' (fields 1 and 2 come before it).
	if rest := bytes.Fields(b[bytes.LastIndexByte(b, ')')+1:]); len(rest) > 6 {
		if flags, err := strconv.ParseUint(string(rest[6]), 10, 64); err == nil && flags&pfExiting != 0 {
			return true
		}
	}
	st, err := os.ReadFile(filepath.Join(root, strconv.Itoa(pid), "status"))
	if err != nil {
		return true
	}
	for _, line := range bytes.Split(st, []byte("\n")) {
		k, v, _ := bytes.Cut(line, []byte(":"))
		if string(k) != "SigPnd" && string(k) != "ShdPnd" { // the thread's and the process's
			continue
		}
		if mask, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 16, 64); err == nil && mask&SigBit(unix.SIGKILL) != 0 {
			return true
		}
	}
	return false
}
