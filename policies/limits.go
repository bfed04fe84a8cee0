package policies

import "math"

// Bounds of [limits] values, from what the kernel accepts: a value
// outside them is refused when the policy is read (125, naming the
// field), never silently read as something else or refused by the kernel
// after the start.
const (
	// MinCPUs: the CFS quota must be at least 1 ms per period
	// (kernel/sched/core.c, tg_set_cfs_bandwidth: min_cfs_quota_period),
	// and prism-run's period is 100 ms.
	MinCPUs = 0.01
	// MaxCPUs: far beyond any machine, and well inside the kernel's
	// largest quota (MAX_BW, 2^44 µs per period).
	MaxCPUs = 1 << 20
	// MaxPids: pids.max takes at most PID_MAX_LIMIT (kernel/cgroup/pids.c).
	MaxPids = 1 << 22
	// MinMemory: one page; less reads as no memory at all
	// (page_counter_memparse rounds down to pages).
	MinMemory = 4096
)

// Check refuses a [limits] value the kernel would refuse or misread. Its
// errors are *FileError with the field in policy form ("limits.cpus").
func (l *Limits) Check() error {
	if l.Memory != nil && *l.Memory < MinMemory {
		return fieldErr("limits.memory", "must be at least %d bytes (one page)", MinMemory)
	}
	if l.MemoryHigh != nil && *l.MemoryHigh < MinMemory {
		return fieldErr("limits.memory_high", "must be at least %d bytes (one page)", MinMemory)
	}
	if l.Memory != nil && l.MemoryHigh != nil && *l.MemoryHigh > *l.Memory {
		// The kernel would take it, and the throttle would never act.
		return fieldErr("limits.memory_high", "must not be above limits.memory: the hard limit acts first, so the throttle never would")
	}
	if c := l.CPUs; c != nil && (math.IsNaN(*c) || *c < MinCPUs || *c > MaxCPUs) {
		return fieldErr("limits.cpus", "must be %g..%d cores (the kernel's smallest CFS quota is 1ms per 100ms period)", MinCPUs, MaxCPUs)
	}
	if t := l.CPUTime; t != nil && t.D() <= 0 {
		// setrlimit(2): the kernel takes an RLIMIT_CPU of 0 as 1 second
		// (kernel/sys.c do_prlimit), so zero cannot mean zero.
		return fieldErr("limits.cpu_time", "must be positive (the kernel takes an RLIMIT_CPU of 0 as 1 second)")
	}
	if p := l.Pids; p != nil && (*p < 1 || *p > MaxPids) {
		return fieldErr("limits.pids", "must be 1..%d (pids.max)", MaxPids)
	}
	for _, n := range []struct {
		field string
		v     *int64
	}{{"limits.nofile", l.Nofile}, {"limits.nproc", l.Nproc}} {
		if n.v != nil && *n.v < 0 {
			return fieldErr(n.field, "must not be negative")
		}
	}
	return nil
}
