package tracker

import (
	"math"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/prism-run/prism-run/examples/workload/workloadtest"
)

func TestKalmanFollowsATarget(t *testing.T) {
	f := NewFilter(0, 0)
	x, y := 0.0, 0.0
	for i := 0; i < 100; i++ {
		x, y = x+dt*12, y-dt*5
		noise := math.Sin(float64(i)) * 2 // deterministic "noise" within ±2 m
		f.Predict(dt, procNois)
		f.Update(x+noise, y-noise, measVar)
	}
	if e := math.Hypot(f.X[0]-x, f.X[1]-y); e > 2 {
		t.Errorf("position error %.2f m after 100 frames", e)
	}
	if math.Abs(f.X[2]-12) > 1 || math.Abs(f.X[3]+5) > 1 {
		t.Errorf("velocity estimate (%.2f, %.2f), want (12, -5)", f.X[2], f.X[3])
	}
}

var rmseRe = regexp.MustCompile(`frame=(\d+) latency_ms=\S+ rmse_m=(\S+)`)

// rmse maps frame -> tracking error (the latency is wall time, the error
// is the deterministic part).
func rmse(lines []string) map[string]float64 {
	out := map[string]float64{}
	for _, l := range lines {
		if m := rmseRe.FindStringSubmatch(l); m != nil {
			v, _ := strconv.ParseFloat(m[2], 64)
			out[m[1]] = v
		}
	}
	return out
}

var args = []string{"-frames", "300", "-rate", "0", "-targets", "100"}

func TestTracksAndResumesExactly(t *testing.T) {
	workloadtest.Setup(t, "9", "")
	code, full := workloadtest.Run(t, Main, args, nil)
	errs := rmse(full)
	if code != 0 || len(errs) != 300 {
		t.Fatalf("exit %d, %d frames", code, len(errs))
	}
	if errs["300"] > 3 {
		t.Errorf("tracking error %.2f m at the end, want under 3 m (sensor noise is 2 m)", errs["300"])
	}
	workloadtest.Setup(t, "9", "")
	_, cut := workloadtest.Run(t, Main, args, func(l string) syscall.Signal {
		if strings.HasPrefix(l, "PRISM frame=100 ") {
			return syscall.SIGUSR1
		}
		return 0
	})
	ck := workloadtest.Checkpoint(cut)
	if ck == "" {
		t.Fatal("no checkpoint")
	}
	workloadtest.Setup(t, "9", ck)
	code, resumed := workloadtest.Run(t, Main, args, nil)
	got := rmse(resumed)
	if code != 0 || len(got) < 100 {
		t.Fatalf("exit %d, %d frames after resume", code, len(got))
	}
	for frame, e := range got {
		if errs[frame] != e {
			t.Fatalf("frame %s: error %g after resume, %g uninterrupted", frame, e, errs[frame])
		}
	}
}

func TestLatencySpikesAndDegrade(t *testing.T) {
	e := workloadtest.Setup(t, "1", "")
	code, lines := workloadtest.Run(t, Main, []string{"-frames", "60", "-rate", "0", "-spike-every", "20", "-spike-ms", "6"},
		func(l string) syscall.Signal {
			if strings.HasPrefix(l, "PRISM frame=30 ") {
				e.AppendControl(t, "degrade", "reduce-precision")
				return syscall.SIGUSR2
			}
			return 0
		})
	all := strings.Join(lines, "\n")
	if code != 0 || !strings.Contains(all, `degrade request "reduce-precision"`) {
		t.Fatalf("exit %d; no degrade:\n%s", code, all)
	}
	lat := regexp.MustCompile(`frame=21 latency_ms=(\S+)`).FindStringSubmatch(all)
	if v, _ := strconv.ParseFloat(lat[1], 64); v < 6 {
		t.Errorf("spike frame latency %v ms, want at least 6", v)
	}
	// Degraded (alpha-beta) tracking still tracks.
	if errs := rmse(lines); errs["60"] > 10 {
		t.Errorf("degraded tracking error %.2f m", errs["60"])
	}
}
