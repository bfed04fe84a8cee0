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
type SharedStderr struct {
	mu      sync.Mutex
	out     io.Writer
	midLine bool
}

// NewSharedStderr shares out between the child and the log.
func NewSharedStderr(out io.Writer) *SharedStderr { return &SharedStderr{out: out} }

// Child is the side the child's stderr passes through.
func (s *SharedStderr) Child() io.Writer { return childSide{s} }

// Log is the side prism-run's log writes to: one event per Write (zerolog
// writes each event whole).
func (s *SharedStderr) Log() io.Writer { return logSide{s} }

type childSide struct{ s *SharedStderr }

func (c childSide) Write(p []byte) (int, error) {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	n, err := c.s.out.Write(p)
	if n > 0 {
		c.s.midLine = p[n-1] != '\n'
	}
	return n, err
}

type logSide struct{ s *SharedStderr }

func (l logSide) Write(p []byte) (int, error) {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	if l.s.midLine && len(p) > 0 {
		if _, err := l.s.out.Write([]byte{'\n'}); err != nil {
			return 0, err
		}
		l.s.midLine = false
	}
	return l.s.out.Write(p)
}

// Fd lets the terminal check see through to stderr.
func (l logSide) Fd() uintptr {
	if f, ok := l.s.out.(fder); ok {
		return f.Fd()
	}
	return ^uintptr(0)
}
