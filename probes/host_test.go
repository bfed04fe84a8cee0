package probes

import (
	"os"
	"os/exec"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/prism-run/prism-run/limits"
)

type fakeCgroup struct{ u limits.Usage }

func (f *fakeCgroup) Usage() (limits.Usage, error) { return f.u, nil }

func TestHostFromCgroup(t *testing.T) {
	cg := &fakeCgroup{limits.Usage{MemoryCurrent: 300 << 20, CPU: time.Second}}
	h := NewHost(cg)
	t0 := time.Now()
	obs := h.Sample(t0, nil)
	if len(obs) != 1 || obs[0].Name != NameMemory || obs[0].Value != 300<<20 {
		t.Fatalf("first sample %+v", obs)
	}
	cg.u.CPU = 2 * time.Second // one CPU-second in half a second: two cores
	obs = h.Sample(t0.Add(500*time.Millisecond), nil)
	if len(obs) != 2 || obs[1].Name != NameCPU || obs[1].Value != 2 {
		t.Fatalf("second sample %+v", obs)
	}
}

// Without a cgroup, the tree's processes are summed (for real: this test
// process and a child that holds memory).
func TestHostFromProcesses(t *testing.T) {
	cmd := exec.Command("sleep", "5")
	if err := cmd.Start(); err != nil {
		t.Skip(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	h := NewHost(nil)
	tree := map[int]bool{os.Getpid(): true, cmd.Process.Pid: true, 1 << 30: true /* gone */}
	t1, cpu1 := time.Now(), selfCPU(t)
	obs := h.Sample(t1, tree)
	if obs[0].Value < 1<<20 {
		t.Errorf("memory_bytes %v: less than a MiB for a Go test and sleep", obs[0].Value)
	}
	// Burn 200 ms of CPU (not of wall time: a busy machine stretches the
	// wall, and the ratio with it), then compare the probe's cores with
	// what the kernel says this process used over the same span.
	for selfCPU(t)-cpu1 < 200*time.Millisecond {
	}
	t2, cpu2 := time.Now(), selfCPU(t)
	obs = h.Sample(t2, tree)
	want := (cpu2 - cpu1).Seconds() / t2.Sub(t1).Seconds()
	if len(obs) != 2 || obs[1].Name != NameCPU || obs[1].Value < 0.7*want-0.05 || obs[1].Value > 1.3*want+0.05 {
		t.Errorf("cpu_ratio %+v, want about %.3f (the kernel's figure for this process)", obs, want)
	}
}

// selfCPU is the CPU time this process has used (user + system).
func selfCPU(t *testing.T) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkHostSample is the host half of one sampling tick, summed over
// a tree of this process.
func BenchmarkHostSample(b *testing.B) {
	h := NewHost(nil)
	tree := map[int]bool{os.Getpid(): true}
	for b.Loop() {
		h.Sample(time.Now(), tree)
	}
}
