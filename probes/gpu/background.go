package gpu

import (
	"context"
	"sync"
	"time"

	"github.com/prism-run/prism-run/policies"
)

// Background runs a probe's Init off the start path: the child starts at
// once, and GPU sampling begins when NVML is ready (or never, when it
// cannot be). It is a supervisor Sampler and Watcher.
type Background struct {
	p     *Probe
	ready chan struct{} // closed when Init has returned
	err   error
	once  sync.Once
}

// StartBackground starts p.Init in its own goroutine and calls done with
// its result (nil: sampling has begun).
func StartBackground(p *Probe, done func(error)) *Background {
	b := &Background{p: p, ready: make(chan struct{})}
	go func() {
		b.err = p.Init()
		close(b.ready)
		if done != nil {
			done(b.err)
		}
	}()
	return b
}

// Ready reports whether Init has returned, and with what.
func (b *Background) Ready() (bool, error) {
	select {
	case <-b.ready:
		return true, b.err
	default:
		return false, nil
	}
}

// Wait blocks until Init has returned or timeout passes.
func (b *Background) Wait(timeout time.Duration) error {
	select {
	case <-b.ready:
		return b.err
	case <-time.After(timeout):
		return ErrUnavailable
	}
}

// Sample implements supervisor.Sampler: nothing until NVML is ready.
func (b *Background) Sample(now time.Time, tree map[int]bool) []policies.Observation {
	if ok, err := b.Ready(); !ok || err != nil {
		return nil
	}
	return b.p.Sample(now, tree)
}

// Watch implements supervisor.Watcher: health events until ctx ends.
func (b *Background) Watch(ctx context.Context, emit func(policies.Observation)) {
	select {
	case <-b.ready:
	case <-ctx.Done():
		return
	}
	if b.err != nil {
		return
	}
	for ctx.Err() == nil {
		// A short wait, so that the end of the run is not held up.
		if o, ok := b.p.WaitEvent(100 * time.Millisecond); ok {
			emit(o)
		}
	}
}

// Close shuts the probe down once Init has returned.
func (b *Background) Close() {
	b.once.Do(func() {
		go func() {
			<-b.ready
			b.p.Close()
		}()
	})
}
