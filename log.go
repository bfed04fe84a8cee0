package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
)

type zerologger = zerolog.Logger

type logOptions struct {
	format, level, file string
}

// newLogger builds prism-run's own log: console lines that start with
// "prism-run:" (so they can be told from the child's stderr) on a
// terminal, JSON lines otherwise or when asked.
func newLogger(o logOptions, stderr io.Writer) (zerolog.Logger, func(), error) {
	level, err := zerolog.ParseLevel(o.level)
	if err != nil || o.level == "" {
		return zerolog.Nop(), nil, fmt.Errorf("%w: --log-level %q: want debug | info | warn | error", errUsage, o.level)
	}
	out, closeFn := stderr, func() {}
	if o.file != "" {
		f, err := os.OpenFile(o.file, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return zerolog.Nop(), nil, fmt.Errorf("%w: --log-file: %w", errUsage, err)
		}
		out, closeFn = f, func() { _ = f.Close() }
	}
	var w io.Writer
	switch o.format {
	case "json":
		w = out
	case "console":
		w = consoleWriter(out)
	case "auto":
		if f, ok := out.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
			w = consoleWriter(out)
		} else {
			w = out
		}
	default:
		closeFn()
		return zerolog.Nop(), nil, fmt.Errorf("%w: --log-format %q: want auto | console | json", errUsage, o.format)
	}
	// Milliseconds: a checkpoint round trip or a kill-after escalation is
	// measured in them. (A zerolog-wide setting; prism-run has one log.)
	zerolog.TimeFieldFormat = "2006-01-02T15:04:05.000Z07:00"
	return zerolog.New(w).Level(level).With().Timestamp().Logger(), closeFn, nil
}

func consoleWriter(out io.Writer) io.Writer {
	noColor := true
	if f, ok := out.(*os.File); ok {
		noColor = !isatty.IsTerminal(f.Fd()) || os.Getenv("NO_COLOR") != ""
	}
	return zerolog.ConsoleWriter{Out: &linePrefixer{out: out, prefix: []byte("prism-run: ")},
		NoColor: noColor, TimeFormat: "15:04:05.000"}
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
