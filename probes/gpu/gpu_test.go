package gpu_test

import (
	"errors"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"

	"github.com/prism-run/prism-run/policies"
	"github.com/prism-run/prism-run/probes/gpu"
	"github.com/prism-run/prism-run/probes/gpu/gputest"
)

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func values(obs []policies.Observation) map[string]float64 {
	out := map[string]float64{}
	for _, o := range obs {
		out[o.Name] = o.Value
	}
	return out
}

func TestMemoryOfTheTreeOnly(t *testing.T) {
	s := gputest.New()
	s.SetProcess(0, 100, 3<<30, false)  // the child
	s.SetProcess(1, 101, 2<<30, false)  // its worker, on another GPU
	s.SetProcess(1, 102, 1<<30, true)   // its viewer (graphics)
	s.SetProcess(0, 999, 40<<30, false) // someone else's job
	s.SetUtil(0, 90)
	s.SetUtil(1, 70)
	s.SetUtil(2, 0)
	p := gpu.New(s, nil)
	if err := p.Init(); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if got := p.Devices(); len(got) != 8 {
		t.Fatalf("devices %v", got)
	}
	v := values(p.Sample(t0, map[int]bool{100: true, 101: true, 102: true}))
	if v["gpu_memory_bytes"] != 6<<30 {
		t.Errorf("gpu_memory_bytes = %v, want 6 GiB (the tree's, not pid 999's)", v["gpu_memory_bytes"])
	}
	if v["gpu_util"] != 0.8 { // mean of the two GPUs the tree uses
		t.Errorf("gpu_util = %v, want 0.8", v["gpu_util"])
	}
	if v["gpu_process_util"] != 1.6 { // pid 100 at 90 % on GPU 0, pid 101 at 70 % on GPU 1
		t.Errorf("gpu_process_util = %v, want 1.6", v["gpu_process_util"])
	}
	if v["gpu_device_memory_total_bytes"] < 8*80e9 {
		t.Errorf("device memory total %v for 8 H100 80GB", v["gpu_device_memory_total_bytes"])
	}
	if v["gpu_temp_c"] != 47 || v["gpu_power_w"] != 800 {
		t.Errorf("temp %v power %v", v["gpu_temp_c"], v["gpu_power_w"])
	}
	// A tree that uses no GPU yet: memory 0, utilization of all watched.
	v = values(p.Sample(t0, map[int]bool{7: true}))
	if v["gpu_memory_bytes"] != 0 || v["gpu_util"] != 0.2 {
		t.Errorf("idle tree: %v", v)
	}
}

func TestVisibleDevices(t *testing.T) {
	s := gputest.New()
	s.SetProcess(1, 100, 5<<30, false)
	s.SetProcess(2, 100, 7<<30, false)
	p := gpu.New(s, []int{0, 2})
	if err := p.Init(); err != nil {
		t.Fatal(err)
	}
	if got := p.Devices(); len(got) != 2 || got[0] != 0 || got[1] != 2 {
		t.Fatalf("devices %v, want [0 2]", got)
	}
	if v := values(p.Sample(t0, map[int]bool{100: true})); v["gpu_memory_bytes"] != 7<<30 {
		t.Errorf("memory %v: GPU 1 is not the run's", v["gpu_memory_bytes"])
	}
	if err := gpu.New(s, []int{9}).Init(); !errors.Is(err, gpu.ErrNoSuchGPU) {
		t.Errorf("GPU 9 of 8: %v", err)
	}
}

func TestLostGPU(t *testing.T) {
	s := gputest.New()
	s.SetProcess(0, 100, 1<<30, false)
	s.SetProcess(3, 100, 1<<30, false)
	p := gpu.New(s, nil)
	if err := p.Init(); err != nil {
		t.Fatal(err)
	}
	s.Lose(3)
	obs := p.Sample(t0, map[int]bool{100: true})
	var health []policies.Observation
	for _, o := range obs {
		if o.Name == policies.NameHealth {
			health = append(health, o)
		}
	}
	if len(health) != 1 || health[0].Text != "gpu-lost" || health[0].Labels["gpu"] != "3" {
		t.Fatalf("health %+v", health)
	}
	if v := values(obs); v["gpu_memory_bytes"] != 1<<30 {
		t.Errorf("the other GPUs are still sampled: %v", v)
	}
	// Reported once, then skipped.
	for _, o := range p.Sample(t0, map[int]bool{100: true}) {
		if o.Name == policies.NameHealth {
			t.Errorf("lost GPU reported again: %+v", o)
		}
	}
}

func TestHealthEvents(t *testing.T) {
	s := gputest.New()
	p := gpu.New(s, nil)
	if err := p.Init(); err != nil {
		t.Fatal(err)
	}
	if _, ok := p.WaitEvent(10 * time.Millisecond); ok {
		t.Fatal("an event from nowhere")
	}
	s.Xid(5, 79)
	o, ok := p.WaitEvent(time.Second)
	if !ok || o.Name != policies.NameHealth || o.Text != "xid:79" || o.Labels["gpu"] != "5" {
		t.Fatalf("xid: %+v %v", o, ok)
	}
	s.ECC(2)
	if o, ok := p.WaitEvent(time.Second); !ok || o.Text != "ecc:double-bit" || o.Labels["gpu"] != "2" {
		t.Fatalf("ecc: %+v %v", o, ok)
	}
}

// A failing driver answers the event wait at once, with an error, every
// time: the wait still lasts its timeout, so Background.Watch's loop does
// not spin a core (it did, for the rest of the run).
func TestFailingEventWaitLastsItsTimeout(t *testing.T) {
	for _, r := range []nvml.Return{nvml.ERROR_UNKNOWN, nvml.ERROR_GPU_IS_LOST} {
		s := gputest.New()
		s.EventSetCreateFunc = func() (nvml.EventSet, nvml.Return) {
			return &mock.EventSet{
				WaitFunc: func(uint32) (nvml.EventData, nvml.Return) { return nvml.EventData{}, r },
				FreeFunc: func() nvml.Return { return nvml.SUCCESS },
			}, nvml.SUCCESS
		}
		p := gpu.New(s, nil)
		if err := p.Init(); err != nil {
			t.Fatal(err)
		}
		lost := 0
		start := time.Now()
		for i := 0; i < 13; i++ {
			if o, ok := p.WaitEvent(20 * time.Millisecond); ok && o.Text == "gpu-lost" {
				lost++ // ERROR_GPU_IS_LOST: each GPU once
			}
		}
		// The 8 GPUs lost return at once; the other waits last 20ms each.
		if took, least := time.Since(start), time.Duration(13-lost)*20*time.Millisecond; took < least {
			t.Errorf("%s: 13 waits of 20ms, %d GPUs lost, took %s, less than %s: a failing wait returned at once", nvml.ErrorString(r), lost, took, least)
		}
		p.Close()
	}
}

func TestNoDriver(t *testing.T) {
	p := gpu.New(nvml.New(nvml.WithLibraryPath("/nonexistent/libnvidia-ml.so.1")), nil)
	err := p.Init()
	if !errors.Is(err, gpu.ErrUnavailable) {
		t.Fatalf("Init without a driver: %v", err)
	}
	// Sampling an uninitialised probe reports nothing GPU-wide, and
	// does not crash.
	if v := values(p.Sample(t0, map[int]bool{1: true})); v["gpu_memory_bytes"] != 0 {
		t.Errorf("%v", v)
	}
	p.Close()
}

// BenchmarkSample is one tick over 8 GPUs (the mock's cost, plus ours).
func BenchmarkSample(b *testing.B) {
	s := gputest.New()
	for i := 0; i < 8; i++ {
		s.SetProcess(i, 100+i, 1<<30, false)
	}
	p := gpu.New(s, nil)
	if err := p.Init(); err != nil {
		b.Fatal(err)
	}
	pids := map[int]bool{100: true, 101: true, 102: true}
	for b.Loop() {
		p.Sample(t0, pids)
	}
}

// A slow nvmlInit does not hold anything up: sampling reports nothing
// until it returns, then the GPUs.
func TestBackgroundSlowInit(t *testing.T) {
	s := gputest.New()
	s.SetProcess(0, 100, 1<<30, false)
	release := make(chan struct{})
	initDone := s.InitFunc
	s.InitFunc = func() nvml.Return {
		<-release
		return initDone()
	}
	done := make(chan error, 1)
	b := gpu.StartBackground(gpu.New(s, nil), func(err error) { done <- err })
	if obs := b.Sample(t0, map[int]bool{100: true}); len(obs) != 0 {
		t.Fatalf("sampled before NVML was ready: %v", obs)
	}
	if ok, _ := b.Ready(); ok {
		t.Fatal("ready before Init returned")
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if v := values(b.Sample(t0, map[int]bool{100: true})); v["gpu_memory_bytes"] != 1<<30 {
		t.Errorf("after init: %v", v)
	}
	b.Close()
}

// A failing Init leaves sampling off, with the reason.
func TestBackgroundFailingInit(t *testing.T) {
	s := gputest.New()
	s.InitFunc = func() nvml.Return { return nvml.ERROR_DRIVER_NOT_LOADED }
	b := gpu.StartBackground(gpu.New(s, nil), nil)
	if err := b.Wait(time.Second); !errors.Is(err, gpu.ErrUnavailable) {
		t.Fatalf("Wait: %v", err)
	}
	if obs := b.Sample(t0, map[int]bool{1: true}); len(obs) != 0 {
		t.Errorf("sampled a GPU that failed to initialise: %v", obs)
	}
}
