package probes

import (
	"os"
	"os/exec"
	"testing"
	"time"

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
	obs := h.Sample(time.Now(), tree)
	if obs[0].Value < 1<<20 {
		t.Errorf("memory_bytes %v: less than a MiB for a Go test and sleep", obs[0].Value)
	}
	busy := time.Now().Add(200 * time.Millisecond)
	for time.Now().Before(busy) {
	}
	obs = h.Sample(time.Now(), tree)
	if len(obs) != 2 || obs[1].Value < 0.2 || obs[1].Value > 4 {
		t.Errorf("cpu_ratio %+v after a busy loop", obs)
	}
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
