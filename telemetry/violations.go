package telemetry

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync/atomic"

	"github.com/prism-run/prism-run/policies"
)

// Violation is one line of the violations log: a rule's decision, with
// the run and the attempt it happened in.
type Violation struct {
	RunID   string `json:"run_id"`
	Attempt int    `json:"attempt"`
	policies.Decision
}

// ViolationQueue bounds the violations waiting to be written: past it,
// they are dropped and counted, never waited for.
const ViolationQueue = 1024

// ViolationLog writes each violation as one JSON object per line to a
// file, as it happens (--violations). Add never blocks: a slow or stuck
// disk (an NFS home, a full pipe) fills a bounded queue, and what does
// not fit is counted (Dropped). Each line is one write(2) to a file
// opened O_APPEND, so whatever reached the file is whole lines, also
// after a SIGKILL of prism-run; a critical violation is fsync'd before
// the next line is written.
type ViolationLog struct {
	f       *os.File
	q       chan Violation
	done    chan struct{}
	dropped atomic.Int64
	err     atomic.Value // the first write error
}

// OpenViolationLog opens path for appending (made 0644 when missing) and
// starts its writer.
func OpenViolationLog(path string) (*ViolationLog, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("telemetry: violations log: %w", err)
	}
	v := &ViolationLog{f: f, q: make(chan Violation, ViolationQueue), done: make(chan struct{})}
	go v.write()
	return v, nil
}

// Add queues a violation; it never blocks.
func (v *ViolationLog) Add(x Violation) {
	select {
	case v.q <- x:
	default:
		v.dropped.Add(1)
	}
}

// Dropped counts the violations that did not fit in the queue.
func (v *ViolationLog) Dropped() int64 { return v.dropped.Load() }

func (v *ViolationLog) write() {
	defer close(v.done)
	for x := range v.q {
		b, err := json.Marshal(x)
		if err == nil {
			_, err = v.f.Write(append(b, '\n'))
		}
		if err == nil && x.Severity >= policies.SeverityCritical {
			err = v.f.Sync()
		}
		if err != nil {
			v.err.CompareAndSwap(nil, err)
		}
	}
}

// Close writes what is queued, waiting no longer than ctx allows (what is
// left then is counted as dropped), and closes the file. It returns the
// first write error.
func (v *ViolationLog) Close(ctx context.Context) error {
	close(v.q)
	select {
	case <-v.done:
	case <-ctx.Done():
		v.dropped.Add(int64(len(v.q)))
	}
	_ = v.f.Sync()
	cerr := v.f.Close()
	if err, ok := v.err.Load().(error); ok {
		return fmt.Errorf("telemetry: violations log: %w", err)
	}
	return cerr
}
