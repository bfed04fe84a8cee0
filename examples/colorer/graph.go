// Package colorer is the world-record example: tabu-search graph colouring
// (TabuCol, Hertz & de Werra 1987, with the dynamic tenure of Galinier &
// Hao 1999) of a DSJC-style random graph G(n, p), reporting its progress
// toward fewer colours as PRISM markers.
package colorer

import "math/rand/v2"

// Graph is an undirected simple graph as adjacency lists.
type Graph struct {
	N   int
	Adj [][]int32
}

// Edges counts the edges.
func (g *Graph) Edges() int {
	m := 0
	for _, a := range g.Adj {
		m += len(a)
	}
	return m / 2
}

// Random returns G(n, p): each of the n(n-1)/2 edges present with
// probability p, the construction of Johnson et al.'s DSJC graphs (the
// same seed always gives the same graph).
func Random(n int, p float64, seed uint64) *Graph {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	g := &Graph{N: n, Adj: make([][]int32, n)}
	for u := 0; u < n; u++ {
		for v := u + 1; v < n; v++ {
			if r.Float64() < p {
				g.Adj[u] = append(g.Adj[u], int32(v))
				g.Adj[v] = append(g.Adj[v], int32(u))
			}
		}
	}
	return g
}

// Greedy colours g with DSATUR (Brélaz 1979): always colour next the
// vertex whose neighbours already use the most distinct colours. It
// returns the colouring and the number of colours.
func Greedy(g *Graph) ([]int, int) {
	color := make([]int, g.N)
	for i := range color {
		color[i] = -1
	}
	sat := make([]map[int]bool, g.N)
	for i := range sat {
		sat[i] = map[int]bool{}
	}
	k := 0
	for done := 0; done < g.N; done++ {
		best := -1
		for v := 0; v < g.N; v++ {
			if color[v] >= 0 {
				continue
			}
			if best < 0 || len(sat[v]) > len(sat[best]) ||
				(len(sat[v]) == len(sat[best]) && len(g.Adj[v]) > len(g.Adj[best])) {
				best = v
			}
		}
		c := 0
		for sat[best][c] {
			c++
		}
		color[best] = c
		k = max(k, c+1)
		for _, u := range g.Adj[best] {
			sat[u][c] = true
		}
	}
	return color, k
}

// Conflicts counts the edges whose ends share a colour.
func Conflicts(g *Graph, color []int) int {
	n := 0
	for u, adj := range g.Adj {
		for _, v := range adj {
			if int(v) > u && color[v] == color[u] {
				n++
			}
		}
	}
	return n
}

// Colors counts the distinct colours used.
func Colors(color []int) int {
	seen := map[int]bool{}
	for _, c := range color {
		seen[c] = true
	}
	return len(seen)
}
