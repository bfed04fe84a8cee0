package limits

import (
	"errors"
	"os/exec"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/prism-run/prism-run/internal/procfs"
)

// A signal by identity reaches its process, and never a process that only
// has the same pid.
func TestSignalByIdentity(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Skip(err)
	}
	id, err := procfs.IdentityOf(procfs.Root, cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	// The same pid with another start time: a process that took a reused
	// pid. It is not signalled.
	other := procfs.Identity{PID: id.PID, StartTime: id.StartTime + 1}
	if err := Signal(procfs.Root, other, unix.SIGKILL); !errors.Is(err, procfs.ErrGone) {
		t.Errorf("another process's identity: %v, want ErrGone", err)
	}
	if err := unix.Kill(id.PID, 0); err != nil {
		t.Fatalf("the sleeper was signalled for another identity: %v", err)
	}
	if err := Signal(procfs.Root, id, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err == nil {
		t.Error("the sleeper was not killed")
	}
	if err := Signal(procfs.Root, id, unix.SIGKILL); !errors.Is(err, procfs.ErrGone) {
		t.Errorf("a reaped process: %v, want ErrGone", err)
	}
}
