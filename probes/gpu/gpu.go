// Package gpu samples NVIDIA GPUs through NVML (go-nvml) for exactly the
// child's processes, and turns GPU health events into observations. It is
// the only package that imports go-nvml; the NVML library is injected
// (nvml.New() in production, go-nvml's mock servers in tests).
package gpu

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/prism-run/prism-run/policies"
)

// Library is the NVML entry point (nvml.Interface), re-exported so that
// callers can pass one without importing go-nvml.
type Library = nvml.Interface

// System returns the host's NVML (libnvidia-ml.so.1, loaded on Init).
func System() Library { return nvml.New() }

// ErrUnavailable wraps every reason NVML cannot be used.
var ErrUnavailable = errors.New("gpu: NVML unavailable")

// ErrNoSuchGPU: a GPU index was asked for that this host does not have.
var ErrNoSuchGPU = errors.New("gpu: no such GPU")

// Probe samples the GPUs a run may use.
type Probe struct {
	lib     Library
	visible []int // indices to watch; nil = all

	mu      sync.Mutex
	devices []device
	events  nvml.EventSet
	lost    map[int]bool
	// lastUtilTS is, per GPU, the newest per-process utilization sample
	// seen: NVML returns the samples since a timestamp.
	lastUtilTS map[int]uint64
}

type device struct {
	index int
	dev   nvml.Device
}

// New returns a probe over lib for the GPUs with the given indices (nil =
// every GPU). It does not touch NVML: call Init, which may be slow.
func New(lib Library, visible []int) *Probe {
	return &Probe{lib: lib, visible: visible, lost: map[int]bool{}, lastUtilTS: map[int]uint64{}}
}

func errOf(what string, r nvml.Return) error {
	return fmt.Errorf("%w: %s: %s", ErrUnavailable, what, nvml.ErrorString(r))
}

// Init loads and initialises NVML, finds the devices and registers for
// health events. nvmlInit wakes the driver and can take seconds without
// persistence mode: the caller runs it off the start path.
func (p *Probe) Init() (err error) {
	defer func() {
		// A library that cannot be loaded panics in go-nvml's dlopen path
		// on some versions; NVML must never crash prism-run.
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrUnavailable, r)
		}
	}()
	if r := p.lib.Init(); r != nvml.SUCCESS {
		return errOf("init", r)
	}
	n, r := p.lib.DeviceGetCount()
	if r != nvml.SUCCESS {
		return errOf("device count", r)
	}
	var devs []device
	for i := 0; i < n; i++ {
		if p.visible != nil && !slices.Contains(p.visible, i) {
			continue
		}
		d, r := p.lib.DeviceGetHandleByIndex(i)
		if r != nvml.SUCCESS {
			return errOf("device "+strconv.Itoa(i), r)
		}
		devs = append(devs, device{index: i, dev: d})
	}
	for _, v := range p.visible {
		if v >= n {
			return fmt.Errorf("%w: GPU %d asked for, %d present (indices 0..%d)", ErrNoSuchGPU, v, n, n-1)
		}
	}
	es, r := p.lib.EventSetCreate()
	if r == nvml.SUCCESS {
		for _, d := range devs {
			// Not every GPU supports every event; register what it does.
			_ = d.dev.RegisterEvents(nvml.EventTypeXidCriticalError|nvml.EventTypeDoubleBitEccError, es)
		}
	} else {
		es = nil
	}
	p.mu.Lock()
	p.devices, p.events = devs, es
	p.mu.Unlock()
	return nil
}

// Devices returns the indices being watched.
func (p *Probe) Devices() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []int
	for _, d := range p.devices {
		out = append(out, d.index)
	}
	return out
}

// Sample reads every watched GPU at time now and returns the run's GPU
// observations: gpu_memory_bytes (memory used by the processes in pids,
// compute and graphics, summed over GPUs), gpu_util (0..1, the mean
// utilization of the GPUs those processes use, or of all watched GPUs
// while they use none), gpu_process_util (what the tree's own processes
// drove, summed; 1 = one GPU's SMs fully), gpu_device_memory_used_bytes /
// _total_bytes (whole devices, whoever uses them), gpu_temp_c (the
// hottest), gpu_power_w (the sum).
// A GPU that stops answering becomes a `health` observation "gpu-lost"
// (once) and is skipped from then on.
func (p *Probe) Sample(now time.Time, pids map[int]bool) []policies.Observation {
	p.mu.Lock()
	defer p.mu.Unlock()
	var t tally
	var out []policies.Observation
	for _, d := range p.devices {
		if p.lost[d.index] {
			continue
		}
		if r := p.sampleDevice(d, pids, &t); r == nvml.ERROR_GPU_IS_LOST {
			out = append(out, p.loseDevice(d, now))
		}
	}
	return append(out, t.observations(now)...)
}

// tally adds up one sample over the GPUs.
type tally struct {
	mem                uint64
	utilSum, utilUsed  float64
	nUtil, nUsed       int
	temp, power        float64
	haveTemp, havePowr bool
	procUtil           float64
	haveProc           bool
	devUsed, devTotal  uint64
}

// sampleDevice adds one GPU to t. It returns ERROR_GPU_IS_LOST when the
// GPU stopped answering (nothing of it is added after that point).
func (p *Probe) sampleDevice(d device, pids map[int]bool, t *tally) nvml.Return {
	used := false
	for _, list := range []func() ([]nvml.ProcessInfo, nvml.Return){d.dev.GetComputeRunningProcesses, d.dev.GetGraphicsRunningProcesses} {
		procs, r := list()
		if r == nvml.ERROR_GPU_IS_LOST {
			return r
		}
		for _, pi := range procs {
			if pids[int(pi.Pid)] {
				t.mem += pi.UsedGpuMemory
				used = true
			}
		}
	}
	if u, r := d.dev.GetUtilizationRates(); r == nvml.SUCCESS {
		t.utilSum += float64(u.Gpu) / 100
		t.nUtil++
		if used {
			t.utilUsed += float64(u.Gpu) / 100
			t.nUsed++
		}
	} else if r == nvml.ERROR_GPU_IS_LOST {
		return r
	}
	if used {
		p.sampleProcessUtil(d, pids, t)
	}
	if mi, r := d.dev.GetMemoryInfo(); r == nvml.SUCCESS {
		t.devUsed, t.devTotal = t.devUsed+mi.Used, t.devTotal+mi.Total
	}
	if c, r := d.dev.GetTemperature(nvml.TEMPERATURE_GPU); r == nvml.SUCCESS {
		t.temp, t.haveTemp = max(t.temp, float64(c)), true
	}
	if mw, r := d.dev.GetPowerUsage(); r == nvml.SUCCESS {
		t.power, t.havePowr = t.power+float64(mw)/1000, true
	}
	return nvml.SUCCESS
}

// sampleProcessUtil adds what the tree's processes drove on d (SM percent
// since the last sample, summed over them).
func (p *Probe) sampleProcessUtil(d device, pids map[int]bool, t *tally) {
	samples, r := d.dev.GetProcessUtilization(p.lastUtilTS[d.index])
	if r != nvml.SUCCESS {
		return
	}
	for _, ps := range samples {
		if pids[int(ps.Pid)] {
			t.procUtil += float64(ps.SmUtil) / 100
			t.haveProc = true
		}
		p.lastUtilTS[d.index] = max(p.lastUtilTS[d.index], ps.TimeStamp)
	}
}

// observations turns the tally into the probe's observations.
func (t *tally) observations(now time.Time) []policies.Observation {
	obs := func(name string, v float64) policies.Observation {
		return policies.Observation{Time: now, Source: policies.SourceProbe, Name: name, Value: v}
	}
	out := []policies.Observation{obs(policies.NameGPUMemory, float64(t.mem))}
	switch {
	case t.nUsed > 0:
		out = append(out, obs(policies.NameGPUUtil, t.utilUsed/float64(t.nUsed)))
	case t.nUtil > 0:
		out = append(out, obs(policies.NameGPUUtil, t.utilSum/float64(t.nUtil)))
	}
	if t.haveProc {
		out = append(out, obs(policies.NameGPUProcessUtil, t.procUtil))
	}
	if t.devTotal > 0 {
		out = append(out, obs(policies.NameGPUDeviceUsed, float64(t.devUsed)), obs(policies.NameGPUDeviceTotal, float64(t.devTotal)))
	}
	if t.haveTemp {
		out = append(out, obs(policies.NameGPUTemp, t.temp))
	}
	if t.havePowr {
		out = append(out, obs(policies.NameGPUPower, t.power))
	}
	return out
}

func (p *Probe) loseDevice(d device, now time.Time) policies.Observation {
	p.lost[d.index] = true
	return health(now, "gpu-lost", d.index)
}

func health(now time.Time, event string, index int) policies.Observation {
	return policies.Observation{Time: now, Source: policies.SourceProbe, Name: policies.NameHealth, Text: event,
		Labels: map[string]string{"gpu": strconv.Itoa(index)}}
}

// WaitEvent waits up to timeout for one health event (critical Xid, or a
// double-bit ECC error) and returns it as an observation; ok is false when
// none came. A GPU that is lost while waiting is reported as "gpu-lost".
// Without an event set it sleeps for timeout and reports nothing. A call
// that reports nothing lasts the whole timeout, also when NVML answers at
// once with an error (a failing driver does, every time): a caller that
// waits in a loop never spins.
func (p *Probe) WaitEvent(timeout time.Duration) (policies.Observation, bool) {
	p.mu.Lock()
	es := p.events
	p.mu.Unlock()
	if es == nil {
		time.Sleep(timeout)
		return policies.Observation{}, false
	}
	start := time.Now()
	if o, ok := p.event(es, timeout); ok {
		return o, true
	}
	time.Sleep(time.Until(start.Add(timeout)))
	return policies.Observation{}, false
}

// event is one wait of the event set: the health event it returned, if any.
func (p *Probe) event(es nvml.EventSet, timeout time.Duration) (policies.Observation, bool) {
	data, r := es.Wait(uint32(timeout / time.Millisecond))
	now := time.Now()
	switch r {
	case nvml.SUCCESS:
	case nvml.ERROR_GPU_IS_LOST:
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, d := range p.devices {
			if !p.lost[d.index] && (data.Device == nil || data.Device == d.dev) {
				return p.loseDevice(d, now), true
			}
		}
		return policies.Observation{}, false
	default: // ERROR_TIMEOUT, or anything else: nothing to report
		return policies.Observation{}, false
	}
	index := p.indexOf(data.Device)
	switch {
	case data.EventType&nvml.EventTypeXidCriticalError != 0:
		return health(now, "xid:"+strconv.FormatUint(data.EventData, 10), index), true
	case data.EventType&nvml.EventTypeDoubleBitEccError != 0:
		return health(now, "ecc:double-bit", index), true
	}
	return policies.Observation{}, false
}

func (p *Probe) indexOf(d nvml.Device) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, x := range p.devices {
		if x.dev == d {
			return x.index
		}
	}
	return -1
}

// Close frees the event set and shuts NVML down.
func (p *Probe) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.events != nil {
		_ = p.events.Free()
		p.events = nil
	}
	if p.devices != nil {
		_ = p.lib.Shutdown()
		p.devices = nil
	}
}
