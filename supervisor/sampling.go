package supervisor

import (
	"context"
	"os"
	"sync"
	"time"

	"github.com/prism-run/prism-run/internal/procfs"
	"github.com/prism-run/prism-run/policies"
)

// Sampler turns part of the host into observations (the host probe, the
// GPU probe). It is called on every sampling tick from the sampling
// goroutine, never from the event loop, with the pids of the run's tree.
type Sampler interface {
	Sample(now time.Time, tree map[int]bool) []policies.Observation
}

// Watcher reports events as they happen (GPU health) until ctx ends.
type Watcher interface {
	Watch(ctx context.Context, emit func(policies.Observation))
}

// startSampling runs the samplers on the tick and the watchers, handing
// what they find to the loop like the output pumps do; with samplers, their
// tick is the loop's (batch.tick). It returns a stop function that waits
// for them to end.
func (a *attempt) startSampling() func() {
	if len(a.r.cfg.Samplers) == 0 && len(a.r.cfg.Watchers) == 0 {
		return func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	send := func(b batch) {
		if len(b.obs) == 0 && !b.tick {
			return
		}
		select {
		case a.batches <- b:
		case <-ctx.Done():
		}
	}
	if len(a.r.cfg.Samplers) > 0 {
		tc := &treeCache{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := a.r.cfg.Clock.NewTicker(a.r.cfg.TickInterval)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C():
				}
				send(batch{obs: tc.sample(a, a.r.cfg.Clock.Now()), tick: true})
			}
		}()
	}
	for _, w := range a.r.cfg.Watchers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.Watch(ctx, func(o policies.Observation) { send(batch{obs: []policies.Observation{o}}) })
		}()
	}
	return func() {
		cancel()
		wg.Wait()
	}
}

// treeWalkEvery bounds how often the tree is found, by walking /proc (a
// read of every process's stat) or the run's cgroups (a cgroup.procs and
// a folder listing per controller and nested cgroup); in between, the
// last walk's pids are used. The host probe does not need it with a
// cgroup (it reads the cgroup's counters), and the GPU probe sees a new
// process of the tree at most this late. Reading it every tick was 70 %
// of an idle prism-run's CPU (BENCHMARKS.md).
const treeWalkEvery = time.Second

type treeCache struct {
	tree     map[int]bool
	lastWalk time.Time
}

// sample runs every sampler once.
func (tc *treeCache) sample(a *attempt, wall time.Time) []policies.Observation {
	if tc.tree == nil || wall.Sub(tc.lastWalk) >= treeWalkEvery {
		tc.tree, tc.lastWalk = a.treePids(), wall
	}
	now := a.r.cfg.Clock.Now()
	var obs []policies.Observation
	for _, sm := range a.r.cfg.Samplers {
		obs = append(obs, sm.Sample(now, tc.tree)...)
	}
	return obs
}

// treePids is the run's tree: its cgroup's processes, or prism-run's
// descendants (both, when the cgroup is v1 and something left it).
func (a *attempt) treePids() map[int]bool {
	tree := map[int]bool{a.pid: true}
	if a.r.foreignProc && a.r.cfg.Cgroup == nil {
		// The probes would read another namespace's processes by these
		// pids: nothing to sample without the cgroup.
		return map[int]bool{}
	}
	if cg := a.r.cfg.Cgroup; cg != nil {
		if pids, err := cg.Procs(); err == nil {
			for _, p := range pids {
				tree[p] = true
			}
			return tree
		}
	}
	if procs, err := a.processes(); err == nil {
		for _, p := range procfs.LiveDescendants(procs, os.Getpid()) {
			tree[p] = true
		}
	}
	return tree
}
