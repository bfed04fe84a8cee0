// Package probes turns the host into Observations: the memory and CPU of
// the child's whole tree (from its cgroup when it has one, one read for
// every descendant, else summed over its processes with gopsutil), and,
// in probes/gpu, its GPUs through NVML.
package probes

import (
	"time"

	"github.com/shirou/gopsutil/v4/process"

	"github.com/prism-run/prism-run/limits"
	"github.com/prism-run/prism-run/policies"
)

// Observation names of the host probe (policies/names.go).
const (
	NameMemory = policies.NameMemory // the tree's resident memory
	NameCPU    = policies.NameCPU    // cores in use by the tree since the last sample
)

// CgroupUsage is what the host probe needs of the run's cgroup.
type CgroupUsage interface {
	Usage() (limits.Usage, error)
}

// Host samples the memory and CPU of the run's process tree.
type Host struct {
	cg       CgroupUsage // nil: sum over the tree's processes
	lastCPU  time.Duration
	lastTime time.Time
	procs    map[int32]*process.Process // gopsutil handles, kept between samples
}

// NewHost returns a host probe; cg may be nil.
func NewHost(cg CgroupUsage) *Host {
	return &Host{cg: cg, procs: map[int32]*process.Process{}}
}

// Sample reads the tree at time now: memory_bytes, and cpu_ratio from the
// second sample on.
func (h *Host) Sample(now time.Time, tree map[int]bool) []policies.Observation {
	var mem uint64
	var cpu time.Duration
	ok := false
	if h.cg != nil {
		if u, err := h.cg.Usage(); err == nil {
			mem, cpu, ok = u.MemoryCurrent, u.CPU, true
		}
	}
	if !ok {
		mem, cpu = h.sumTree(tree)
	}
	out := []policies.Observation{{Time: now, Source: policies.SourceProbe, Name: NameMemory, Value: float64(mem)}}
	if !h.lastTime.IsZero() && now.After(h.lastTime) {
		// A process that ended takes its CPU time out of a tree sum;
		// never report negative use.
		d := max(cpu-h.lastCPU, 0)
		out = append(out, policies.Observation{Time: now, Source: policies.SourceProbe, Name: NameCPU,
			Value: d.Seconds() / now.Sub(h.lastTime).Seconds()})
	}
	h.lastCPU, h.lastTime = cpu, now
	return out
}

// sumTree adds up resident memory and CPU time over the tree's processes.
func (h *Host) sumTree(tree map[int]bool) (uint64, time.Duration) {
	var mem uint64
	var cpu time.Duration
	for pid := range h.procs {
		if !tree[int(pid)] {
			delete(h.procs, pid)
		}
	}
	for pid := range tree {
		p, ok := h.procs[int32(pid)]
		if !ok {
			var err error
			if p, err = process.NewProcess(int32(pid)); err != nil {
				continue
			}
			h.procs[int32(pid)] = p
		}
		if mi, err := p.MemoryInfo(); err == nil {
			mem += mi.RSS
		}
		if t, err := p.Times(); err == nil {
			cpu += time.Duration((t.User + t.System) * float64(time.Second))
		}
	}
	return mem, cpu
}
