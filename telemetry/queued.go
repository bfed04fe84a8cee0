package telemetry

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"
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

// CheckAppendable finds before the start what opening path for
// appending would fail on (a folder, no permission, a FIFO nobody reads),
// as openQueued opens it; a missing file is made, as the run would.
func CheckAppendable(path string) error {
	if path == "" {
		return nil
	}
	fd, err := openAppend(path)
	if err != nil {
		return err
	}
	return unix.Close(fd)
}

func openAppend(path string) (int, error) {
	// O_NONBLOCK for the open alone: opening a FIFO that nobody reads
	// would block prism-run before its child ever starts (open(2)); with
	// it the open fails at once (ENXIO), and is refused.
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_APPEND|unix.O_NONBLOCK|unix.O_CLOEXEC, 0o644)
	switch {
	case errors.Is(err, unix.ENXIO):
		return -1, fmt.Errorf("%s is a FIFO that nobody reads", path)
	case errors.Is(err, unix.EISDIR):
		return -1, fmt.Errorf("%s is a folder", path)
	case err != nil:
		return -1, err
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		_ = unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// openQueued opens path for appending (made 0644 when missing) and
// starts its writer, with room for n lines.
func openQueued(path string, n int) (*queuedFile, error) {
	fd, err := openAppend(path)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), path)
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
		if err != nil {
			w.dropped.Add(1) // lost as surely as one the queue could not take
		} else if l.sync {
			err = syncFile(w.f)
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
	_ = syncFile(w.f)
	cerr := w.f.Close()
	if err, ok := w.err.Load().(error); ok {
		return fmt.Errorf("%s: %w", w.f.Name(), err)
	}
	return cerr
}

// syncFile is fsync(2), where there is something to sync: a pipe or a
// terminal (--violations /dev/stdout) answers EINVAL, which loses nothing.
func syncFile(f *os.File) error {
	if err := f.Sync(); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOTSUP) {
		return err
	}
	return nil
}
