package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/prism-run/prism-run/policies"
)

// AlertQueue bounds the alerts waiting to be sent: past it, they are
// dropped and counted, never waited for.
const AlertQueue = 256

// AlertOptions configure an Alerter; zero values take the defaults.
type AlertOptions struct {
	URLs    []string
	Min     policies.Severity // the lowest severity sent (default high)
	Host    string            // named in the text
	Timeout time.Duration     // each POST (default 5s)
	Tries   uint              // POSTs per alert and URL (default 4)
	Backoff time.Duration     // before the second try, doubling (default 500ms)
	Client  *http.Client      // default: one with Timeout
}

// Alerter POSTs violations at or above a severity to webhooks
// (--alert-webhook) as JSON with a `text` field, which Slack's and
// Mattermost's incoming webhooks show as they are. A slow, failing or
// unreachable endpoint never slows the run: violations go through a
// bounded queue to one sender goroutine, each POST has a timeout, a
// failure (a network error, a 429 or a 5xx) is retried with exponential
// backoff (cenkalti/backoff) a bounded number of times, and what is
// dropped or undelivered is counted.
type Alerter struct {
	Nop
	opt                   AlertOptions
	q                     chan Violation
	done                  chan struct{}
	ctx                   context.Context
	cancel                context.CancelFunc
	sent, failed, dropped atomic.Int64
}

// NewAlerter starts the sender.
func NewAlerter(opt AlertOptions) *Alerter {
	if opt.Min == 0 {
		opt.Min = policies.SeverityHigh
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 5 * time.Second
	}
	if opt.Tries == 0 {
		opt.Tries = 4
	}
	if opt.Backoff <= 0 {
		opt.Backoff = 500 * time.Millisecond
	}
	if opt.Client == nil {
		opt.Client = &http.Client{Timeout: opt.Timeout}
	}
	a := &Alerter{opt: opt, q: make(chan Violation, AlertQueue), done: make(chan struct{})}
	a.ctx, a.cancel = context.WithCancel(context.Background())
	go a.send()
	return a
}

// Violation queues v when its severity is high enough; it never blocks.
func (a *Alerter) Violation(v Violation) {
	if v.Severity < a.opt.Min {
		return
	}
	select {
	case a.q <- v:
	default:
		a.dropped.Add(1)
	}
}

// AlertBody is what a webhook receives.
type AlertBody struct {
	Text string `json:"text"` // one line for people (Slack, Mattermost)
	Host string `json:"host,omitempty"`
	Violation
}

func (a *Alerter) send() {
	defer close(a.done)
	for v := range a.q {
		if a.ctx.Err() != nil {
			continue // Close gave up: counted as dropped there
		}
		body := AlertBody{Violation: v, Host: a.opt.Host,
			Text: fmt.Sprintf("prism-run %s: rule %s (%s, %s): %s", v.RunID, v.Rule, v.Severity, v.Action, v.Reason)}
		if a.opt.Host != "" {
			body.Text += " on " + a.opt.Host
		}
		b, err := json.Marshal(body)
		if err != nil {
			a.failed.Add(1)
			continue
		}
		for _, url := range a.opt.URLs {
			if a.post(url, b) != nil {
				a.failed.Add(1)
			} else {
				a.sent.Add(1)
			}
		}
	}
}

// errRetry is a response worth another try.
var errRetry = errors.New("retry")

func (a *Alerter) post(url string, body []byte) error {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval = a.opt.Backoff, 30*time.Second
	_, err := backoff.Retry(a.ctx, func() (struct{}, error) {
		req, err := http.NewRequestWithContext(a.ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return struct{}{}, backoff.Permanent(err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := a.opt.Client.Do(req)
		if err != nil {
			return struct{}{}, err
		}
		_ = resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
			return struct{}{}, fmt.Errorf("%w: %s", errRetry, resp.Status)
		case resp.StatusCode >= 300:
			return struct{}{}, backoff.Permanent(fmt.Errorf("%s", resp.Status))
		}
		return struct{}{}, nil
	}, backoff.WithBackOff(b), backoff.WithMaxTries(a.opt.Tries))
	return err
}

// Sent, Failed and Dropped count the alerts delivered, those given up on
// after their tries, and those the queue could not take or that were
// still waiting when Close gave up (one per alert and URL for Sent and
// Failed).
func (a *Alerter) Sent() int64 { return a.sent.Load() }

// Failed counts the alerts given up on after their tries (see Sent).
func (a *Alerter) Failed() int64 { return a.failed.Load() }

// Dropped counts the alerts the queue could not take or Close gave up
// on (see Sent).
func (a *Alerter) Dropped() int64 { return a.dropped.Load() }

// Close sends what is queued, within ctx: the last alerts of a run go
// out before prism-run exits, but a dead endpoint does not hold the exit
// past ctx (what is left is counted as dropped).
func (a *Alerter) Close(ctx context.Context) {
	close(a.q)
	select {
	case <-a.done:
	case <-ctx.Done():
		a.dropped.Add(int64(len(a.q)))
		a.cancel() // the POST under way gives up
		<-a.done
	}
	a.cancel()
}
