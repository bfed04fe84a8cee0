package replay

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prism-run/prism-run/markers"
	"github.com/prism-run/prism-run/policies"
)

func mission(t testing.TB, name string) []policies.Rule {
	t.Helper()
	p, err := policies.LoadMission(name)
	if err != nil {
		t.Fatal(err)
	}
	r, err := policies.Resolve(p)
	if err != nil {
		t.Fatal(err)
	}
	return r.Rules
}

func replay(t testing.TB, rules []policies.Rule, in string, json, keepGoing bool) (string, Summary) {
	t.Helper()
	p, _ := markers.NewParser(markers.DefaultPrefix)
	var out bytes.Buffer
	sum, err := Run(strings.NewReader(in), &out, Options{Rules: rules, Parser: p, JSON: json, KeepGoing: keepGoing})
	if err != nil {
		t.Fatal(err)
	}
	return out.String(), sum
}

func TestReplayTimestamps(t *testing.T) {
	in := "2026-11-27T10:00:00Z starting\n" +
		"2026-11-27T10:00:01.5Z PRISM frame=1 latency_ms=3.1\n" +
		"2026-11-27T10:00:02Z PRISM frame=2 latency_ms=7.5\n" +
		"2026-11-27T10:00:03Z PRISM frame=3 latency_ms=2\n"
	out, sum := replay(t, mission(t, "pwsa"), in, false, false)
	want := "+2.000s 2026-11-27T10:00:02Z rule=latency-hard kind=threshold severity=critical action=stop: latency_ms = 7.5, above 5\n" +
		"ended: rule latency-hard would have ended the child (stop) at +2.000s\n"
	if out != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
	if sum.Lines != 3 || sum.Markers != 2 || sum.EndedBy == nil {
		t.Errorf("summary %+v: replay stops where the child would have been stopped", sum)
	}
}

func TestReplayTKeyAndTicks(t *testing.T) {
	// t= gives seconds since the start; the world-record deadline (24h)
	// trips on the line at t=86401.
	in := "PRISM t=0 colors=90\nPRISM t=3600 colors=88\nPRISM t=86401 colors=85\n"
	out, _ := replay(t, mission(t, "world-record"), in, false, true)
	if !strings.Contains(out, "+0.000s rule=colors-above-target") || !strings.Contains(out, "+86401.000s rule=deadline kind=deadline severity=high action=checkpoint-stop") {
		t.Errorf("got\n%s", out)
	}
	// No time at all: one tick (100ms) per line.
	ticks := strings.Repeat("PRISM iter=1 converged=false\n", 6)
	out, _ = replay(t, mission(t, "llm"), ticks+"PRISM iter=4\n", false, false)
	if !strings.Contains(out, "+0.600s rule=converge-within-3 kind=converge-by severity=high action=degrade what=reduce-ensemble") {
		t.Errorf("got\n%s", out)
	}
}

func TestReplayIsDeterministic(t *testing.T) {
	var b strings.Builder
	for i := 0; i < 2000; i++ {
		fmt.Fprintf(&b, "PRISM iter=%d loss=%g entropy=%g\n", i, 1/float64(i+1), float64(i%500)/100)
	}
	a, _ := replay(t, mission(t, "default"), b.String(), true, true)
	c, _ := replay(t, mission(t, "default"), b.String(), true, true)
	if a != c || a == "" {
		t.Fatalf("two replays differ, or found nothing:\n%s", a)
	}
	if !strings.Contains(a, `"rule":"entropy-decrease","kind":"monotonic","severity":"critical","action":"kill"`) {
		t.Errorf("json output:\n%.500s", a)
	}
}

func TestReplayLongLinesAndMalformed(t *testing.T) {
	in := strings.Repeat("x", 1<<20) + "\nPRISM broken\nPRISM latency_ms=9"
	out, sum := replay(t, mission(t, "pwsa"), in, false, false)
	if sum.Lines != 3 || sum.Malformed != 1 || !strings.Contains(out, "latency-hard") {
		t.Errorf("summary %+v\n%s", sum, out)
	}
}

// BenchmarkReplay measures marker lines per second through the parser and
// the engine with a mission's rules.
func BenchmarkReplay(b *testing.B) {
	var buf bytes.Buffer
	const lines = 200_000
	for i := 0; i < lines; i++ {
		fmt.Fprintf(&buf, "PRISM frame=%d latency_ms=%.3f iter=%d loss=%.6f\n", i, 1+float64(i%3)/10, i, 1/float64(i+1))
	}
	in := buf.Bytes()
	p, _ := markers.NewParser(markers.DefaultPrefix)
	for _, m := range []string{"pwsa", "default"} {
		b.Run(m, func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			start := time.Now()
			n := 0
			for b.Loop() {
				sum, err := Run(bytes.NewReader(in), &bytes.Buffer{}, Options{Rules: mission(b, m), Parser: p, KeepGoing: true})
				if err != nil || sum.Lines != lines {
					b.Fatal(err, sum)
				}
				n += lines
			}
			b.ReportMetric(float64(n)/time.Since(start).Seconds(), "lines/s")
		})
	}
}
