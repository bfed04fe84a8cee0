//go:build gpu

// Real-NVML tests: `go test -tags gpu ./probes/gpu` on a machine with an
// NVIDIA driver (scripts/gpu-check.sh runs them). They skip nothing: on a
// machine without a GPU they fail, which is the point of the tag.
package gpu_test

import (
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/prism-run/prism-run/probes/gpu"
)

func TestRealNVML(t *testing.T) {
	p := gpu.New(gpu.System(), nil)
	start := time.Now()
	if err := p.Init(); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	t.Logf("NVML init took %s; GPUs %v", time.Since(start), p.Devices())
	if len(p.Devices()) == 0 {
		t.Fatal("no GPU")
	}
	v := values(p.Sample(time.Now(), map[int]bool{os.Getpid(): true}))
	for _, k := range []string{"gpu_memory_bytes", "gpu_util", "gpu_temp_c", "gpu_power_w", "gpu_device_memory_total_bytes"} {
		if _, ok := v[k]; !ok {
			t.Errorf("no %s: %v", k, v)
		}
	}
	t.Logf("sample: %v", v)
	// Health events: none expected; the wait must time out cleanly.
	if o, ok := p.WaitEvent(100 * time.Millisecond); ok {
		t.Logf("health event: %+v", o)
	}
}

// A process that allocates GPU memory shows in gpu_memory_bytes.
func TestRealProcessMemory(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	cmd := exec.Command(py, "-c", "import torch,time; x=torch.empty(512*1024*1024, dtype=torch.uint8, device='cuda'); print('ok', flush=True); time.sleep(5)")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	buf := make([]byte, 3)
	if _, err := out.Read(buf); err != nil {
		t.Skipf("torch not usable: %v", err)
	}
	p := gpu.New(gpu.System(), nil)
	if err := p.Init(); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	v := values(p.Sample(time.Now(), map[int]bool{cmd.Process.Pid: true}))
	if v["gpu_memory_bytes"] < 512<<20 {
		t.Errorf("gpu_memory_bytes %v for a process holding 512 MiB", v["gpu_memory_bytes"])
	}
}
