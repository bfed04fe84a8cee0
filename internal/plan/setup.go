package plan

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
	"k8s.io/utils/clock"

	"github.com/prism-run/prism-run/limits"
	"github.com/prism-run/prism-run/probes"
	"github.com/prism-run/prism-run/probes/gpu"
	"github.com/prism-run/prism-run/supervisor"
)

// Deps are a setup's seams to the host.
type Deps struct {
	// NVML returns the NVML library (gpu.System; tests pass a simulated
	// GPU server).
	NVML func() gpu.Library
	// Self is the prism-run executable the watchdog runs
	// ("" = /proc/self/exe).
	Self string
	// Stderr is where the watchdog reports, should prism-run die.
	Stderr io.Writer
	// Host is what the plan was made for (gaps found while setting up
	// are judged against it).
	Host Host
}

// nvmlStrictWait bounds how long a strict run waits for NVML before it
// refuses to start.
const nvmlStrictWait = 30 * time.Second

// Setup is what a run holds outside its child: the run's cgroup and its
// watchdog, the kernel log that names OOM victims, and the GPU probe.
// Close releases all of it (the cgroup itself is removed by the run).
type Setup struct {
	Cgroup   limits.Cgroup
	watchdog *limits.Watchdog
	kmsg     *limits.KernelLog
	GPU      *gpu.Background

	mu    sync.Mutex
	late  []Gap         // found after the start (LateGaps)
	stale chan struct{} // closed when the stale cgroups' sweep is over (nil: none)
}

// Prepare makes what the plan needs before its child starts. What turns
// out not to be enforceable here (the cgroup cannot be made, NVML is not
// there for GPU rules) is a gap like those New found: strict refuses
// (ErrRefused), otherwise one warning. The watchdog is started here,
// before supervisor.Run makes prism-run a subreaper (see
// limits.StartWatchdog).
func (p *Plan) Prepare(log zerolog.Logger, runID string, deps Deps) (*Setup, error) {
	if err := p.Refusal(); err != nil {
		return nil, err
	}
	for _, g := range p.Gaps {
		log.Warn().Str("setting", g.Setting).Msg("not enforced: " + g.Why)
	}
	s := &Setup{}
	if p.GPUs == nil || len(p.GPUs) > 0 {
		g, err := p.startGPU(log, deps.NVML, s)
		if err != nil {
			return nil, err
		}
		s.GPU = g
	}
	if err := p.makeCgroup(log, runID, deps, s); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// makeCgroup makes the run's own cgroup when this host allows it, with
// the plan's limits, and its watchdog and kernel log. Without limits
// asked for, a cgroup that cannot be made is no gap (the tree is then
// tracked through /proc).
func (p *Plan) makeCgroup(log zerolog.Logger, runID string, deps Deps, s *Setup) error {
	host := deps.Host.Cgroups
	if deps.Host.CgroupsErr != nil || p.HasCgroupGap() {
		return nil
	}
	// The stale cgroups of earlier runs are not this run's business
	// before its child starts: swept while it starts (Close waits).
	s.stale = make(chan struct{})
	go func() { defer close(s.stale); cleanStale(log, host) }()
	cg, err := limits.NewCgroup(host, host.RunCgroupName(runID), p.Cgroup)
	if err != nil {
		if p.Cgroup == (limits.CgroupSpec{}) {
			log.Debug().Err(err).Msg("no cgroup for this run; the process tree is tracked through /proc")
			return nil
		}
		// Limits were asked for, the host looked able to set them (no
		// gap), and making the cgroup failed: refuse, never run
		// unconfined because one limit failed.
		return fmt.Errorf("%w: cannot set them: %v; refusing to run unconfined (prism-run doctor says what this host can enforce)", ErrLimits, err)
	}
	log.Info().Str("cgroup", cg.Path()).Stringer("mode", cg.Mode()).Msg("run cgroup created")
	s.Cgroup = cg
	self := deps.Self
	if self == "" {
		self = "/proc/self/exe"
	}
	wd, err := limits.StartWatchdog(self, cg, deps.Stderr)
	if err != nil {
		log.Warn().Err(err).Msg("no watchdog: if prism-run is killed, what its child started lives on until the next prism-run starts")
	}
	s.watchdog = wd
	if kl, err := limits.OpenKernelLog("/dev/kmsg"); err != nil {
		log.Debug().Err(err).Msg("OOM victims will be counted, not named")
	} else {
		s.kmsg = kl
	}
	return nil
}

// startGPU starts NVML in the background: the child starts at once and
// GPU sampling begins when NVML is ready. Without a driver there is one
// warning, and a gap when GPU rules need it (s.LateGaps). A strict plan
// with GPU rules waits for NVML and refuses without it.
func (p *Plan) startGPU(log zerolog.Logger, nvml func() gpu.Library, s *Setup) (*gpu.Background, error) {
	mustHave := p.Strict && p.NeedsGPU
	probe := gpu.New(nvml(), p.GPUs)
	b := gpu.StartBackground(probe, func(err error) {
		switch {
		case err == nil:
			log.Info().Ints("gpus", probe.Devices()).Msg("GPU sampling started")
		case !mustHave && p.NeedsGPU:
			log.Warn().Err(err).Msg("GPU sampling unavailable; the policy's GPU rules will see nothing (prism-run doctor says more)")
			s.addLateGap(nvmlGap(err))
		case !mustHave:
			// No rule needs it: not worth a warning on a host without GPUs.
			log.Debug().Err(err).Msg("GPU sampling unavailable")
		}
	})
	if mustHave || len(p.GPUs) > 0 {
		// A strict plan needs NVML for its GPU rules; a --gpus list must
		// name GPUs this host has (bad input otherwise, as --dry-run says).
		err := b.Wait(nvmlStrictWait)
		switch {
		case errors.Is(err, gpu.ErrNoSuchGPU):
			b.Close()
			return nil, fmt.Errorf("%w: --gpus: %v", ErrInput, err)
		case err != nil && mustHave:
			b.Close()
			g := nvmlGap(err)
			p.Gaps = append(p.Gaps, g)
			return nil, refusal([]Gap{g})
		}
	}
	return b, nil
}

func nvmlGap(err error) Gap { return Gap{settingGPU, fmt.Sprintf("NVML: %v", err)} }

// ProbeGPU finds out, as a run would, whether NVML is there for the
// plan's GPU rules (it may take a driver some seconds to answer), and adds
// the gap if not: what --dry-run and doctor use in place of a run's
// background start.
// An index --gpus names that the host does not have is bad input
// (ErrInput), found here as a run finds it.
func (p *Plan) ProbeGPU(nvml func() gpu.Library) error {
	if !(p.NeedsGPU || len(p.GPUs) > 0) || p.hasGap(settingGPU) {
		return nil
	}
	probe := gpu.New(nvml(), p.GPUs)
	err := probe.Init()
	switch {
	case errors.Is(err, gpu.ErrNoSuchGPU):
		return fmt.Errorf("%w: --gpus: %v", ErrInput, err)
	case err != nil && p.NeedsGPU:
		p.Gaps = append(p.Gaps, nvmlGap(err))
	case err == nil:
		probe.Close()
	}
	return nil
}

// LateGaps are the gaps found after the run started (NVML failed in the
// background), for the report.
func (s *Setup) LateGaps() []Gap {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Gap(nil), s.late...)
}

func (s *Setup) addLateGap(g Gap) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.late = append(s.late, g)
}

// Close ends what Prepare started: the GPU probe, the kernel log, the
// run's cgroup if the run did not remove it (a failure before the
// supervisor took it), and the watchdog (told the run ended as it
// should). Safe on nil.
func (s *Setup) Close() {
	if s == nil {
		return
	}
	if s.Cgroup != nil {
		if _, err := os.Stat(s.Cgroup.ProcsFiles()[0]); err == nil {
			_ = limits.KillAndDelete(s.Cgroup, clock.RealClock{})
		}
	}
	if s.GPU != nil {
		s.GPU.Close()
	}
	if s.kmsg != nil {
		_ = s.kmsg.Close()
	}
	s.watchdog.Done()
	if s.stale != nil {
		<-s.stale
	}
}

// cleanStale removes the cgroups of earlier prism-runs that are provably
// gone (limits.CleanStale), saying what it did.
func cleanStale(log zerolog.Logger, host limits.Host) {
	removed, unknown, err := limits.CleanStale(host)
	if err != nil {
		log.Warn().Err(err).Msg("stale cgroups of an earlier prism-run")
	}
	if len(removed) > 0 {
		log.Info().Strs("cgroups", removed).Msg("removed the cgroups of a prism-run that is gone")
	}
	if len(unknown) > 0 {
		log.Debug().Strs("cgroups", unknown).Msg("left alone: run cgroups whose prism-run cannot be proved gone from here (another PID namespace, or an older prism-run's name)")
	}
}

// Config is the supervisor's configuration for the plan: its rules and
// timings, the confinement, and what Prepare made. The caller adds the
// command, its streams and the run's identity.
func (p *Plan) Config(s *Setup) supervisor.Config {
	pol := p.Policy
	cfg := supervisor.Config{
		KillAfter:         p.KillAfter,
		CheckpointTimeout: p.CheckpointTimeout,
		TickInterval:      p.SampleInterval,
		MarkerPrefix:      pol.MarkerPrefix,
		Patterns:          pol.Patterns,
		CheckpointSignal:  unix.SignalNum(pol.CheckpointSignal),
		DegradeSignal:     unix.SignalNum(pol.DegradeSignal),
		SendUnhandled:     pol.SendUnhandled,
		Rules:             pol.Rules,
		Rlimits:           p.Rlimits,
		NoNewPrivs:        p.NoNewPrivs,
		CleanEnv:          p.CleanEnv,
		IsolateNet:        p.IsolateNet && !p.hasGap("isolation.isolate_net"),
		KeepEnv:           p.KeepEnv,
		DefaultEnv:        p.DefaultEnv,
		Recovery:          pol.Recovery,
	}
	if !p.hasGap(settingUser) {
		cfg.UID, cfg.GID, cfg.Groups = p.UID, p.GID, p.Groups
	}
	if s == nil {
		return cfg
	}
	var usage probes.CgroupUsage
	if s.Cgroup != nil {
		cfg.Cgroup, cfg.CgroupLimits, usage = s.Cgroup, p.Cgroup, s.Cgroup
	}
	if s.kmsg != nil {
		cfg.KillLog = s.kmsg
	}
	if id := s.watchdog.Identity(); id.PID != 0 {
		cfg.Helpers = append(cfg.Helpers, id)
		cfg.OnRunFolder = s.watchdog.Guard
	}
	cfg.Samplers = []supervisor.Sampler{probes.NewHost(usage)}
	if s.GPU != nil {
		cfg.Samplers = append(cfg.Samplers, s.GPU)
		cfg.Watchers = []supervisor.Watcher{s.GPU}
	}
	return cfg
}
