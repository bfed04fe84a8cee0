package telemetry

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prism-run/prism-run/policies"
)

func alert(sev policies.Severity) Violation {
	return Violation{RunID: "r1", Decision: policies.Decision{Rule: "gpu-hot", Severity: sev, Action: policies.ActionStop, Reason: "gpu_temp_c = 91"}}
}

func fast(urls ...string) AlertOptions {
	return AlertOptions{URLs: urls, Host: "node7", Timeout: 200 * time.Millisecond, Tries: 3, Backoff: 10 * time.Millisecond}
}

// An alert reaches the webhook with a text Slack and Mattermost show as it
// is; one below --alert-severity is not sent; a failing endpoint (500
// twice) gets it on the third try.
func TestAlertDeliveredAndRetried(t *testing.T) {
	var mu sync.Mutex
	var bodies []AlertBody
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= 2 {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		var b AlertBody
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("body: %v, content type %q", err, r.Header.Get("Content-Type"))
		}
		mu.Lock()
		bodies = append(bodies, b)
		mu.Unlock()
	}))
	defer srv.Close()
	a := NewAlerter(fast(srv.URL))
	a.Violation(alert(policies.SeverityMedium)) // below high: not sent
	a.Violation(alert(policies.SeverityCritical))
	a.Close(context.Background())
	if len(bodies) != 1 || calls.Load() != 3 || a.Sent() != 1 || a.Failed() != 0 {
		t.Fatalf("bodies %+v after %d calls; sent %d failed %d", bodies, calls.Load(), a.Sent(), a.Failed())
	}
	if want := "prism-run r1: rule gpu-hot (critical, stop): gpu_temp_c = 91 on node7"; bodies[0].Text != want || bodies[0].Rule != "gpu-hot" {
		t.Errorf("got %+v, text want %q", bodies[0], want)
	}
}

// An endpoint that is down or too slow is given up on after its tries,
// counted; the run never waits for it: Violation returns at once however
// many come, and Close gives up when its context says so.
func TestAlertNeverBlocks(t *testing.T) {
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close()
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(release)

	a := NewAlerter(fast(downURL))
	a.Violation(alert(policies.SeverityHigh))
	a.Close(context.Background())
	if a.Failed() != 1 || a.Sent() != 0 {
		t.Errorf("down: sent %d failed %d, want 0 and 1", a.Sent(), a.Failed())
	}

	b := NewAlerter(fast(slow.URL))
	start := time.Now()
	for range 10 * AlertQueue {
		b.Violation(alert(policies.SeverityCritical))
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("queuing took %s", d)
	}
	if b.Dropped() == 0 {
		t.Error("a full queue dropped nothing")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start = time.Now()
	b.Close(ctx)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %s with a context of 300ms", d)
	}
}
