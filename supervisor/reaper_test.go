package supervisor

import (
	"os/exec"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/prism-run/prism-run/internal/procfs"
)

// Every child started through the reaper gets its own status, while the
// reaper also collects children nobody watches (the run's orphans): what a
// hook or a fallback command needs next to a run.
func TestReaperGivesEachChildItsStatus(t *testing.T) {
	r := NewReaper()
	defer r.Close()
	exit3, err := r.Start(exec.Command("sh", "-c", "exit 3"))
	if err != nil {
		t.Fatal(err)
	}
	termed, err := r.Start(exec.Command("sh", "-c", "kill -TERM $$"))
	if err != nil {
		t.Fatal(err)
	}
	stray := exec.Command("true") // not watched: an orphan, as far as the reaper knows
	if err := stray.Start(); err != nil {
		t.Fatal(err)
	}
	if ws := exit3.Wait(); !ws.Exited() || ws.ExitStatus() != 3 {
		t.Errorf("exit 3: status %v", ws)
	}
	if ws := termed.Wait(); !ws.Signaled() || ws.Signal() != unix.SIGTERM {
		t.Errorf("SIGTERM: status %v", ws)
	}
	// The stray child is reaped, not left a zombie.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := procfs.ReadStat(procfs.Root, stray.Process.Pid); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("an unwatched child %d was not reaped", stray.Process.Pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = stray.Process.Release()
}

// A stop under job control reaches the child's statuses, then its end.
func TestReaperReportsStops(t *testing.T) {
	r := NewReaper()
	defer r.Close()
	c, err := r.Start(exec.Command("sleep", "30"))
	if err != nil {
		t.Fatal(err)
	}
	_ = unix.Kill(c.Pid, unix.SIGSTOP)
	var seen []unix.WaitStatus
	for len(seen) == 0 {
		select {
		case <-c.Changed():
			seen = append(seen, c.Take()...)
		case <-time.After(10 * time.Second):
			t.Fatal("no status after SIGSTOP")
		}
	}
	if !seen[0].Stopped() || seen[0].StopSignal() != unix.SIGSTOP {
		t.Errorf("first status %v, want stopped by SIGSTOP", seen[0])
	}
	_ = unix.Kill(c.Pid, unix.SIGKILL)
	if ws := c.Wait(); !ws.Signaled() || ws.Signal() != unix.SIGKILL {
		t.Errorf("end: %v", ws)
	}
}
