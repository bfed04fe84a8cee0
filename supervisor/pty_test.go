package supervisor

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/prism-run/prism-run/internal/testchild"
	"golang.org/x/sys/unix"
)

// With a person at a terminal (prism-run the terminal's foreground job),
// --pty gives the child a pty of its own that is the terminal's double:
// what is typed is forwarded (the pty's line discipline echoes and edits
// with the terminal's settings), its size follows the terminal's (the
// kernel's SIGWINCH), and the terminal is raw while the child runs and
// cooked again afterwards.
func TestPTYFollowsTheTerminal(t *testing.T) {
	s := openShell(t, []string{"PRISM_TEST_PTY=1"}, "sh", "-c",
		`stty size; read l; echo "got: $l"; while read l; do stty size; [ "$l" = end ] && exit 0; done`)
	s.expect("24 80") // the terminal has no size yet: 80x24
	mfd := int(s.master.Fd())
	during, err := unix.IoctlGetTermios(mfd, unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if during.Lflag&(unix.ICANON|unix.ECHO|unix.ISIG) != 0 {
		t.Errorf("the terminal is not in raw input mode while the child runs: lflag %#x", during.Lflag)
	}
	if during.Oflag&unix.OPOST == 0 {
		t.Errorf("the terminal's output processing was turned off (prism-run's own lines would not start at the left)")
	}
	s.typeKeys("hello\r")
	s.expect("got: hello")
	if err := pty.Setsize(s.master, &pty.Winsize{Rows: 40, Cols: 120}); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(10 * time.Second); !strings.Contains(s.out.String(), "40 120") && time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		s.typeKeys("x\r")
	}
	s.expect("40 120")
	s.typeKeys("end\r")
	s.expect("supervise: reason=exited")
	s.expect("shell: exit=0")
	after, err := unix.IoctlGetTermios(mfd, unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if after.Lflag&(unix.ICANON|unix.ECHO|unix.ISIG) != unix.ICANON|unix.ECHO|unix.ISIG {
		t.Errorf("the terminal's settings were not given back: lflag %#x", after.Lflag)
	}
	// The pty echoed what was typed (the terminal's own echo was off):
	// shown once, and answered once.
	if n := strings.Count(s.out.String(), "hello"); n != 2 {
		t.Errorf("hello shown %d times, want 2 (the echo once, the answer once)", n)
	}
}

// From a job started with & the terminal is not prism-run's to change
// (that would stop it with SIGTTOU), nor its keys the child's: the run
// goes on, the child reads nothing. (It once stopped at once, "Stopped
// (tty output)"; then its child read what was typed to the shell.)
func TestPTYInABackgroundJob(t *testing.T) {
	s := openShell(t, []string{"PRISM_TEST_PTY=1", "PRISM_TEST_BG=1"}, "sh", "-c", "test -t 1 && echo tick; read x || echo eof; echo \"[$x]\"")
	s.expect("tick")
	s.expect("eof")
	s.expect("[]")
	s.expect("supervise: reason=exited")
	s.expect("shell: exit=0")
	s.absent("job stopped")
}

// Without a terminal anywhere the pty's output is raw: every byte value
// passes as written, "\n" not turned into "\r\n".
func TestPTYOutputIsRawOnAPipe(t *testing.T) {
	h := newHarness(t, "randbytes", "200000", "3")
	h.cfg.PTY = true
	h.run(t)
	if got := []byte(h.stdout.String()); !bytes.Equal(got, testchild.RandomBytes(200000, 3)) {
		t.Fatalf("%d bytes through the pty, not the %d written (first difference at %d)", len(got), 200000, firstDiff(got, testchild.RandomBytes(200000, 3)))
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
