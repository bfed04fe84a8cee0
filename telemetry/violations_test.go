package telemetry

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/prism-run/prism-run/policies"
)

func TestViolationLogWritesWholeLinesInOrder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v.jsonl")
	v, err := OpenViolationLog(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		sev := policies.SeverityMedium
		if i%10 == 0 {
			sev = policies.SeverityCritical
		}
		v.Violation(Violation{RunID: "r", Attempt: i, Decision: policies.Decision{Rule: "x", Severity: sev, Action: policies.ActionLog, Reason: "why"}})
	}
	if err := v.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		var got Violation
		if err := json.Unmarshal(sc.Bytes(), &got); err != nil {
			t.Fatalf("line %d: %v", n+1, err)
		}
		if got.Attempt != n || got.Rule != "x" || got.RunID != "r" {
			t.Errorf("line %d: %+v", n+1, got)
		}
		n++
	}
	if n != 50 || v.Dropped() != 0 {
		t.Errorf("%d lines, %d dropped; want 50, 0", n, v.Dropped())
	}
}

// A log that cannot be written (a FIFO nobody reads: its writes block
// once the pipe is full) never blocks Add: the queue fills, the rest is
// counted, and Close gives up when its context says so.
func TestViolationLogNeverBlocks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fifo")
	if err := unix.Mkfifo(path, 0o600); err != nil {
		t.Skip(err)
	}
	// Held open for reading (never read), so that opening for writing
	// does not block.
	r, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	v, err := OpenViolationLog(path)
	if err != nil {
		t.Fatal(err)
	}
	big := string(make([]byte, 4096))
	done := make(chan struct{})
	go func() {
		for range 5 * ViolationQueue {
			v.Violation(Violation{Decision: policies.Decision{Rule: "x", Reason: big}})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Add blocked on a log that cannot be written")
	}
	if v.Dropped() == 0 {
		t.Error("nothing counted as dropped")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	closed := make(chan struct{})
	go func() { _ = v.Close(ctx); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not give up")
	}
}

// A timeline stays bounded whatever the run's length, and still spans
// all of it: a full series is thinned, not cut.
func TestTimelineBounded(t *testing.T) {
	start := time.Now()
	tl := NewTimeline(start)
	const n = 50 * TimelinePoints
	for i := range n {
		tl.Observe(policies.Observation{Time: start.Add(time.Duration(i) * time.Second), Source: policies.SourceStdout, Name: "loss", Value: float64(i)})
	}
	for i := range 2 * TimelineSeries {
		tl.Observe(policies.Observation{Time: start, Source: policies.SourceStdout, Name: fmt.Sprintf("m%d", i), Value: 1})
	}
	s := tl.Series["loss"]
	if len(s.T) >= TimelinePoints || len(s.T) < TimelinePoints/4 {
		t.Errorf("%d points kept of %d, want fewer than %d and not too few", len(s.T), n, TimelinePoints)
	}
	if last := s.T[len(s.T)-1]; last < 0.9*float64(n) {
		t.Errorf("the series ends at %gs of %ds: cut, not thinned", last, n)
	}
	if len(tl.Series) != TimelineSeries || tl.Dropped == 0 {
		t.Errorf("%d series, %d dropped; want %d and some", len(tl.Series), tl.Dropped, TimelineSeries)
	}
}
