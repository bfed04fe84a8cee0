package colorer

import "math/rand/v2"

// Tabu is TabuCol's search state for a fixed number of colours k: it
// moves one conflicting vertex per step to the colour that removes the
// most conflicts, forbidding the move back for a while.
type Tabu struct {
	g         *Graph
	k         int
	color     []int
	gamma     []int32 // gamma[v*k+c]: neighbours of v coloured c
	tabu      []int64 // tabu[v*k+c]: the step until which v may not return to c
	conflicts int
	best      int // fewest conflicts seen at this k (aspiration)
	step      int64
	rng       *rand.Rand
}

// NewTabu starts a search from color (values in [0, k)).
func NewTabu(g *Graph, color []int, k int, rng *rand.Rand) *Tabu {
	t := &Tabu{g: g, k: k, color: append([]int(nil), color...), rng: rng,
		gamma: make([]int32, g.N*k), tabu: make([]int64, g.N*k)}
	for v, adj := range g.Adj {
		for _, u := range adj {
			t.gamma[v*k+color[u]]++
		}
	}
	t.conflicts = Conflicts(g, t.color)
	t.best = t.conflicts
	return t
}

// Conflicts is the number of monochromatic edges now.
func (t *Tabu) Conflicts() int { return t.conflicts }

// Coloring returns a copy of the current colouring.
func (t *Tabu) Coloring() []int { return append([]int(nil), t.color...) }

// Step makes one move.
func (t *Tabu) Step() {
	if t.conflicts == 0 {
		return
	}
	k := t.k
	bestDelta, count, nConf := int32(1<<30), 0, 0
	mv, mc := -1, -1
	for v := 0; v < t.g.N; v++ {
		cv := t.color[v]
		base := t.gamma[v*k+cv]
		if base == 0 {
			continue
		}
		nConf++
		row := t.gamma[v*k : v*k+k]
		for c, gc := range row {
			if c == cv {
				continue
			}
			d := gc - base
			if t.tabu[v*k+c] > t.step && t.conflicts+int(d) >= t.best {
				continue // tabu, and not good enough to override it
			}
			switch {
			case d < bestDelta:
				bestDelta, count, mv, mc = d, 1, v, c
			case d == bestDelta:
				count++
				if t.rng.IntN(count) == 0 { // a uniform pick among ties
					mv, mc = v, c
				}
			}
		}
	}
	if mv < 0 { // every move is tabu: take a random one
		for {
			mv = t.rng.IntN(t.g.N)
			if t.gamma[mv*k+t.color[mv]] > 0 {
				break
			}
		}
		mc = (t.color[mv] + 1 + t.rng.IntN(k-1)) % k
		bestDelta = t.gamma[mv*k+mc] - t.gamma[mv*k+t.color[mv]]
	}
	old := t.color[mv]
	t.color[mv] = mc
	for _, u := range t.g.Adj[mv] {
		t.gamma[int(u)*k+old]--
		t.gamma[int(u)*k+mc]++
	}
	t.conflicts += int(bestDelta)
	t.best = min(t.best, t.conflicts)
	// Galinier & Hao's dynamic tenure: L + 0.6 * (conflicting vertices).
	t.tabu[mv*k+old] = t.step + int64(t.rng.IntN(10)) + int64(6*nConf/10)
	t.step++
}

// TabuState is the part of the search a checkpoint must keep for a resumed
// run to take exactly the steps the uninterrupted one would have.
type TabuState struct {
	Color []int   `json:"color"`
	Tabu  []int64 `json:"tabu"`
	Best  int     `json:"best"`
	Step  int64   `json:"step"`
}

// Snapshot returns the search state.
func (t *Tabu) Snapshot() TabuState {
	return TabuState{Color: t.Coloring(), Tabu: append([]int64(nil), t.tabu...), Best: t.best, Step: t.step}
}

// RestoreTabu rebuilds a search from a snapshot taken with k colours.
func RestoreTabu(g *Graph, s TabuState, k int, rng *rand.Rand) (*Tabu, bool) {
	if len(s.Color) != g.N || len(s.Tabu) != g.N*k {
		return nil, false
	}
	for _, c := range s.Color {
		if c < 0 || c >= k {
			return nil, false
		}
	}
	t := NewTabu(g, s.Color, k, rng)
	copy(t.tabu, s.Tabu)
	t.best, t.step = s.Best, s.Step
	return t, true
}
