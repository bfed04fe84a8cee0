package policies

import "strings"

// Canonical observation names: the metrics and events prism-run, its
// missions and its probes give a meaning to. Rules name metrics by these
// names whatever their source. This file is the one list: the probes
// and the supervisor use these constants, and a test checks that the
// design document lists exactly these.
const (
	// Printed by the child as markers.
	NameLatency      = "latency_ms"    // milliseconds one unit of work took
	NameIter         = "iter"          // iteration counter (converge-by's default counter)
	NameLoss         = "loss"          // training or objective loss
	NameEntropy      = "entropy"       // must not decrease (default mission)
	NameColors       = "colors"        // graph colouring: colours in use
	NameConsensus    = "consensus"     // ensemble agreement, 0..1
	NamePrivacySpent = "privacy_spent" // differential-privacy budget used so far
	NameConverged    = "converged"     // true once converged (converge-by's default)
	NameCheckpoint   = "checkpoint"    // text: a checkpoint's path; the acknowledgement of a request
	NameResult       = "result"        // text: the result (a hash, a path)
	NameHeartbeat    = "heartbeat"     // any value: the child is alive

	// Produced by the probes.
	NameMemory         = "memory_bytes"                  // the tree's memory (cgroup, or summed over its processes)
	NameCPU            = "cpu_ratio"                     // cores the tree used since the last sample
	NameOOMKills       = "oom_kills"                     // the kernel's OOM kills in the run's cgroup since the start
	NameForksRefused   = "forks_refused"                 // forks the run cgroup's pids limit refused since the start
	NameGPUMemory      = "gpu_memory_bytes"              // GPU memory used by the tree's processes, over its GPUs
	NameGPUUtil        = "gpu_util"                      // utilization of the GPUs the tree uses, 0..1
	NameGPUProcessUtil = "gpu_process_util"              // what the tree's processes drove, 0..1
	NameGPUDeviceUsed  = "gpu_device_memory_used_bytes"  // device memory in use, by anyone
	NameGPUDeviceTotal = "gpu_device_memory_total_bytes" // device memory in all
	NameGPUTemp        = "gpu_temp_c"                    // hottest GPU, degrees Celsius
	NameGPUPower       = "gpu_power_w"                   // power draw, watts
	// NameHealth is a GPU health event: Text is the event ("xid:79",
	// "ecc:double-bit", "gpu-lost"), Labels["gpu"] the GPU's index.
	NameHealth = "health"

	// From the child's sd_notify socket (NOTIFY_SOCKET).
	NameReady     = "ready"     // READY=1: the child finished starting
	NameStatus    = "status"    // text: STATUS=, the child's own account of what it does
	NameWatchdog  = "watchdog"  // WATCHDOG=1: a keep-alive (heartbeat rules)
	NameStopping  = "stopping"  // STOPPING=1
	NameReloading = "reloading" // RELOADING=1
	NameErrno     = "errno"     // ERRNO=N: the error the child failed with

	// From the clock.
	NameElapsed = "elapsed_s" // run time in seconds (time stopped by job control excluded)
)

// NameInfo is one canonical name and where it comes from.
type NameInfo struct {
	Name   string
	Source string // "marker", "probe", "notify" or "clock"
}

// Names lists the canonical names, markers first.
func Names() []NameInfo {
	var out []NameInfo
	for _, n := range []string{NameLatency, NameIter, NameLoss, NameEntropy, NameColors, NameConsensus,
		NamePrivacySpent, NameConverged, NameCheckpoint, NameResult, NameHeartbeat} {
		out = append(out, NameInfo{n, "marker"})
	}
	for _, n := range []string{NameMemory, NameCPU, NameOOMKills, NameForksRefused, NameGPUMemory, NameGPUUtil, NameGPUProcessUtil,
		NameGPUDeviceUsed, NameGPUDeviceTotal, NameGPUTemp, NameGPUPower, NameHealth} {
		out = append(out, NameInfo{n, "probe"})
	}
	for _, n := range []string{NameReady, NameStatus, NameWatchdog, NameStopping, NameReloading, NameErrno} {
		out = append(out, NameInfo{n, "notify"})
	}
	return append(out, NameInfo{NameElapsed, "clock"})
}

// IsGPUMetric reports whether only the GPU probe can feed a metric: a
// rule on one needs NVML.
func IsGPUMetric(name string) bool { return strings.HasPrefix(name, "gpu_") }
