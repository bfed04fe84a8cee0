package supervisor

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/rs/zerolog"
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
