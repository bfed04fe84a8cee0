package colorer

import (
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"

	"github.com/prism-run/prism-run/examples/workload/workloadtest"
)

func TestRandomGraph(t *testing.T) {
	a, b := Random(200, 0.5, 3), Random(200, 0.5, 3)
	if a.Edges() != b.Edges() {
		t.Fatal("same seed, different graphs")
	}
	if d := float64(a.Edges()) / (200 * 199 / 2); d < 0.45 || d > 0.55 {
		t.Errorf("density %.3f, want about 0.5", d)
	}
	if Random(200, 0.5, 4).Edges() == a.Edges() && Random(200, 0.5, 5).Edges() == a.Edges() {
		t.Error("other seeds give the same graph")
	}
}

func TestGreedyAndTabuColourValidly(t *testing.T) {
	g := Random(80, 0.5, 1)
	color, k := Greedy(g)
	if Conflicts(g, color) != 0 || Colors(color) != k {
		t.Fatalf("DSATUR colouring has %d conflicts, %d colours (claims %d)", Conflicts(g, color), Colors(color), k)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	tb := NewTabu(g, reduce(color, k-1, rng), k-1, rng)
	for i := 0; i < 200000 && tb.Conflicts() > 0; i++ {
		tb.Step()
		if i%1000 == 0 && tb.Conflicts() != Conflicts(g, tb.Coloring()) {
			t.Fatalf("step %d: incremental conflicts %d, recount %d", i, tb.Conflicts(), Conflicts(g, tb.Coloring()))
		}
	}
	if tb.Conflicts() != 0 || Conflicts(g, tb.Coloring()) != 0 || Colors(tb.Coloring()) > k-1 {
		t.Errorf("TabuCol did not find a %d-colouring that DSATUR's %d suggests exists", k-1, k)
	}
}

var args = []string{"-n", "150", "-max-iters", "40000", "-report-every", "1000", "-k-iters", "1000000"}

// TestCheckpointResumeIsExact: a run resumed from a checkpoint ends
// exactly as the uninterrupted run with the same seed.
func TestCheckpointResumeIsExact(t *testing.T) {
	workloadtest.Setup(t, "5", "")
	code, full := workloadtest.Run(t, Main, args, nil)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	// Again, with a checkpoint requested mid-way.
	workloadtest.Setup(t, "5", "")
	code, cut := workloadtest.Run(t, Main, args, func(l string) syscall.Signal {
		if strings.HasPrefix(l, "PRISM iter=10000 ") {
			return syscall.SIGUSR1
		}
		return 0
	})
	ck := workloadtest.Checkpoint(cut)
	if code != 0 || ck == "" {
		t.Fatalf("exit %d, checkpoint %q", code, ck)
	}
	workloadtest.Setup(t, "5", ck)
	code, resumed := workloadtest.Run(t, Main, args, nil)
	if code != 0 || !strings.HasPrefix(resumed[0], "resumed from ") {
		t.Fatalf("exit %d, first line %q", code, resumed[0])
	}
	// Every progress line after the checkpoint is the uninterrupted run's.
	want := map[string]bool{}
	for _, l := range full {
		want[l] = true
	}
	compared := 0
	for _, l := range resumed[3:] { // "resumed from", the graph line, the restart marker
		if !want[l] {
			t.Fatalf("resumed run printed %q, which the uninterrupted run did not", l)
		}
		compared++
	}
	if compared < 20 {
		t.Fatalf("only %d lines compared", compared)
	}
	if got, want := tail(resumed, 3), tail(full, 3); got != want {
		t.Errorf("resumed run ends\n%s\nuninterrupted run ends\n%s", got, want)
	}
}

func TestIncreaseEffort(t *testing.T) {
	e := workloadtest.Setup(t, "1", "")
	code, lines := workloadtest.Run(t, Main, []string{"-n", "100", "-k-iters", "3000", "-report-every", "500"}, func(l string) syscall.Signal {
		if strings.HasPrefix(l, "PRISM iter=500 ") {
			e.AppendControl(t, "degrade", "increase-effort")
			return syscall.SIGUSR2
		}
		return 0
	})
	if code != 0 || !strings.Contains(strings.Join(lines, "\n"), "PRISM effort=2") {
		t.Errorf("exit %d; effort not raised:\n%s", code, tail(lines, 5))
	}
}

func tail(lines []string, n int) string {
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
