package procfs

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// A process the OOM killer (or anyone) has sent SIGKILL to, which has not
// acted on it yet, is killed already; so is one in its exit, and one gone.
func TestKilled(t *testing.T) {
	root := t.TempDir()
	proc := func(pid int, state string, flags uint64, sigPnd, shdPnd string) {
		dir := filepath.Join(root, strconv.Itoa(pid))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		f := strings.Fields("S 1 1 1 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 5000 1000 100")
		f[0], f[6] = state, strconv.FormatUint(flags, 10)
		stat := strconv.Itoa(pid) + " (a (b) c) " + strings.Join(f, " ") + "\n"
		status := "Name:\tx\nSigQ:\t0/100\nSigPnd:\t" + sigPnd + "\nShdPnd:\t" + shdPnd +
			"\nSigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\nSigCgt:\t0000000000000000\n"
		if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(stat), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "status"), []byte(status), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const none, kill, usr1 = "0000000000000000", "0000000000000100", "0000000000000200"
	proc(10, "R", 4194560, none, none) // running
	proc(11, "R", 4194560, none, kill) // SIGKILL sent to the process
	proc(12, "D", 4194560, kill, none) // ...to its main thread
	proc(13, "R", 4194564, none, none) // PF_EXITING
	proc(14, "Z", 4194564, none, none) // a zombie
	proc(15, "S", 4194560, usr1, usr1) // another signal pending
	for pid, want := range map[int]bool{10: false, 11: true, 12: true, 13: true, 14: true, 15: false, 16: true} {
		if got := Killed(root, pid); got != want {
			t.Errorf("Killed(%d) = %v, want %v", pid, got, want)
		}
	}
	// This process is not.
	if Killed("/proc", os.Getpid()) {
		t.Error("Killed(self) = true")
	}
}
