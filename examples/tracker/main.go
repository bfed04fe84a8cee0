package tracker

import (
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"time"

	"github.com/prism-run/prism-run/examples/workload"
)

// Target is one simulated object.
type Target struct {
	X, Y, VX, VY float64
}

// State is what a checkpoint holds.
type State struct {
	Frame    int      `json:"frame"`
	Targets  []Target `json:"targets"`
	Tracks   []Filter `json:"tracks"`
	Degraded bool     `json:"degraded"`
	RNG      []byte   `json:"rng"`
	Seed     uint64   `json:"seed"`
}

const (
	dt       = 0.1  // seconds of simulated time per frame
	measVar  = 4.0  // sensor noise variance (m^2)
	procNois = 0.5  // process noise of the filter
	accelSD  = 0.3  // real targets' random acceleration (m/s^2)
	arena    = 5000 // targets start within ±arena metres
)

// Main runs the tracker with command-line args; it returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tracker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	frames := fs.Int("frames", 1000, "frames to process (0 = forever)")
	ntargets := fs.Int("targets", 200, "targets tracked")
	rate := fs.Float64("rate", 200, "sensor frames per second (0 = as fast as possible)")
	spikeEvery := fs.Int("spike-every", 0, "inject a latency spike every N frames (0 = never)")
	spikeMS := fs.Float64("spike-ms", 8, "how long an injected spike keeps the frame busy")
	proto, mis, code := workload.Setup("tracker", fs, args, stdout, stderr)
	if code != 0 {
		return code
	}
	defer proto.Stop()
	pcg := rand.NewPCG(proto.Seed, 0x7ac4)
	rng := rand.New(pcg)

	var st State
	resumed, err := proto.LoadResume(&st)
	if err != nil {
		fmt.Fprintln(stderr, "tracker:", err)
		return 1
	}
	if resumed {
		if err := pcg.UnmarshalBinary(st.RNG); err != nil {
			fmt.Fprintln(stderr, "tracker: damaged checkpoint")
			return 1
		}
		proto.Printf("resumed from %s at frame %d\n", proto.Resume, st.Frame)
	} else {
		st = State{Seed: proto.Seed}
		for i := 0; i < *ntargets; i++ {
			t := Target{X: (rng.Float64()*2 - 1) * arena, Y: (rng.Float64()*2 - 1) * arena,
				VX: rng.NormFloat64() * 20, VY: rng.NormFloat64() * 20}
			st.Targets = append(st.Targets, t)
			st.Tracks = append(st.Tracks, NewFilter(t.X, t.Y))
		}
	}

	var period time.Duration
	if *rate > 0 {
		period = time.Duration(float64(time.Second) / *rate)
	}
	next := time.Now()
	zx, zy := make([]float64, len(st.Targets)), make([]float64, len(st.Targets))
	for *frames == 0 || st.Frame < *frames {
		mis.Step(st.Frame)
		// The sensor: targets move, measurements arrive (not timed: this
		// is the world, not the tracker).
		for i := range st.Targets {
			t := &st.Targets[i]
			t.VX += rng.NormFloat64() * accelSD * dt
			t.VY += rng.NormFloat64() * accelSD * dt
			t.X += t.VX * dt
			t.Y += t.VY * dt
			zx[i] = t.X + rng.NormFloat64()*math.Sqrt(measVar)
			zy[i] = t.Y + rng.NormFloat64()*math.Sqrt(measVar)
		}
		// The tracker: this is the latency that counts.
		start := time.Now()
		rmse := track(&st, zx, zy)
		if *spikeEvery > 0 && st.Frame > 0 && st.Frame%*spikeEvery == 0 {
			// A spike is real extra work (re-running the frame), not a sleep.
			for time.Since(start) < time.Duration(*spikeMS*float64(time.Millisecond)) {
				track(&State{Targets: st.Targets, Tracks: append([]Filter(nil), st.Tracks...), Degraded: st.Degraded}, zx, zy)
			}
		}
		lat := time.Since(start)
		st.Frame++
		proto.Marker("frame", st.Frame, "latency_ms", float64(lat.Microseconds())/1000, "rmse_m", rmse)

		if proto.CheckpointRequested() {
			st.RNG, _ = pcg.MarshalBinary()
			if _, err := proto.SaveCheckpoint(fmt.Sprintf("tracker-%d.json", st.Frame), &st); err != nil {
				fmt.Fprintln(stderr, "tracker: checkpoint:", err)
			}
		}
		if whats, ok := proto.DegradeRequested(); ok {
			for _, what := range whats {
				if what == "reduce-precision" || what == "free-memory" {
					st.Degraded = true
					proto.Printf("degrade request %q: alpha-beta filters now\n", what)
				}
			}
		}
		if proto.Terminated() {
			proto.Printf("terminated at frame %d\n", st.Frame)
			return 128 + 15
		}
		if period > 0 {
			next = next.Add(period)
			time.Sleep(time.Until(next))
		}
	}
	proto.Marker("frame", st.Frame, "converged", true, "result", fmt.Sprintf("frames=%d seed=%d", st.Frame, st.Seed))
	return 0
}

// track runs one frame of the tracker over the measurements and returns
// the position error (m, root mean square) of the tracks after update.
func track(st *State, zx, zy []float64) float64 {
	// Gated nearest-neighbour association over a coarse grid, so the cost
	// grows with the number of targets, not its square.
	const cell = 200.0
	grid := map[[2]int][]int{}
	for j := range zx {
		key := [2]int{int(math.Floor(zx[j] / cell)), int(math.Floor(zy[j] / cell))}
		grid[key] = append(grid[key], j)
	}
	var se float64
	for i := range st.Tracks {
		f := &st.Tracks[i]
		if !st.Degraded {
			f.Predict(dt, procNois)
		}
		px, py := f.X[0], f.X[1]
		if st.Degraded {
			px, py = px+dt*f.X[2], py+dt*f.X[3]
		}
		best, bestD := -1, math.Inf(1)
		cx, cy := int(math.Floor(px/cell)), int(math.Floor(py/cell))
		for gx := cx - 1; gx <= cx+1; gx++ {
			for gy := cy - 1; gy <= cy+1; gy++ {
				for _, j := range grid[[2]int{gx, gy}] {
					if d := (zx[j]-px)*(zx[j]-px) + (zy[j]-py)*(zy[j]-py); d < bestD {
						best, bestD = j, d
					}
				}
			}
		}
		if best >= 0 {
			if st.Degraded {
				f.AlphaBeta(zx[best], zy[best], dt)
			} else {
				f.Update(zx[best], zy[best], measVar)
			}
		}
		ex, ey := f.X[0]-st.Targets[i].X, f.X[1]-st.Targets[i].Y
		se += ex*ex + ey*ey
	}
	if len(st.Tracks) == 0 {
		return 0
	}
	return math.Sqrt(se / float64(len(st.Tracks)))
}
