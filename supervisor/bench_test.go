package supervisor

import (
	"context"
	"encoding/json"
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
	"github.com/prism-run/prism-run/telemetry"
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

// BenchmarkStateWrite measures what one acknowledgement costs the event
// loop with a state folder: the state of a long job (1000 checkpoints, 200
// attempts) rewritten atomically (temp file, fsync, rename, fsync of the
// folder, through the folder's os.Root), against the same bytes written
// with a plain os.WriteFile (no fsync, not atomic) in the same process.
func BenchmarkStateWrite(b *testing.B) {
	st := &State{Command: []string{"./solver", "--frames", "10000"}, Seed: 42, AttemptCount: 200}
	t0 := time.Now()
	for i := range maxLedger {
		st.Checkpoints = append(st.Checkpoints, telemetry.Checkpoint{Path: fmt.Sprintf("/scratch/ck/step-%07d.pt", i), Time: t0, Attempt: i / 5})
	}
	three := 3
	for i := range 200 {
		st.Attempts = append(st.Attempts, telemetry.Attempt{N: i, RunID: "20261129T120000-abcdef", Start: t0, End: t0, Exit: &three, Reason: telemetry.ReasonExited, Next: "restart: exited with code 3"})
	}
	b.Run("state-atomic", func(b *testing.B) {
		s, _, err := openState(filepath.Join(b.TempDir(), "state"))
		if err != nil {
			b.Fatal(err)
		}
		defer s.close()
		for b.Loop() {
			if err := s.write(st); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("baseline-writefile", func(b *testing.B) {
		path := filepath.Join(b.TempDir(), "state.json")
		for b.Loop() {
			data, _ := json.MarshalIndent(st, "", "  ")
			if err := os.WriteFile(path, data, 0o644); err != nil {
				b.Fatal(err)
			}
		}
	})
}
