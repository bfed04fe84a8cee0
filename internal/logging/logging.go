// Package logging sets up prism-run's own log (zerolog): console lines
// that start with "prism-run:" or JSON lines, on stderr or a file, and the
// stderr that the log shares with the child's stderr.
package logging

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
)

// ErrOption: a log option has a value it cannot take (exit 125).
var ErrOption = errors.New("log option")

// Options are the log flags.
type Options struct {
	Format string // auto | console | json
	Level  string // debug | info | warn | error
	File   string // "" = stderr; else appended to
}

// New builds prism-run's own log: human lines that start with
// "prism-run:" and a full timestamp (so they can be told from the child's
// stderr, and read in a CI log of a 23-hour run), or JSON lines when
// asked for.
func New(o Options, stderr io.Writer) (zerolog.Logger, func(), error) {
	level, err := zerolog.ParseLevel(o.Level)
	if err != nil || o.Level == "" {
		return zerolog.Nop(), nil, fmt.Errorf("%w: --log-level %q: want debug | info | warn | error", ErrOption, o.Level)
	}
	out, closeFn := stderr, func() {}
	if o.File != "" {
		f, err := os.OpenFile(o.File, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return zerolog.Nop(), nil, fmt.Errorf("%w: --log-file: %w", ErrOption, err)
		}
		out, closeFn = f, func() { _ = f.Close() }
	}
	var w io.Writer
	switch o.Format {
	case "json":
		w = out
	case "console", "auto": // auto: what earlier versions called their default
		w = consoleWriter(out)
	default:
		closeFn()
		return zerolog.Nop(), nil, fmt.Errorf("%w: --log-format %q: want console | json", ErrOption, o.Format)
	}
	// Milliseconds: a checkpoint round trip or a kill-after escalation is
	// measured in them. (A zerolog-wide setting; prism-run has one log.)
	zerolog.TimeFieldFormat = "2006-01-02T15:04:05.000Z07:00"
	return zerolog.New(w).Level(level).With().Timestamp().Logger(), closeFn, nil
}

func consoleWriter(out io.Writer) io.Writer {
	noColor := !isTerminal(out) || os.Getenv("NO_COLOR") != ""
	return zerolog.ConsoleWriter{Out: &linePrefixer{out: out, prefix: []byte("prism-run: ")},
		NoColor: noColor, TimeFormat: "2006-01-02T15:04:05.000Z07:00"}
}

// linePrefixer starts every line it writes with prefix. ConsoleWriter
// writes one event per Write, so a line is never split between calls.
type linePrefixer struct {
	mu     sync.Mutex
	out    io.Writer
	prefix []byte
	buf    []byte
}

func (l *linePrefixer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(p)
	l.buf = l.buf[:0]
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		line := p
		if i >= 0 {
			line = p[:i+1]
		}
		l.buf = append(append(l.buf, l.prefix...), line...)
		p = p[len(line):]
	}
	if _, err := l.out.Write(l.buf); err != nil {
		return 0, err
	}
	return n, nil
}

// fder is what a terminal check needs of a writer (*os.File has it).
type fder interface{ Fd() uintptr }

func isTerminal(w io.Writer) bool {
	f, ok := w.(fder)
	return ok && isatty.IsTerminal(f.Fd())
}

// SharedStderr is the stream that the child's stderr and prism-run's log
// share. It remembers whether the child left a line unfinished (a progress
// bar redrawn with "\r", a prompt, a crash mid-line) and then starts the
// log line on a new line: the log line stays whole, for a person and for a
// JSON-lines reader, and the child's bytes pass unchanged. The pump writes
// each read at once, so the child's own order is kept.
//
// On a terminal it also holds the live status line (SetStatus): drawn
// below the output, erased ("\r" and ESC[K, erase to the end of the line)
// before anything else is written to the terminal, the child's stdout
// included when it is the same terminal (Stdout), and drawn again after,
// but only where no line is left unfinished, so a progress bar or a
// prompt of the child is never written over.
type SharedStderr struct {
	mu      sync.Mutex
	out     io.Writer
	midLine bool
	// the status line: the text to show, whether it is on the screen,
	// and whether the child's stdout (on the same terminal) is mid-line.
	status    string
	shown     bool
	stdoutMid bool
}

// NewSharedStderr shares out between the child and the log.
func NewSharedStderr(out io.Writer) *SharedStderr { return &SharedStderr{out: out} }

// Child is the side the child's stderr passes through.
func (s *SharedStderr) Child() io.Writer { return childSide{s} }

// Log is the side prism-run's log writes to: one event per Write (zerolog
// writes each event whole).
func (s *SharedStderr) Log() io.Writer { return logSide{s} }

// Stdout wraps the child's stdout when it is the same terminal as stderr:
// the status line is erased before its bytes and drawn again after.
func (s *SharedStderr) Stdout(w io.Writer) io.Writer { return stdoutSide{s, w} }

// Terminal reports whether the shared stream is a terminal.
func (s *SharedStderr) Terminal() bool { return isTerminal(s.out) }

// SetStatus shows text as the status line ("" takes it away for good).
func (s *SharedStderr) SetStatus(text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.erase()
	s.status = text
	s.draw()
}

// erase takes the status line off the screen (the lock is held).
func (s *SharedStderr) erase() {
	if s.shown {
		_, _ = io.WriteString(s.out, "\r\x1b[K")
		s.shown = false
	}
}

// draw puts the status line on the screen where no line is unfinished
// (the lock is held).
func (s *SharedStderr) draw() {
	if s.status != "" && !s.midLine && !s.stdoutMid {
		_, _ = io.WriteString(s.out, s.status)
		s.shown = true
	}
}

type childSide struct{ s *SharedStderr }

func (c childSide) Write(p []byte) (int, error) {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	c.s.erase()
	n, err := c.s.out.Write(p)
	if n > 0 {
		c.s.midLine = p[n-1] != '\n'
	}
	c.s.draw()
	return n, err
}

type stdoutSide struct {
	s *SharedStderr
	w io.Writer
}

func (o stdoutSide) Write(p []byte) (int, error) {
	o.s.mu.Lock()
	defer o.s.mu.Unlock()
	o.s.erase()
	n, err := o.w.Write(p)
	if n > 0 {
		o.s.stdoutMid = p[n-1] != '\n'
	}
	o.s.draw()
	return n, err
}

type logSide struct{ s *SharedStderr }

func (l logSide) Write(p []byte) (int, error) {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	l.s.erase()
	if l.s.midLine && len(p) > 0 {
		if _, err := l.s.out.Write([]byte{'\n'}); err != nil {
			return 0, err
		}
		l.s.midLine = false
	}
	n, err := l.s.out.Write(p)
	l.s.draw()
	return n, err
}

// Fd lets the terminal check see through to stderr.
func (l logSide) Fd() uintptr {
	if f, ok := l.s.out.(fder); ok {
		return f.Fd()
	}
	return ^uintptr(0)
}
