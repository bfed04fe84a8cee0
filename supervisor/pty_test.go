package supervisor

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/prism-run/prism-run/internal/testchild"
	"golang.org/x/sys/unix"
)

// With a person at a terminal (prism-run's stdin a terminal), --pty
// gives the child a pty of its own that is the terminal's double: what is
// typed is forwarded (the pty's line discipline echoes and edits, with the
// terminal's settings), its size follows the terminal's on SIGWINCH, and
// the terminal is raw while the child runs and as it was afterwards.
func TestPTYFollowsTheTerminal(t *testing.T) {
	outerM, outerS, err := pty.Open()
	if err != nil {
		t.Skipf("no pty here: %v", err)
	}
	defer outerM.Close()
	defer outerS.Close()
	if err := pty.Setsize(outerM, &pty.Winsize{Rows: 30, Cols: 100}); err != nil {
		t.Fatal(err)
	}
	before, err := unix.IoctlGetTermios(int(outerS.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t)
	h.cfg.Command = []string{"sh", "-c", `stty size; read l; echo "got: $l"; while read l; do stty size; [ "$l" = end ] && exit 0; done`}
	h.cfg.Stdin, h.cfg.Stdout, h.cfg.PTY = outerS, outerS, true

	var screen syncBuffer
	copied := make(chan struct{})
	go func() { _, _ = io.Copy(&screen, outerM); close(copied) }()
	waitFor := func(what string) {
		t.Helper()
		for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
			if strings.Contains(screen.String(), what) {
				return
			}
		}
		t.Fatalf("the terminal never showed %q:\n%q\nlogs:\n%s", what, screen.String(), h.logs)
	}

	var wg sync.WaitGroup
	wg.Add(1)
	var runErr error
	go func() { defer wg.Done(); _, runErr = Run(context.Background(), h.cfg) }()

	waitFor("30 100")
	during, err := unix.IoctlGetTermios(int(outerS.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if during.Lflag&(unix.ICANON|unix.ECHO|unix.ISIG) != 0 {
		t.Errorf("the terminal is not in raw input mode while the child runs: lflag %#x", during.Lflag)
	}
	if during.Oflag&unix.OPOST == 0 {
		t.Errorf("the terminal's output processing was turned off (prism-run's own lines would not start at the left)")
	}
	_, _ = outerM.Write([]byte("hello\r"))
	waitFor("got: hello")
	if err := pty.Setsize(outerM, &pty.Winsize{Rows: 40, Cols: 120}); err != nil {
		t.Fatal(err)
	}
	// The terminal's SIGWINCH goes to its foreground process group,
	// which this test is not in: sent as the kernel would.
	_ = unix.Kill(unix.Getpid(), unix.SIGWINCH)
	for end := time.Now().Add(10 * time.Second); !strings.Contains(screen.String(), "40 120") && time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		_, _ = outerM.Write([]byte("x\r"))
	}
	waitFor("40 120")
	_, _ = outerM.Write([]byte("end\r"))
	wg.Wait()
	if runErr != nil {
		t.Fatalf("Run: %v\nlogs:\n%s", runErr, h.logs)
	}
	after, err := unix.IoctlGetTermios(int(outerS.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if *after != *before {
		t.Errorf("the terminal's settings were not given back:\nbefore %+v\nafter  %+v", before, after)
	}
	// The child's echo of what was typed (the pty's, not the terminal's:
	// that one is off) shows once.
	if n := strings.Count(screen.String(), "hello"); n != 2 { // the echo, and "got: hello"
		t.Errorf("hello shown %d times, want 2 (the echo once, the answer once):\n%q", n, screen.String())
	}
	_ = outerS.Close()
	_ = outerM.Close()
	<-copied
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
