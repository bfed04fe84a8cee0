package markers

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	"github.com/prism-run/prism-run/policies"
)

func BenchmarkParse(b *testing.B) {
	p := newParser(b)
	for _, tc := range []struct{ name, line string }{
		{"kv", `PRISM iter=12345 loss=0.031415 latency_ms=3.4 entropy=1.2e-3 checkpoint="/ck/12345.pt"`},
		{"json", `PRISM {"iter":12345,"loss":0.031415,"latency_ms":3.4,"entropy":1.2e-3,"checkpoint":"/ck/12345.pt"}`},
	} {
		b.Run(tc.name, func(b *testing.B) {
			line := []byte(tc.line)
			b.SetBytes(int64(len(line)))
			b.ReportAllocs()
			var dst []policies.Observation
			names := Names{}
			for b.Loop() {
				var err error
				if dst, err = p.ParseWith(dst[:0], line, policies.SourceStdout, t0, names); err != nil || len(dst) != 5 {
					b.Fatal(err, len(dst))
				}
			}
		})
	}
}

// output is 4 MiB of a training log: plain lines with one marker line in
// every markerEvery lines (0: none).
func output(markerEvery int) []byte {
	var buf bytes.Buffer
	for i := 0; buf.Len() < 4<<20; i++ {
		if markerEvery > 0 && i%markerEvery == 0 {
			fmt.Fprintf(&buf, "PRISM iter=%d loss=%.6f latency_ms=%.3f\n", i, 1/float64(i+1), float64(i%97)/10)
		} else {
			fmt.Fprintf(&buf, "step %d: batch 32 done, lr 0.0003, grad-norm %.4f, tokens/s 81234\n", i, float64(i%13)/7)
		}
	}
	return buf.Bytes()
}

// BenchmarkStream is the pump's per-byte work: pass-through plus marker
// finding, fed in 64 KiB chunks as a pipe delivers them.
func BenchmarkStream(b *testing.B) {
	for _, tc := range []struct {
		name  string
		every int
		hide  bool
	}{
		{"plain", 0, false},
		{"markers-1in10", 10, false},
		{"markers-all", 1, false},
		{"markers-1in10-hidden", 10, true},
		{"random-bytes", -1, false},
	} {
		b.Run(tc.name, func(b *testing.B) {
			data := output(tc.every)
			if tc.every < 0 {
				data = randomish(4 << 20)
			}
			p := newParser(b)
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				s := NewStream(io.Discard, p, policies.SourceStdout, fixedClock{t0}, tc.hide)
				for i := 0; i < len(data); i += 64 << 10 {
					if _, err := s.Write(data[i:min(i+64<<10, len(data))]); err != nil {
						b.Fatal(err)
					}
					s.Take()
				}
				_ = s.Close()
			}
		})
	}
}

func randomish(n int) []byte {
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}
