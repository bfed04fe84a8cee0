// Package ensemble is the llm example: an ensemble of members, each
// fitting a linear model to its own private data, that must reach
// consensus by exchanging differentially private estimates. Each round
// every member refines its fit by gradient descent on its data, shares its
// estimate with Gaussian noise (spending privacy budget), and moves toward
// the ensemble's mean. Some members hold biased data and pull away, so the
// whole ensemble converges slowly; on a SIGUSR2 whose control line says
// reduce-ensemble it drops the members farthest from the consensus, and on
// increase-temperature it mixes harder.
package ensemble

import (
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/prism-run/prism-run/examples/workload"
)

// Member is one participant: private data and its current estimate.
type Member struct {
	X   [][]float64 `json:"-"` // private samples (regenerated from the seed on resume)
	Y   []float64   `json:"-"`
	W   []float64   `json:"w"`
	Bad bool        `json:"bad"`
	ID  int         `json:"id"`
}

// State is what a checkpoint holds.
type State struct {
	Iter         int      `json:"iter"`
	Members      []Member `json:"members"`
	Temperature  float64  `json:"temperature"`
	PrivacySpent float64  `json:"privacy_spent"`
	RNG          []byte   `json:"rng"`
	Seed         uint64   `json:"seed"`
}

type params struct {
	members, outliers, dim, samples, steps, maxIters int
	eps, threshold, lr, mix                          float64
	pace                                             time.Duration
}

// Main runs the ensemble with command-line args; it returns the exit code:
// 0 converged, 3 not converged within -max-iters.
func Main(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ensemble", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var p params
	fs.IntVar(&p.members, "members", 12, "ensemble size")
	fs.IntVar(&p.outliers, "outliers", 4, "members whose data is biased")
	fs.IntVar(&p.dim, "dim", 16, "model dimension")
	fs.IntVar(&p.samples, "samples", 1000, "private samples per member")
	fs.IntVar(&p.steps, "steps", 10, "gradient steps per member per round")
	fs.IntVar(&p.maxIters, "max-iters", 100, "rounds before giving up")
	fs.Float64Var(&p.eps, "eps", 0.1, "privacy budget (epsilon) spent per round")
	fs.Float64Var(&p.threshold, "threshold", 0.9, "consensus that counts as converged")
	fs.Float64Var(&p.lr, "lr", 0.05, "gradient step size")
	fs.Float64Var(&p.mix, "mix", 0.3, "how far a member moves toward the mean per round, at temperature 1")
	fs.DurationVar(&p.pace, "pace", 50*time.Millisecond, "least time per round (a round of a real ensemble waits on its members)")
	proto, mis, code := workload.Setup("ensemble", fs, args, stdout, stderr)
	if code != 0 {
		return code
	}
	defer proto.Stop()

	data := rand.New(rand.NewPCG(proto.Seed, 0xda7a))
	truth := make([]float64, p.dim)
	for i := range truth {
		truth[i] = data.NormFloat64()
	}
	members := makeMembers(p, truth, data)
	pcg := rand.NewPCG(proto.Seed, 0xe45e)
	rng := rand.New(pcg)

	st := State{Temperature: 1, Seed: proto.Seed}
	resumed, err := proto.LoadResume(&st)
	if err != nil {
		fmt.Fprintln(stderr, "ensemble:", err)
		return 1
	}
	if resumed {
		if err := pcg.UnmarshalBinary(st.RNG); err != nil {
			fmt.Fprintln(stderr, "ensemble: damaged checkpoint")
			return 1
		}
		// Private data never goes into a checkpoint: it is rebuilt from
		// the seed and matched to the surviving members by id.
		for i := range st.Members {
			id := st.Members[i].ID
			st.Members[i].X, st.Members[i].Y = members[id].X, members[id].Y
		}
		proto.Printf("resumed from %s at round %d with %d members\n", proto.Resume, st.Iter, len(st.Members))
	} else {
		st.Members = members
	}

	for st.Iter < p.maxIters {
		start := time.Now()
		mis.Step(st.Iter)
		round(&st, p, rng)
		st.Iter++
		c := consensus(st.Members)
		converged := c >= p.threshold
		proto.Marker("iter", st.Iter, "consensus", c, "privacy_spent", st.PrivacySpent,
			"converged", converged, "members", len(st.Members), "temperature", st.Temperature)
		if converged {
			proto.Marker("result", fmt.Sprintf("consensus=%.4f members=%d rounds=%d", c, len(st.Members), st.Iter))
			return 0
		}
		if proto.CheckpointRequested() {
			st.RNG, _ = pcg.MarshalBinary()
			if _, err := proto.SaveCheckpoint(fmt.Sprintf("ensemble-%d.json", st.Iter), &st); err != nil {
				fmt.Fprintln(stderr, "ensemble: checkpoint:", err)
			}
		}
		if whats, ok := proto.DegradeRequested(); ok {
			for _, what := range whats {
				switch what {
				case "reduce-ensemble":
					st.Members = reduce(st.Members)
				case "increase-temperature":
					st.Temperature *= 1.5
				}
				proto.Printf("degrade request %q: %d members, temperature %.2f\n", what, len(st.Members), st.Temperature)
			}
		}
		if proto.Terminated() {
			proto.Printf("terminated at round %d\n", st.Iter)
			return 128 + 15
		}
		time.Sleep(p.pace - time.Since(start))
	}
	proto.Printf("no consensus after %d rounds\n", st.Iter)
	return 3
}

func makeMembers(p params, truth []float64, r *rand.Rand) []Member {
	ms := make([]Member, p.members)
	for m := range ms {
		bad := m < p.outliers
		// Biased members see a different truth: their data is skewed.
		own := append([]float64(nil), truth...)
		if bad {
			for i := range own {
				own[i] += 3 * r.NormFloat64()
			}
		}
		ms[m] = Member{ID: m, Bad: bad, W: make([]float64, p.dim)}
		for s := 0; s < p.samples; s++ {
			x := make([]float64, p.dim)
			y := 0.0
			for i := range x {
				x[i] = r.NormFloat64()
				y += x[i] * own[i]
			}
			ms[m].X = append(ms[m].X, x)
			ms[m].Y = append(ms[m].Y, y+0.1*r.NormFloat64())
		}
	}
	return ms
}

// round is one exchange: local gradient steps, a noisy share, mixing.
func round(st *State, p params, r *rand.Rand) {
	dim := len(st.Members[0].W)
	grad := make([]float64, dim)
	for m := range st.Members {
		mb := &st.Members[m]
		for s := 0; s < p.steps; s++ {
			clear(grad)
			for j, x := range mb.X {
				e := dot(x, mb.W) - mb.Y[j]
				for i := range grad {
					grad[i] += e * x[i]
				}
			}
			for i := range mb.W {
				mb.W[i] -= p.lr * grad[i] / float64(len(mb.X))
			}
		}
	}
	// The Gaussian mechanism: noise scaled by 1/epsilon on what is shared.
	sigma := 0.05 / p.eps
	mean := make([]float64, dim)
	for _, mb := range st.Members {
		for i, w := range mb.W {
			mean[i] += (w + sigma*r.NormFloat64()/math.Sqrt(float64(len(st.Members)))) / float64(len(st.Members))
		}
	}
	st.PrivacySpent += p.eps
	w := math.Min(1, p.mix*st.Temperature)
	for m := range st.Members {
		for i := range mean {
			st.Members[m].W[i] += w * (mean[i] - st.Members[m].W[i])
		}
	}
}

func dot(a, b []float64) float64 {
	s := 0.0
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// consensus is 1 / (1 + mean distance of the members to their centroid):
// 1 when all agree, toward 0 as they spread.
func consensus(ms []Member) float64 {
	c := centroid(ms)
	d := 0.0
	for _, m := range ms {
		d += dist(m.W, c)
	}
	return 1 / (1 + d/float64(len(ms)))
}

func centroid(ms []Member) []float64 {
	c := make([]float64, len(ms[0].W))
	for _, m := range ms {
		for i, w := range m.W {
			c[i] += w / float64(len(ms))
		}
	}
	return c
}

func dist(a, b []float64) float64 {
	s := 0.0
	for i := range a {
		s += (a[i] - b[i]) * (a[i] - b[i])
	}
	return math.Sqrt(s)
}

// reduce keeps the half of the ensemble closest to its centroid (at least
// two members).
func reduce(ms []Member) []Member {
	if len(ms) <= 2 {
		return ms
	}
	c := centroid(ms)
	sorted := append([]Member(nil), ms...)
	sort.SliceStable(sorted, func(i, j int) bool { return dist(sorted[i].W, c) < dist(sorted[j].W, c) })
	return sorted[:max(2, len(ms)/2)]
}
