// Package gputest builds a simulated GPU server for tests: go-nvml's
// dgxh100 mock (8 H100s) with the functions the probe calls set to report
// what a test decides. Tests only.
package gputest

import (
	"sync"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
)

// Server is a simulated DGX H100 whose per-GPU state a test can change
// while a probe reads it.
type Server struct {
	*server.Server

	mu     sync.Mutex
	procs  map[int]map[uint32]uint64 // gpu -> pid -> bytes (compute)
	gprocs map[int]map[uint32]uint64 // gpu -> pid -> bytes (graphics)
	util   map[int]uint32            // gpu -> percent
	lost   map[int]bool
	events chan nvml.EventData
	// PidsFunc, when set, is asked for the pids a GPU's compute list
	// shows, each with bytes (for an end-to-end test that cannot know the
	// child's pid in advance).
	PidsFunc func(gpu int) map[uint32]uint64
}

// New returns the simulated server.
func New() *Server {
	s := &Server{Server: dgxh100.New(), procs: map[int]map[uint32]uint64{}, gprocs: map[int]map[uint32]uint64{},
		util: map[int]uint32{}, lost: map[int]bool{}, events: make(chan nvml.EventData, 16)}
	for i, d := range s.Devices {
		dev := d.(*server.Device)
		dev.GetComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.lost[i] {
				return nil, nvml.ERROR_GPU_IS_LOST
			}
			m := s.procs[i]
			if s.PidsFunc != nil {
				m = s.PidsFunc(i)
			}
			return list(m), nvml.SUCCESS
		}
		dev.GetGraphicsRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.lost[i] {
				return nil, nvml.ERROR_GPU_IS_LOST
			}
			return list(s.gprocs[i]), nvml.SUCCESS
		}
		dev.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.lost[i] {
				return nvml.Utilization{}, nvml.ERROR_GPU_IS_LOST
			}
			return nvml.Utilization{Gpu: s.util[i]}, nvml.SUCCESS
		}
		dev.GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) { return uint32(40 + i), nvml.SUCCESS }
		dev.GetProcessUtilizationFunc = func(since uint64) ([]nvml.ProcessUtilizationSample, nvml.Return) {
			s.mu.Lock()
			defer s.mu.Unlock()
			var out []nvml.ProcessUtilizationSample
			for pid := range s.procs[i] {
				out = append(out, nvml.ProcessUtilizationSample{Pid: pid, TimeStamp: since + 1, SmUtil: s.util[i]})
			}
			return out, nvml.SUCCESS
		}
		dev.GetPowerUsageFunc = func() (uint32, nvml.Return) { return 100_000, nvml.SUCCESS } // mW
		dev.RegisterEventsFunc = func(uint64, nvml.EventSet) nvml.Return { return nvml.SUCCESS }
	}
	s.EventSetCreateFunc = func() (nvml.EventSet, nvml.Return) {
		return &mock.EventSet{
			WaitFunc: func(ms uint32) (nvml.EventData, nvml.Return) {
				select {
				case e := <-s.events:
					if e.EventType == 0 {
						return e, nvml.ERROR_GPU_IS_LOST
					}
					return e, nvml.SUCCESS
				case <-time.After(time.Duration(ms) * time.Millisecond):
					return nvml.EventData{}, nvml.ERROR_TIMEOUT
				}
			},
			FreeFunc: func() nvml.Return { return nvml.SUCCESS },
		}, nvml.SUCCESS
	}
	return s
}

func list(m map[uint32]uint64) []nvml.ProcessInfo {
	var out []nvml.ProcessInfo
	for pid, b := range m {
		out = append(out, nvml.ProcessInfo{Pid: pid, UsedGpuMemory: b})
	}
	return out
}

// SetProcess makes GPU gpu show pid using bytes of memory (compute).
func (s *Server) SetProcess(gpu int, pid int, bytes uint64, graphics bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.procs
	if graphics {
		m = s.gprocs
	}
	if m[gpu] == nil {
		m[gpu] = map[uint32]uint64{}
	}
	m[gpu][uint32(pid)] = bytes
}

// SetUtil sets a GPU's utilization in percent.
func (s *Server) SetUtil(gpu int, percent uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.util[gpu] = percent
}

// Lose makes a GPU stop answering (ERROR_GPU_IS_LOST).
func (s *Server) Lose(gpu int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lost[gpu] = true
}

// Xid delivers a critical Xid event on a GPU.
func (s *Server) Xid(gpu int, xid uint64) {
	s.events <- nvml.EventData{Device: s.Devices[gpu], EventType: nvml.EventTypeXidCriticalError, EventData: xid}
}

// ECC delivers a double-bit ECC error event on a GPU.
func (s *Server) ECC(gpu int) {
	s.events <- nvml.EventData{Device: s.Devices[gpu], EventType: nvml.EventTypeDoubleBitEccError}
}
