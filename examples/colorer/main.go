package colorer

import (
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"

	"github.com/prism-run/prism-run/examples/workload"
)

// State is what a checkpoint holds: enough to go on exactly where the run
// was, the random generator included.
type State struct {
	Iter   int64     `json:"iter"`
	BestK  int       `json:"best_k"`
	Best   []int     `json:"best"`
	K      int       `json:"k"`
	Search TabuState `json:"search"`
	KIters int64     `json:"k_iters"`
	Effort int64     `json:"effort"`
	RNG    []byte    `json:"rng"`
	Seed   uint64    `json:"seed"`
}

// Main runs the colourer with command-line args; it returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("colorer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	n := fs.Int("n", 250, "vertices of the random graph")
	p := fs.Float64("p", 0.5, "edge probability")
	graphSeed := fs.Uint64("graph-seed", 1, "seed of the graph (the search's seed is PRISM_SEED)")
	target := fs.Int("target", 0, "stop once a colouring with this many colours is found (0 = keep going)")
	maxIters := fs.Int64("max-iters", 0, "stop after this many tabu steps (0 = no limit)")
	kIters := fs.Int64("k-iters", 200000, "tabu steps allowed per colour count before giving up (times the effort)")
	every := fs.Int64("report-every", 2000, "print a progress marker every this many steps")
	proto, mis, code := workload.Setup("colorer", fs, args, stdout, stderr)
	if code != 0 {
		return code
	}
	defer proto.Stop()
	g := Random(*n, *p, *graphSeed)
	pcg := rand.NewPCG(proto.Seed, 0xc0105)
	rng := rand.New(pcg)

	var st State
	var tabu *Tabu
	resumed, err := proto.LoadResume(&st)
	if err != nil {
		fmt.Fprintln(stderr, "colorer:", err)
		return 1
	}
	if resumed {
		ok := pcg.UnmarshalBinary(st.RNG) == nil && len(st.Best) == g.N
		if ok {
			tabu, ok = RestoreTabu(g, st.Search, st.K, rng)
		}
		if !ok {
			fmt.Fprintln(stderr, "colorer: checkpoint does not match this graph or is damaged")
			return 1
		}
		proto.Printf("resumed from %s at step %d with %d colours\n", proto.Resume, st.Iter, st.BestK)
	} else {
		st = State{Seed: proto.Seed, Effort: 1}
		st.Best, st.BestK = Greedy(g)
		st.K = st.BestK - 1
		tabu = NewTabu(g, reduce(st.Best, st.K, rng), st.K, rng)
	}
	seedFrom := proto.SeedFrom
	if resumed {
		seedFrom = "the checkpoint's"
	}
	proto.Printf("graph G(%d, %.2f), graph seed %d: %d edges; search seed %d (%s); DSATUR start %d colours\n",
		g.N, *p, *graphSeed, g.Edges(), st.Seed, seedFrom, st.BestK)
	proto.Marker("iter", st.Iter, "colors", st.BestK, "k", st.K, "conflicts", tabu.Conflicts())

	done := func() bool {
		return (*target > 0 && st.BestK <= *target) || st.K < 1 || (*maxIters > 0 && st.Iter >= *maxIters) ||
			st.KIters >= *kIters*st.Effort
	}
	for !done() {
		tabu.Step()
		st.Iter++
		st.KIters++
		mis.Step(int(st.Iter))
		if tabu.Conflicts() == 0 {
			st.Best, st.BestK = tabu.Coloring(), st.K
			proto.Marker("iter", st.Iter, "colors", st.BestK, "k", st.K, "conflicts", 0)
			st.K--
			st.KIters = 0
			if st.K >= 1 {
				tabu = NewTabu(g, reduce(st.Best, st.K, rng), st.K, rng)
			}
			continue
		}
		if st.Iter%*every == 0 {
			proto.Marker("iter", st.Iter, "colors", st.BestK, "k", st.K, "conflicts", tabu.Conflicts())
		}
		if proto.CheckpointRequested() {
			st.Search = tabu.Snapshot()
			st.RNG, _ = pcg.MarshalBinary()
			if _, err := proto.SaveCheckpoint(fmt.Sprintf("colorer-%d.json", st.Iter), &st); err != nil {
				fmt.Fprintln(stderr, "colorer: checkpoint:", err)
			} else {
				mis.Checkpointed(int(st.Iter))
			}
		}
		if whats, ok := proto.DegradeRequested(); ok {
			for _, what := range whats {
				if what == "increase-effort" {
					st.Effort *= 2
				}
				proto.Printf("degrade request %q: effort now %dx\n", what, st.Effort)
				proto.Marker("effort", st.Effort)
			}
		}
		if proto.Terminated() {
			proto.Printf("terminated at step %d with %d colours\n", st.Iter, st.BestK)
			return 128 + 15
		}
	}
	if Conflicts(g, st.Best) != 0 {
		fmt.Fprintln(stderr, "colorer: internal error: best colouring has conflicts")
		return 1
	}
	proto.Marker("iter", st.Iter, "colors", st.BestK, "converged", true, "result", fmt.Sprintf("colors=%d seed=%d", st.BestK, st.Seed),
		"result_coloring", coloringHash(st.Best))
	proto.Printf("best: %d colours after %d steps\n", st.BestK, st.Iter)
	return 0
}

// reduce maps a colouring onto k colours: vertices coloured k or more get
// a random colour below k (TabuCol then repairs the conflicts).
func reduce(color []int, k int, rng *rand.Rand) []int {
	out := make([]int, len(color))
	for v, c := range color {
		if c >= k {
			c = rng.IntN(max(k, 1))
		}
		out[v] = c
	}
	return out
}

// coloringHash names a colouring exactly (FNV-1a over its colours), so
// that two runs can be seen to reach the same one, not just as many
// colours.
func coloringHash(c []int) string {
	h := fnv.New64a()
	for _, v := range c {
		_, _ = fmt.Fprintf(h, "%d,", v)
	}
	return fmt.Sprintf("%016x", h.Sum64())
}
