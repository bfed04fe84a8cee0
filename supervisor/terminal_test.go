package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/prism-run/prism-run/internal/procfs"
	"github.com/prism-run/prism-run/policies"
)

// The terminal tests run a small job-control shell on a pseudo-terminal,
// as a person at a terminal would: the test process is the terminal's
// user (it writes keys to the pty's master and reads the screen), the
// helper "shell" is the session leader that starts the supervisor as its
// foreground job, and the supervisor runs testchild. A shell is needed
// because the kernel discards Ctrl-Z's SIGTSTP for an orphaned process
// group (one whose parent lives in another session), which the supervisor
// would be if the test started it directly.

// ttyHelper runs the helper modes; TestMain calls it when PRISM_TEST_TTY
// is set.
func ttyHelper(mode string) int {
	switch mode {
	case "shell":
		if os.Getenv("PRISM_TEST_NOSHELL") == "1" {
			// No shell: the supervisor leads the session itself, and its
			// process group is orphaned (its parent is in another session).
			return superviseOnTTY()
		}
		return miniShell()
	case "supervise":
		return superviseOnTTY()
	}
	fmt.Fprintln(os.Stderr, "unknown PRISM_TEST_TTY mode", mode)
	return 2
}

// miniShell starts the supervisor as its foreground job, waits for it,
// and does what `fg` does whenever the job stops.
func miniShell() int {
	cmd := exec.Command(os.Args[0], os.Args[1:]...)
	cmd.Env = append(os.Environ(), "PRISM_TEST_TTY=supervise")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	// PRISM_TEST_BG=1: a job started with `&` (the terminal stays the
	// shell's).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Foreground: os.Getenv("PRISM_TEST_BG") != "1", Ctty: 0}
	if err := cmd.Start(); err != nil {
		fmt.Println("shell:", err)
		return 2
	}
	pid := cmd.Process.Pid
	fmt.Printf("shell: started %d\n", pid)
	for {
		var ws unix.WaitStatus
		if _, err := unix.Wait4(pid, &ws, unix.WUNTRACED, nil); errors.Is(err, unix.EINTR) {
			continue
		} else if err != nil {
			fmt.Println("shell:", err)
			return 2
		}
		if ws.Stopped() {
			fmt.Printf("shell: job stopped by %s\n", unix.SignalName(ws.StopSignal()))
			// The person types fg: at once, or when the test says so.
			if f := os.Getenv("PRISM_TEST_FG_FILE"); f != "" {
				for _, err := os.Stat(f); err != nil; _, err = os.Stat(f) {
					time.Sleep(10 * time.Millisecond)
				}
			}
			setForegroundGroup(pid)
			_ = unix.Kill(-pid, unix.SIGCONT)
			fmt.Println("shell: fg")
			continue
		}
		setForegroundGroup(unix.Getpgrp())
		fmt.Printf("shell: exit=%d\n", ws.ExitStatus())
		return 0
	}
}

func setForegroundGroup(pgid int) {
	signal.Ignore(unix.SIGTTOU)
	defer signal.Reset(unix.SIGTTOU)
	if err := unix.IoctlSetPointerInt(0, unix.TIOCSPGRP, pgid); err != nil {
		fmt.Println("shell: tcsetpgrp:", err)
	}
}

// superviseOnTTY is prism-run as the shell's job: the supervisor on the
// terminal, running os.Args[1:] (testchild when that is the test binary).
func superviseOnTTY() int {
	cfg := Config{
		Command:    os.Args[1:],
		Env:        append(os.Environ(), "PRISM_TESTCHILD=1", "GORACE=atexit_sleep_ms=0"),
		Stdin:      os.Stdin,
		Stdout:     os.Stdout,
		Stderr:     os.Stderr,
		Foreground: os.Getenv("PRISM_TEST_FOREGROUND") == "1",
		PTY:        os.Getenv("PRISM_TEST_PTY") == "1",
		RunID:      "tty",
		KillAfter:  5 * time.Second,
		Log:        zerolog.New(os.Stderr),
	}
	if d, err := time.ParseDuration(os.Getenv("PRISM_TEST_DEADLINE")); err == nil {
		r, err := policies.NewDeadline(policies.Meta{Name: "timeout", Action: policies.ActionStop}, d)
		if err != nil {
			panic(err)
		}
		cfg.Rules = append(cfg.Rules, r)
	}
	if d, err := time.ParseDuration(os.Getenv("PRISM_TEST_HEARTBEAT")); err == nil {
		r, err := policies.NewHeartbeat(policies.Meta{Name: "hung", Action: policies.ActionStop}, "beat", d)
		if err != nil {
			panic(err)
		}
		cfg.Rules = append(cfg.Rules, r)
	}
	sigs := make(chan os.Signal, 16)
	NotifySignals(sigs)
	cfg.Signals = sigs
	res, err := Run(context.Background(), cfg)
	if err != nil {
		fmt.Println("supervise:", err)
	}
	fmt.Printf("supervise: reason=%s escalated=%v\n", res.Reason, res.Escalated)
	return res.Exit
}

// screen is the test's side of the pseudo-terminal.
type screen struct {
	t      *testing.T
	master *os.File
	out    syncBuffer
	done   chan struct{}
	seen   int // how far expect has read
}

// openShell starts the mini shell on a new pseudo-terminal, with the
// supervisor running the command args.
func openShell(t *testing.T, env []string, args ...string) *screen {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	mfd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(mfd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetUint32(mfd, unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("ptsname: %v", err)
	}
	slave, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open the pty's terminal side: %v", err)
	}
	cmd := exec.Command(os.Args[0], args...) // the test binary, as the shell
	cmd.Env = append(append(os.Environ(), "PRISM_TEST_TTY=shell", "GORACE=atexit_sleep_ms=0"), env...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	// A new session whose controlling terminal is the pty (Ctty: the
	// child's stdin), as a login shell has.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	_ = slave.Close() // the master reads EIO once every process has closed it
	s := &screen{t: t, master: master, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			_, _ = s.out.Write(buf[:n])
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		select {
		case <-s.done:
		case <-time.After(5 * time.Second):
			t.Error("the terminal did not close")
		}
		_ = master.Close()
		if t.Failed() || testing.Verbose() {
			t.Logf("terminal:\n%s", s.out.String())
		}
	})
	return s
}

// expect waits for text to appear on the screen after what was expected
// before.
func (s *screen) expect(text string) {
	s.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		out := s.out.String()
		if i := strings.Index(out[s.seen:], text); i >= 0 {
			s.seen += i + len(text)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.t.Fatalf("%q did not appear on the terminal", text)
}

// absent fails the test if text was on the screen at any time.
func (s *screen) absent(text string) {
	s.t.Helper()
	if strings.Contains(s.out.String(), text) {
		s.t.Errorf("%q appeared on the terminal", text)
	}
}

// typeKeys writes to the terminal as a keyboard would.
func (s *screen) typeKeys(keys string) {
	s.t.Helper()
	if _, err := s.master.Write([]byte(keys)); err != nil {
		s.t.Fatal(err)
	}
}

func TestForegroundGivesTheChildTheTerminal(t *testing.T) {
	s := openShell(t, []string{"PRISM_TEST_FOREGROUND=1"}, os.Args[0], "readline")
	s.expect("ready")
	s.typeKeys("hello\n")
	s.expect("got: hello")
	s.expect("supervise: reason=exited")
	s.expect("shell: exit=0")
	s.absent("stopped") // the child read the terminal as its foreground job
}

// Ctrl-C reaches the child's group straight from the terminal.
func TestForegroundCtrlC(t *testing.T) {
	s := openShell(t, []string{"PRISM_TEST_FOREGROUND=1"}, os.Args[0], "readline")
	s.expect("ready")
	s.typeKeys("\x03")
	s.expect("supervise: reason=signaled")
	s.expect("shell: exit=130")
}

// Ctrl-Z stops the child, and prism-run stops with it so that the shell
// gets the terminal back; fg continues both, and the child has the
// terminal again.
func TestForegroundCtrlZ(t *testing.T) {
	s := openShell(t, []string{"PRISM_TEST_FOREGROUND=1"}, os.Args[0], "readline")
	s.expect("ready")
	s.typeKeys("\x1a")
	s.expect("suspending prism-run too")
	s.expect("shell: job stopped by SIGSTOP")
	s.expect("resumed: continuing the child") // the shell's fg
	s.typeKeys("hello\n")
	s.expect("got: hello")
	s.expect("shell: exit=0")
}

// Without --foreground a child that reads the terminal is stopped by the
// kernel (SIGTTIN): prism-run says so and how to fix it, and a policy stop
// still ends the stopped child at once: SIGCONT follows SIGTERM. The child
// is sh: a Go child can race its own SIGTERM handler against a reading
// thread that restarts read(2) and stops the process again (then the
// kill-after's SIGKILL ends it).
func TestBackgroundChildReadingTheTerminal(t *testing.T) {
	s := openShell(t, []string{"PRISM_TEST_DEADLINE=1s"}, "sh", "-c", "echo ready; read line; echo got: $line")
	// Not "ready" first: the warning (prism-run's stderr) may pass the
	// child's stdout, which goes through a pump.
	s.expect("run prism-run with --foreground")
	s.expect("supervise: reason=policy escalated=false") // no SIGKILL was needed
	s.expect("shell: exit=124")
}

// procState is the state letter of /proc/PID/stat (T: stopped).
func procState(t *testing.T, pid int) byte {
	t.Helper()
	st, err := procfs.ReadStat(procfs.Root, pid)
	if err != nil {
		t.Fatal(err)
	}
	return st.State
}

// Without --foreground, Ctrl-Z stops prism-run's group (the terminal's
// foreground): prism-run stops the child's group too, so the job stops as
// a whole instead of the child running on unseen, and continues it on fg.
func TestCtrlZStopsTheWholeJob(t *testing.T) {
	dir := t.TempDir()
	pidfile, fg := filepath.Join(dir, "child.pid"), filepath.Join(dir, "fg")
	s := openShell(t, []string{"PRISM_TEST_FG_FILE=" + fg}, os.Args[0], "pidfile", pidfile)
	var pid int
	for i := 0; i < 2000 && pid == 0; i++ {
		b, _ := os.ReadFile(pidfile)
		if f := strings.Fields(string(b)); len(f) == 2 {
			pid, _ = strconv.Atoi(f[0])
		}
		time.Sleep(10 * time.Millisecond)
	}
	if pid == 0 {
		t.Fatal("the child did not start")
	}
	s.typeKeys("\x1a")
	s.expect("SIGTSTP: stopping the child's process group, then prism-run")
	s.expect("shell: job stopped by SIGSTOP")
	if st := procState(t, pid); st != 'T' {
		t.Errorf("the child is in state %c while its job is stopped, want T", st)
	}
	if err := os.WriteFile(fg, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s.expect("continued: continuing the child")
	var st byte
	for i := 0; i < 500; i++ {
		if st = procState(t, pid); st != 'T' {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st == 'T' {
		t.Error("the child was not continued with its job")
	}
	s.typeKeys("\x03") // Ctrl-C reaches prism-run, which forwards it
	s.expect("shell: exit=130")
}

// The time a job spends stopped by Ctrl-Z is not run time for the rules:
// a heartbeat rule does not stop a job that was paused on purpose, longer
// than its timeout, as soon as it is continued.
func TestCtrlZPauseIsNotRunTime(t *testing.T) {
	fg := filepath.Join(t.TempDir(), "fg")
	// A heartbeat of 1s over beats every 50ms: a loaded machine does not
	// stretch a gap that far; the pause of 2.5s does.
	s := openShell(t, []string{"PRISM_TEST_FG_FILE=" + fg, "PRISM_TEST_HEARTBEAT=1s"}, os.Args[0], "beat", "50ms")
	s.expect("PRISM beat=3")
	s.typeKeys("\x1a")
	s.expect("shell: job stopped by SIGSTOP")
	time.Sleep(2500 * time.Millisecond) // the pause: well over the heartbeat's 1s
	if err := os.WriteFile(fg, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s.expect("the rules do not count that time")
	s.expect("PRISM beat=")             // beating again after fg
	time.Sleep(1200 * time.Millisecond) // past the heartbeat's timeout after fg
	s.typeKeys("\x03")
	s.expect("supervise: reason=signaled") // Ctrl-C ended it, not the heartbeat rule
	s.absent(`"rule":"hung"`)
}

// With no job-control shell above prism-run (its group is orphaned: no
// one could continue it), a child's Ctrl-Z does not stop prism-run, which
// would wait for ever: the child is continued, and keeps the terminal.
func TestForegroundCtrlZWithoutAShell(t *testing.T) {
	s := openShell(t, []string{"PRISM_TEST_FOREGROUND=1", "PRISM_TEST_NOSHELL=1"}, os.Args[0], "readline")
	s.expect("ready")
	s.typeKeys("\x1a")
	s.expect("no job-control shell is above prism-run: continuing it")
	s.typeKeys("hello\n")
	s.expect("got: hello")
	s.expect("supervise: reason=exited")
	s.absent("suspending prism-run")
}
