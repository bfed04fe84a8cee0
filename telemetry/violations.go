package telemetry

import (
	"context"
	"encoding/json"
	"fmt"

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
	Nop
	w *queuedFile
}

// OpenViolationLog opens path for appending (made 0644 when missing) and
// starts its writer.
func OpenViolationLog(path string) (*ViolationLog, error) {
	w, err := openQueued(path, ViolationQueue)
	if err != nil {
		return nil, fmt.Errorf("telemetry: violations log: %w", err)
	}
	return &ViolationLog{w: w}, nil
}

// Violation queues a violation; it never blocks.
func (v *ViolationLog) Violation(x Violation) {
	b, err := json.Marshal(x)
	if err != nil {
		v.w.dropped.Add(1)
		return
	}
	v.w.add(append(b, '\n'), x.Severity >= policies.SeverityCritical)
}

// Dropped counts the violations that did not fit in the queue.
func (v *ViolationLog) Dropped() int64 { return v.w.dropped.Load() }

// Close writes what is queued, waiting no longer than ctx allows (what is
// left then is counted as dropped), and closes the file. It returns the
// first write error.
func (v *ViolationLog) Close(ctx context.Context) error {
	if err := v.w.close(ctx); err != nil {
		return fmt.Errorf("telemetry: violations log: %w", err)
	}
	return nil
}
