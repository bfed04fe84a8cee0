package supervisor

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// ptyTerm is an attempt's pseudo-terminal (--pty): the child's stdout is
// its slave side, so the child's C library line-buffers stdout (stdio(3):
// a stream is line buffered when it refers to a terminal) and its markers
// arrive when printed, not when a 4 KiB buffer fills. prism-run reads the
// master side as it reads a pipe. stderr stays a pipe of its own: the two
// streams stay apart, and stderr is unbuffered in C anyway.
//
// When prism-run's stdin is a terminal, the child's stdin is the pty too
// (a person types to it), prism-run's terminal is put in raw input mode
// for the attempt (keys reach the child as typed: the pty's own line
// discipline, a copy of the terminal's settings, echoes and edits), and
// the pty's size follows the terminal's (SIGWINCH). Otherwise the child's
// stdin is prism-run's own, so it still meets the end of its input.
type ptyTerm struct {
	master, slave *os.File
	// stdin: the child's stdin is the slave as well.
	stdin bool
	// noStdin: prism-run's stdin is a terminal it is a background job of:
	// the child reads nothing (/dev/null). Its stdin cannot be that
	// terminal: the child leads a session of its own, so the kernel would
	// not stop it for reading there (SIGTTIN), and it would take the keys
	// typed to the shell.
	noStdin bool
	// outer is prism-run's terminal whose size the pty follows (nil: none,
	// 80x24).
	outer *os.File
	// saved is the outer terminal's settings before raw mode (nil: not
	// changed).
	saved *unix.Termios

	// unfollow ends follow's goroutine and waits for it (nil: none).
	unfollow func()
}

// isTerminal says whether f is a terminal (TCGETS succeeds).
func isTerminal(f *os.File) bool {
	if f == nil {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// openPTY makes the pty for a child whose stdin is stdin (nil: none) and
// whose output passes to stdout. The slave's output is raw (no OPOST: a
// "\n" is not turned into "\r\n") unless stdout is a terminal itself, so
// what reaches a file or pipe is byte for byte what the child wrote.
//
// A person is at the terminal only when prism-run is its foreground job:
// from a background job (`prism-run --pty ... &`), changing the
// terminal's modes would stop prism-run (SIGTTOU), so the terminal is
// left alone and the child's stdin is /dev/null. With uid (--user) the slave is the child's user's,
// as login(1) hands a terminal over, so it can open it by name.
func openPTY(stdin *os.File, stdout, stderr io.Writer, uid *int) (*ptyTerm, error) {
	master, slave, err := pty.Open()
	if err != nil {
		return nil, fmt.Errorf("--pty: %w", err)
	}
	// foregroundTerminal: a terminal, and prism-run its foreground job.
	_, fgErr := foregroundTerminal(stdin)
	t := &ptyTerm{master: master, slave: slave, stdin: fgErr == nil}
	t.noStdin = fgErr != nil && !errors.Is(fgErr, errNoTerminal)
	if uid != nil {
		if err := slave.Chown(*uid, -1); err != nil {
			t.close()
			return nil, fmt.Errorf("--pty: give the terminal to the child's user: %w", err)
		}
	}
	for _, w := range []any{stdin, stdout, stderr} {
		if f, ok := w.(*os.File); ok && t.outer == nil && isTerminal(f) {
			t.outer = f
		}
	}
	outTTY := false
	if f, ok := stdout.(*os.File); ok {
		outTTY = isTerminal(f)
	}
	if err := t.setModes(stdin, outTTY); err != nil {
		t.close()
		return nil, fmt.Errorf("--pty: %w", err)
	}
	t.resize()
	return t, nil
}

// setModes sets the slave's line discipline: the terminal's own settings
// when a person types to the child, raw otherwise; output processing off
// unless the output is a terminal. With a person at the terminal, it goes
// to raw input mode (its output processing kept, so prism-run's own log
// lines still start at the left).
func (t *ptyTerm) setModes(stdin *os.File, outTTY bool) error {
	sfd := int(t.slave.Fd())
	var tio *unix.Termios
	var err error
	if t.stdin {
		if tio, err = unix.IoctlGetTermios(int(stdin.Fd()), unix.TCGETS); err != nil {
			return err
		}
	} else {
		if tio, err = unix.IoctlGetTermios(sfd, unix.TCGETS); err != nil {
			return err
		}
		rawInput(tio)
	}
	if !outTTY {
		tio.Oflag &^= unix.OPOST
	}
	if err := unix.IoctlSetTermios(sfd, unix.TCSETS, tio); err != nil {
		return err
	}
	if !t.stdin {
		return nil
	}
	saved, err := unix.IoctlGetTermios(int(stdin.Fd()), unix.TCGETS)
	if err != nil {
		return err
	}
	raw := *saved
	rawInput(&raw)
	if err := unix.IoctlSetTermios(int(stdin.Fd()), unix.TCSETSW, &raw); err != nil {
		return err
	}
	t.saved, t.outer = saved, stdin
	return nil
}

// rawInput is cfmakeraw(3) without its output part: no echo, no line
// editing, no signals from keys, bytes as they come.
func rawInput(t *unix.Termios) {
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB
	t.Cflag |= unix.CS8
	t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
}

// resize gives the pty the outer terminal's size (80x24 without one);
// the kernel sends SIGWINCH to the pty's foreground process group when
// the size changes (tty_ioctl(4), TIOCSWINSZ).
func (t *ptyTerm) resize() {
	ws := &unix.Winsize{Row: 24, Col: 80}
	if t.outer != nil {
		if w, err := unix.IoctlGetWinsize(int(t.outer.Fd()), unix.TIOCGWINSZ); err == nil && w.Row > 0 && w.Col > 0 {
			ws = w
		}
	}
	_ = unix.IoctlSetWinsize(int(t.master.Fd()), unix.TIOCSWINSZ, ws)
}

// follow keeps the pty's size the outer terminal's while the attempt
// lasts (until stop).
func (t *ptyTerm) follow() {
	if t.outer == nil {
		return
	}
	winch, done, exited := make(chan os.Signal, 1), make(chan struct{}), make(chan struct{})
	signal.Notify(winch, unix.SIGWINCH)
	go func() {
		defer close(exited)
		for {
			select {
			case <-winch:
				t.resize()
			case <-done:
				return
			}
		}
	}()
	t.unfollow = func() {
		signal.Stop(winch)
		close(done)
		<-exited // no resize of a closed pty
	}
}

// stop ends what follow started and gives the outer terminal its
// settings back.
func (t *ptyTerm) stop() {
	if t.unfollow != nil {
		t.unfollow()
		t.unfollow = nil
	}
	if t.saved != nil {
		_ = unix.IoctlSetTermios(int(t.outer.Fd()), unix.TCSETSW, t.saved)
		t.saved = nil
	}
}

// close ends the pty: the terminal's settings back, both sides closed.
func (t *ptyTerm) close() {
	t.stop()
	_ = t.slave.Close()
	_ = t.master.Close()
}

// ptyInput forwards prism-run's stdin (a terminal) to the pty of the
// attempt running now: one reader for the whole run; what is typed
// between attempts is dropped. It waits in poll(2) with a timeout, not in
// read(2): a read of a terminal cannot be interrupted, and the reader
// must end with the run (close), not with the process.
type ptyInput struct {
	mu   sync.Mutex
	cur  *os.File
	quit chan struct{}
	done chan struct{}
}

// ptyPoll is how long the reader waits for a key before it looks
// whether the run is over.
const ptyPoll = 100 * time.Millisecond

// start reads in until close, or until in fails (the terminal hung up).
func (p *ptyInput) start(in *os.File) {
	p.quit, p.done = make(chan struct{}), make(chan struct{})
	fd := int(in.Fd())
	go func() {
		defer close(p.done)
		buf := make([]byte, 4096)
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			select {
			case <-p.quit:
				return
			default:
			}
			n, err := unix.Poll(fds, int(ptyPoll/time.Millisecond))
			if errors.Is(err, unix.EINTR) || n == 0 {
				continue
			}
			if err != nil || fds[0].Revents&(unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) != 0 && fds[0].Revents&unix.POLLIN == 0 {
				return
			}
			k, err := unix.Read(fd, buf)
			if k > 0 {
				// Written outside the lock: a child that reads nothing
				// blocks this reader, never the attempt's end (set).
				p.mu.Lock()
				cur := p.cur
				p.mu.Unlock()
				if cur != nil {
					_, _ = cur.Write(buf[:k])
				}
			}
			if k == 0 || err != nil && !errors.Is(err, unix.EINTR) && !errors.Is(err, unix.EAGAIN) {
				return
			}
		}
	}()
}

// set makes master the pty typed keys go to (nil: none).
func (p *ptyInput) set(master *os.File) {
	p.mu.Lock()
	p.cur = master
	p.mu.Unlock()
}

// close ends the reader (within ptyPoll, unless a write to a child that
// reads nothing holds it: that write ends when the pty closes).
func (p *ptyInput) close() {
	p.set(nil)
	close(p.quit)
	<-p.done
}
