package supervisor

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"k8s.io/utils/clock"

	"github.com/prism-run/prism-run/probes"
	"github.com/prism-run/prism-run/probes/gpu"
	"github.com/prism-run/prism-run/probes/gpu/gputest"
)

// BenchmarkPump measures the child's output throughput through prism-run
// (pipe, pass-through, marker finding, event loop) against the same child
// read straight from a pipe in the same process: compare the two MB/s.
func BenchmarkPump(b *testing.B) {
	if _, err := exec.LookPath("cat"); err != nil {
		b.Skip("needs cat")
	}
	// 64 MiB of a training log with one marker line in ten.
	path := filepath.Join(b.TempDir(), "out.log")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	var size int64
	for i := 0; size < 64<<20; i++ {
		var n int
		if i%10 == 0 {
			n, _ = fmt.Fprintf(f, "PRISM iter=%d loss=%.6f latency_ms=%.3f\n", i, 1/float64(i+1), float64(i%97)/10)
		} else {
			n, _ = fmt.Fprintf(f, "step %d: batch 32 done, lr 0.0003, grad-norm %.4f, tokens/s 81234\n", i, float64(i%13)/7)
		}
		size += int64(n)
	}
	_ = f.Close()

	b.Run("baseline-pipe", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			cmd := exec.Command("cat", path)
			out, err := cmd.StdoutPipe()
			if err != nil {
				b.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, 256<<10)
			if _, err := io.CopyBuffer(io.Discard, out, buf); err != nil {
				b.Fatal(err)
			}
			_ = cmd.Wait()
		}
	})
	b.Run("prism-run", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			res, err := Run(context.Background(), Config{Command: []string{"cat", path}, RunID: "bench",
				Stdout: io.Discard, Stderr: io.Discard, Log: zerolog.Nop()})
			if err != nil || res.Exit != 0 {
				b.Fatal(err, res.Exit)
			}
			if res.Markers["iter"].Count == 0 {
				b.Fatal("no markers seen")
			}
		}
	})
}

// BenchmarkSamplingTick is one sampling tick as a run does it without a
// cgroup, at the default 100ms: the tree walked through /proc (once a
// second, so on one tick in ten), the host probe summing over it
// (gopsutil), and the GPU probe over a simulated 8-GPU server. The
// "%core@100ms" metric is its cost as a share of one core.
func BenchmarkSamplingTick(b *testing.B) {
	srv := gputest.New()
	g := gpu.New(srv, nil)
	if err := g.Init(); err != nil {
		b.Fatal(err)
	}
	r := &run{cfg: Config{ProcRoot: "/proc", Samplers: []Sampler{probes.NewHost(nil), g}, Clock: clock.RealClock{}}}
	a := &attempt{r: r, pid: os.Getpid()}
	tc := &treeCache{}
	wall := time.Now()
	start := time.Now()
	for b.Loop() {
		tc.sample(a, wall)
		wall = wall.Add(100 * time.Millisecond) // the ticks' wall time
	}
	per := time.Since(start) / time.Duration(b.N)
	b.ReportMetric(100*float64(per)/float64(100*time.Millisecond), "%core@100ms")
}
