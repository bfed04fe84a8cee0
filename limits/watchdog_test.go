package limits

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prism-run/prism-run/internal/procfs"
)

// The watchdog acts only when prism-run died (EOF without "done"), and
// only on what is still there; a run folder it guards is removed unless
// it holds checkpoints. The real cleanup of a real cgroup and run folder
// after a SIGKILL is testdata/script/tree.txtar.
func TestWatch(t *testing.T) {
	gone := filepath.Join(t.TempDir(), "prism-run-1-x") // removed by the run already
	tests := []struct {
		name        string
		in          string
		code        int
		said        string
		cgroup      bool // the cgroup folder still exists afterwards
		runFolder   bool // the run folder still exists afterwards
		checkpoints bool // the run folder holds a checkpoint
	}{
		{"the run ended: nothing touched", "guard RUN\ndone\n", 0, "", true, true, false},
		{"prism-run died, its cgroup already removed", "", 0, "its cgroup was already removed", false, true, false},
		{"prism-run died mid-run", "guard RUN\n", 0, "killed what was left in its cgroup and removed it", false, false, false},
		{"prism-run died, checkpoints kept", "guard RUN\n", 0, "its checkpoints are kept in", false, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cgroup := t.TempDir() // an empty cgroup folder stands in
			run := t.TempDir()
			if tt.checkpoints {
				if err := os.MkdirAll(filepath.Join(run, "checkpoints"), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(run, "checkpoints", "ck-1"), []byte("x"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			dirs := []string{cgroup}
			if tt.name == "prism-run died, its cgroup already removed" {
				dirs = []string{gone}
			}
			var stderr bytes.Buffer
			in := strings.ReplaceAll(tt.in, "RUN", run)
			if code := watch(strings.NewReader(in), dirs, &stderr); code != tt.code {
				t.Errorf("exit %d, want %d (%s)", code, tt.code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.said) || (tt.said == "" && stderr.Len() > 0) {
				t.Errorf("said %q, want %q", stderr.String(), tt.said)
			}
			if _, err := os.Stat(run); (err == nil) != tt.runFolder {
				t.Errorf("run folder exists: %v, want %v", err == nil, tt.runFolder)
			}
			if dirs[0] == cgroup {
				if _, err := os.Stat(cgroup); (err == nil) != tt.cgroup {
					t.Errorf("cgroup folder exists: %v, want %v", err == nil, tt.cgroup)
				}
			}
		})
	}
}

// A watchdog told the run ended well is gone when Done returns: it holds
// prism-run's stderr, and a pipe's reader must see its end with
// prism-run's. Killed without Done, it cleans the cgroup's folders up.
func TestWatchdogDoneWaits(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 10; round++ {
		d, err := StartWatchdog(self, fakeCgroup{dir: t.TempDir()}, os.Stderr)
		if err != nil {
			t.Fatal(err)
		}
		id := d.Identity()
		if id.PID == 0 {
			t.Fatal("no identity for the watchdog")
		}
		start := time.Now()
		d.Done()
		took := time.Since(start)
		// Gone, or Done waited its whole bound (a watchdog binary slow to
		// start: the race detector's, under load).
		if st, err := procfs.ReadStat(procfs.Root, id.PID); err == nil && !st.Dead() && took < doneWait {
			t.Fatalf("round %d: Done returned after %v while the watchdog (pid %d, state %c) lived", round, took, id.PID, st.State)
		}
	}
}

// fakeCgroup is a cgroup of one folder that nothing real is in.
type fakeCgroup struct{ dir string }

func (f fakeCgroup) Mode() Mode            { return ModeV2 }
func (f fakeCgroup) Path() string          { return "/" + filepath.Base(f.dir) }
func (f fakeCgroup) ProcsFiles() []string  { return []string{filepath.Join(f.dir, "cgroup.procs")} }
func (f fakeCgroup) Dir() string           { return f.dir }
func (f fakeCgroup) Kill() error           { return nil }
func (f fakeCgroup) Procs() ([]int, error) { return nil, nil }
func (f fakeCgroup) Usage() (Usage, error) { return Usage{}, nil }
func (f fakeCgroup) Delete() error         { return nil }
