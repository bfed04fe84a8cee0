package supervisor

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/utils/clock"
	testclock "k8s.io/utils/clock/testing"

	"github.com/prism-run/prism-run/internal/procfs"
)

// hookClock runs onSleep at each Sleep: the moment a re-read may see the
// child's environment change.
type hookClock struct {
	clock.Clock
	onSleep func()
	sleeps  int
}

func (c *hookClock) Sleep(time.Duration) { c.sleeps++; c.onSleep() }

// The child's environment read mid-exec is cut short ("PRISM_RESTART_"):
// read again, it settles and passes; a variable that is really there
// fails however long it is read; a child that is gone is not waited for.
func TestVerifyEnvSettled(t *testing.T) {
	want := []string{"PATH=/bin", "PRISM_RESTART_COUNT=0"}
	full := strings.Join(want, "\x00") + "\x00"
	tests := []struct {
		name      string
		first     string // environ at the first read ("" : no process)
		later     string // environ after the first sleep
		wantErr   error  // nil, ErrGone, or any (errAny)
		maxSleeps int
	}{
		{"cut mid-exec, then whole", "PATH=/bin\x00PRISM_RESTART_", full, nil, 1},
		{"a variable not given stays", full + "SECRET=1\x00", full + "SECRET=1\x00", errAny, int(envSettle / envSettleStep)},
		{"gone", "", "", procfs.ErrGone, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			environ := filepath.Join(root, "42", "environ")
			write := func(s string) {
				if s == "" {
					return
				}
				if err := os.MkdirAll(filepath.Dir(environ), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(environ, []byte(s), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			write(tt.first)
			c := &hookClock{Clock: testclock.NewFakeClock(time.Unix(0, 0)), onSleep: func() { write(tt.later) }}
			err := verifyEnvSettled(c, root, 42, want)
			bad := err != nil
			switch {
			case errors.Is(tt.wantErr, errAny):
				bad = err == nil
			case errors.Is(tt.wantErr, procfs.ErrGone):
				bad = !errors.Is(err, procfs.ErrGone)
			}
			switch {
			case bad:
				t.Errorf("err %v, want %v", err, tt.wantErr)
			case c.sleeps > tt.maxSleeps:
				t.Errorf("%d re-reads, want at most %d", c.sleeps, tt.maxSleeps)
			}
		})
	}
}

// errAny stands for "some error" in a table.
var errAny = errors.New("any error")
