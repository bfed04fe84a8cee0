package supervisor

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/rs/zerolog"

	"github.com/prism-run/prism-run/internal/procfs"
)

// A run folder left by a prism-run that is provably gone is removed at
// the next start, unless it holds checkpoints; one whose owner cannot be
// judged (another PID namespace, no owner file) or is alive is left.
func TestSweepRunFolders(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	self, err := procfs.SelfOwner(procfs.Root)
	if err != nil {
		t.Fatal(err)
	}
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	gone := procfs.Owner{NS: self.NS, PID: dead.Process.Pid, Start: 1}
	folders := []struct {
		name       string
		owner      *procfs.Owner
		checkpoint bool
		kept       bool
	}{
		{"prism-run-gone-1", &gone, false, false},
		{"prism-run-gone-with-work-1", &gone, true, true},
		{"prism-run-alive-1", &self, false, true},
		{"prism-run-other-ns-1", &procfs.Owner{NS: self.NS + 1, PID: dead.Process.Pid, Start: 1}, false, true},
		{"prism-run-no-owner-1", nil, false, true},
		{"not-ours", &gone, false, true},
	}
	for _, f := range folders {
		dir := filepath.Join(tmp, f.name)
		if err := os.MkdirAll(filepath.Join(dir, "checkpoints"), 0o700); err != nil {
			t.Fatal(err)
		}
		if f.owner != nil {
			if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(f.owner.String()+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if f.checkpoint {
			if err := os.WriteFile(filepath.Join(dir, "checkpoints", "ck-1"), []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	sweepRunFolders(procfs.Root, zerolog.Nop())
	for _, f := range folders {
		_, err := os.Stat(filepath.Join(tmp, f.name))
		if (err == nil) != f.kept {
			t.Errorf("%s: kept %v, want %v", f.name, err == nil, f.kept)
		}
	}
}
