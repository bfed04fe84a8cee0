package telemetry

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/prism-run/prism-run/policies"
)

// RecordingQueue bounds the lines a recording holds before they are
// written: past it, they are dropped and counted.
const RecordingQueue = 8192

// Recording writes what a run observed (--record): every observation of
// the child's markers and of the probes, and every signal sent to
// prism-run, with its time, in the format `prism-run replay` reads (an
// RFC 3339 timestamp, then a marker line: `TIME PRISM loss=0.31`), so a
// run can be replayed against a changed policy with its real timing.
// One observation is one line; a probe sample's labels (the GPU index)
// are not kept, and a signal is a line that is no marker (`TIME # signal
// SIGUSR1`). Like the violations log it never blocks: a bounded queue,
// what does not fit counted (Dropped).
type Recording struct {
	Nop
	w      *queuedFile
	prefix string
}

// OpenRecording opens path for appending, for markers that start with
// prefix (the run's), and writes the run's start at start: replay's
// clock starts there, so a deadline or a heartbeat counts from where the
// run's did, not from the first marker.
func OpenRecording(path, prefix string, start time.Time) (*Recording, error) {
	w, err := openQueued(path, RecordingQueue)
	if err != nil {
		return nil, fmt.Errorf("telemetry: recording: %w", err)
	}
	w.add(append(start.UTC().AppendFormat(nil, time.RFC3339Nano), " # prism-run started\n"...), false) // replay.StartLine
	return &Recording{w: w, prefix: prefix}, nil
}

// Observe queues one observation; it never blocks.
func (r *Recording) Observe(o policies.Observation) {
	b := make([]byte, 0, 64)
	b = o.Time.UTC().AppendFormat(b, time.RFC3339Nano) // the run stamps every observation
	if o.Source == policies.SourceProbe {
		b = append(b, " # probe "...) // replay.ProbePrefix: a sample of the host, not a marker of the child
	} else {
		b = append(b, ' ')
		b = append(b, r.prefix...)
		b = append(b, ' ')
	}
	b = append(b, o.Name...)
	b = append(b, '=')
	switch {
	case o.Text != "":
		b = strconv.AppendQuote(b, o.Text)
	case math.IsNaN(o.Value):
		b = append(b, "NaN"...)
	default:
		b = strconv.AppendFloat(b, o.Value, 'g', -1, 64)
	}
	r.w.add(append(b, '\n'), false)
}

// Signal queues a signal sent to prism-run, as a line replay passes
// over.
func (r *Recording) Signal(t time.Time, name string) {
	b := t.UTC().AppendFormat(nil, time.RFC3339Nano)
	r.w.add(append(append(b, " # signal "...), name+"\n"...), false)
}

// Ended writes the run's end at t: replay's clock runs to it, so a rule
// on time (a heartbeat, a deadline) that tripped after the last
// observation trips in replay too.
func (r *Recording) Ended(t time.Time) {
	r.w.add(append(t.UTC().AppendFormat(nil, time.RFC3339Nano), " # prism-run ended\n"...), false)
}

// Dropped counts the lines that did not fit in the queue.
func (r *Recording) Dropped() int64 { return r.w.dropped.Load() }

// Close writes what is queued, waiting no longer than ctx allows, and
// closes the file.
func (r *Recording) Close(ctx context.Context) error {
	if err := r.w.close(ctx); err != nil {
		return fmt.Errorf("telemetry: recording: %w", err)
	}
	return nil
}
