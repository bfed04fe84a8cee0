package policies

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"
)

// MaxFileSize bounds a policy file: a policy is a few kilobytes, and an
// endless one (/dev/zero, a log file named by mistake) must not take
// prism-run's memory before it is refused.
const MaxFileSize = 4 << 20

// MaxNesting bounds how deep arrays and inline tables nest in a policy
// (a policy needs three levels). The TOML decoder's time and memory grow
// with the square of the depth of nested inline tables (8000 levels, a
// 48 KB file: 26 s and 2.7 GB), so a deeper file is refused before it is
// decoded.
const MaxNesting = 64

// fifoWait bounds the wait for a writer of a FIFO named as a policy
// (`--policy <(generate)` has one at once; a FIFO nobody writes to would
// block the open for ever).
var fifoWait = 5 * time.Second

// readFile reads a policy file, at most MaxFileSize bytes of it; a FIFO,
// a device or a socket is opened off the caller's goroutine, and refused
// when the open has not returned within fifoWait.
func readFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		return nil, errors.New("is a directory")
	}
	type opened struct {
		f   *os.File
		err error
	}
	ch, abandoned := make(chan opened), make(chan struct{})
	go func() {
		f, err := os.Open(path)
		select {
		case ch <- opened{f, err}:
		case <-abandoned: // a writer came too late
			if err == nil {
				_ = f.Close()
			}
		}
	}()
	var o opened
	if fi.Mode().IsRegular() {
		o = <-ch
	} else {
		select {
		case o = <-ch:
		case <-time.After(fifoWait):
			// The goroutine stays blocked in open(2) until a writer comes.
			close(abandoned)
			return nil, fmt.Errorf("a %s that nobody writes to (waited %s)", kindOf(fi.Mode()), fifoWait)
		}
	}
	if o.err != nil {
		return nil, o.err
	}
	defer o.f.Close()
	b, err := io.ReadAll(io.LimitReader(o.f, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxFileSize {
		return nil, fmt.Errorf("larger than %d MiB: not a policy", MaxFileSize>>20)
	}
	return b, nil
}

func kindOf(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "FIFO"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	}
	return "file"
}

// nestingError is a *FileError when arrays and inline tables nest deeper
// than MaxNesting in src, read as TOML's lexer would (brackets inside
// strings and comments do not count).
func nestingError(name string, src []byte) error {
	depth, line, lineStart := 0, 1, 0
	for i := 0; i < len(src); i++ {
		switch c := src[i]; c {
		case '\n':
			line, lineStart = line+1, i+1
		case '#':
			for i+1 < len(src) && src[i+1] != '\n' {
				i++
			}
		case '"', '\'':
			end, ok := stringEnd(src, i)
			if !ok {
				return nil // unterminated: the decoder says where
			}
			for _, b := range src[i:end] {
				if b == '\n' {
					line++
				}
			}
			if n := bytes.LastIndexByte(src[i:end], '\n'); n >= 0 {
				lineStart = i + n + 1
			}
			i = end - 1
		case '[', '{':
			if depth++; depth > MaxNesting {
				return &FileError{File: name, Line: line, Col: i - lineStart + 1,
					Msg: fmt.Sprintf("arrays and inline tables nested deeper than %d levels", MaxNesting)}
			}
		case ']', '}':
			depth = max(0, depth-1)
		}
	}
	return nil
}

// stringEnd returns the index just past the TOML string that starts at
// src[i] (a quote): basic "..." and literal '...' strings end at their
// line, multi-line ones (""" and ”') at their closing triple; basic ones
// skip backslash escapes.
func stringEnd(src []byte, i int) (int, bool) {
	q := src[i]
	delim := []byte{q}
	if bytes.HasPrefix(src[i:], []byte{q, q, q}) {
		delim = []byte{q, q, q}
	}
	for j := i + len(delim); j < len(src); j++ {
		switch {
		case q == '"' && src[j] == '\\':
			j++
		case len(delim) == 1 && src[j] == '\n':
			return 0, false
		case bytes.HasPrefix(src[j:], delim):
			end := j + len(delim)
			for len(delim) == 3 && end < len(src) && src[end] == q && end-j < 5 {
				end++ // """a"""" : up to two quotes of the content before the closing triple
			}
			return end, true
		}
	}
	return 0, false
}
