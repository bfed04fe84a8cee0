package telemetry

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
)

// queuedFile appends lines to a file from a goroutine of its own, so
// that the event loop hands a line over and goes on: the queue is
// bounded, and a line that does not fit is counted, never waited for.
// Each line is one write(2) to a file opened O_APPEND, so whatever
// reached the file is whole lines, also after a SIGKILL.
type queuedFile struct {
	f       *os.File
	q       chan queuedLine
	done    chan struct{}
	dropped atomic.Int64
	err     atomic.Value // the first write error
}

type queuedLine struct {
	b    []byte
	sync bool // fsync after it
}

// openQueued opens path for appending (made 0644 when missing) and
// starts its writer, with room for n lines.
func openQueued(path string, n int) (*queuedFile, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	w := &queuedFile{f: f, q: make(chan queuedLine, n), done: make(chan struct{})}
	go w.write()
	return w, nil
}

// add queues one line (ending in a newline); it never blocks.
func (w *queuedFile) add(b []byte, sync bool) {
	select {
	case w.q <- queuedLine{b, sync}:
	default:
		w.dropped.Add(1)
	}
}

func (w *queuedFile) write() {
	defer close(w.done)
	for l := range w.q {
		_, err := w.f.Write(l.b)
		if err == nil && l.sync {
			err = w.f.Sync()
		}
		if err != nil {
			w.err.CompareAndSwap(nil, err)
		}
	}
}

// close writes what is queued, waiting no longer than ctx allows (what is
// left then is counted as dropped), and closes the file. It returns the
// first write error.
func (w *queuedFile) close(ctx context.Context) error {
	close(w.q)
	select {
	case <-w.done:
	case <-ctx.Done():
		w.dropped.Add(int64(len(w.q)))
	}
	_ = w.f.Sync()
	cerr := w.f.Close()
	if err, ok := w.err.Load().(error); ok {
		return fmt.Errorf("%s: %w", w.f.Name(), err)
	}
	return cerr
}
