package limits

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The watchdog acts only when prism-run died (EOF without the byte), and
// only on what is still there; the real cleanup of a real cgroup after a
// SIGKILL is testdata/script/tree.txtar.
func TestWatch(t *testing.T) {
	gone := filepath.Join(t.TempDir(), "prism-run-1-x") // removed by the run already
	empty := t.TempDir()                                // an empty cgroup folder stands in
	tests := []struct {
		name   string
		in     string
		dirs   []string
		code   int
		said   string
		remain bool // empty still exists afterwards
	}{
		{"the run ended: nothing touched", "d", []string{empty}, 0, "", true},
		{"prism-run died, its cgroup already removed", "", []string{gone}, 0, "", true},
		{"prism-run died mid-run", "", []string{empty}, 0, "killed what was left in its cgroup and removed it", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			if code := watch(strings.NewReader(tt.in), tt.dirs, &stderr); code != tt.code {
				t.Errorf("exit %d, want %d (%s)", code, tt.code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.said) || (tt.said == "" && stderr.Len() > 0) {
				t.Errorf("said %q, want %q", stderr.String(), tt.said)
			}
			if _, err := os.Stat(empty); (err == nil) != tt.remain {
				t.Errorf("folder exists: %v, want %v", err == nil, tt.remain)
			}
		})
	}
}
