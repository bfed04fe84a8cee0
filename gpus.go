package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/prism-run/prism-run/limits"
	"github.com/prism-run/prism-run/policies"
	"github.com/prism-run/prism-run/probes"
	"github.com/prism-run/prism-run/probes/gpu"
	"github.com/prism-run/prism-run/supervisor"
)

// parseGPUs reads --gpus: "" = every GPU (nil), "none" = no GPU sampling
// (empty), "0,2" = those, also given to the child as CUDA_VISIBLE_DEVICES.
func parseGPUs(s string) ([]int, []string, error) {
	switch strings.TrimSpace(s) {
	case "":
		return nil, nil, nil
	case "none":
		return []int{}, nil, nil
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 {
			return nil, nil, fmt.Errorf("%w: --gpus %q: want indices such as 0,2 (or none)", errUsage, s)
		}
		out = append(out, n)
	}
	return out, []string{"CUDA_VISIBLE_DEVICES=" + strings.ReplaceAll(s, " ", "")}, nil
}

// needsGPU reports whether a policy has a rule that only GPU samples can
// feed (a gpu_* metric, or GPU health).
func needsGPU(p *policies.Policy) bool {
	for _, r := range p.Rules {
		if r.Enabled != nil && !*r.Enabled {
			continue
		}
		if (r.Metric != nil && strings.HasPrefix(*r.Metric, "gpu_")) || (r.Kind != nil && *r.Kind == "health") {
			return true
		}
	}
	return false
}

// nvmlStrictWait bounds how long a strict run waits for NVML before it
// refuses to start.
const nvmlStrictWait = 30 * time.Second

// startGPU starts NVML in the background: the child starts at once and
// GPU sampling begins when NVML is ready. Without a driver there is one
// warning. Strict with GPU rules waits for NVML and refuses without it.
func startGPU(log zerologger, nvml func() gpu.Library, visible []int, mustHave bool) (*gpu.Background, error) {
	probe := gpu.New(nvml(), visible)
	b := gpu.StartBackground(probe, func(err error) {
		switch {
		case err == nil:
			log.Info().Ints("gpus", probe.Devices()).Msg("GPU sampling started")
		case !mustHave:
			log.Warn().Err(err).Msg("GPU sampling unavailable; GPU rules will see nothing (prism-run doctor says more)")
		}
	})
	if mustHave {
		if err := b.Wait(nvmlStrictWait); err != nil {
			b.Close()
			return nil, fmt.Errorf("%w: cannot enforce the policy's GPU rules: %v", errStrict, err)
		}
	}
	return b, nil
}

func samplers(cg limits.Cgroup, g *gpu.Background) []supervisor.Sampler {
	var host probes.CgroupUsage
	if cg != nil {
		host = cg
	}
	out := []supervisor.Sampler{probes.NewHost(host)}
	if g != nil {
		out = append(out, g)
	}
	return out
}

func watchers(g *gpu.Background) []supervisor.Watcher {
	if g == nil {
		return nil
	}
	return []supervisor.Watcher{g}
}
