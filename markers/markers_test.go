package markers

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prism-run/prism-run/policies"
)

type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time { return c.t }

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func newParser(t testing.TB) *Parser {
	t.Helper()
	p, err := NewParser(DefaultPrefix)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// kv renders observations compactly for comparison.
func kv(obs []policies.Observation) string {
	var parts []string
	for _, o := range obs {
		parts = append(parts, o.String())
	}
	return strings.Join(parts, " ")
}

func TestParse(t *testing.T) {
	tests := []struct {
		line string
		want string // kv() of the observations; "" for none
		bad  bool
	}{
		{`PRISM iter=12 loss=0.031 latency_ms=3.4`, `iter=12 loss=0.031 latency_ms=3.4`, false},
		{`PRISM checkpoint="/ck/12 final.pt"`, `checkpoint="/ck/12 final.pt"`, false},
		{"PRISM\titer=1\t\tloss=2  \r", `iter=1 loss=2`, false},
		{`PRISM converged=true stalled=false`, `converged=1 stalled=0`, false},
		{`PRISM loss=NaN up=+Inf down=-inf big=1e999`, `loss=NaN up=+Inf down=-Inf big=+Inf`, false},
		{`PRISM status=warming phase=2`, `status="warming" phase=2`, false},
		{`PRISM esc="a\"b\\c\n"`, `esc="a\"b\\c\n"`, false},
		{`PRISM gpu.0/mem-used:bytes=5`, `gpu.0/mem-used:bytes=5`, false},
		{`PRISM {"iter":12,"loss":0.031}`, `iter=12 loss=0.031`, false},
		{`PRISM {"b":1,"a":{"y":true,"x":"s"},"n":null}`, `a.x="s" a.y=1 b=1`, false},
		{`PRISM {"loss":"NaN","checkpoint":"NaN"}`, `checkpoint="NaN" loss=NaN`, false},
		{`PRISM {"x":1e999}`, `x=+Inf`, false},
		// A logger's indent and colour codes around a marker.
		{` PRISM iter=1`, `iter=1`, false},
		{"\t\x1b[1;32mPRISM iter=1 loss=0.5\x1b[0m", `iter=1 loss=0.5`, false},
		{"\x1b[32mPRISM \x1b[1mphase\x1b[0m=warm", `phase="warm"`, false},
		// Not markers at all: no observations, no error.
		{`PRISMiter=1`, ``, false},
		{`prism iter=1`, ``, false},
		{"                                                                 PRISM iter=1", ``, false}, // a lead past MaxLead
		{"\x1b]0;PRISM iter=1", ``, false}, // OSC, not CSI: no colour code
		{"\x1b[32", ``, false},
		{`PRISM`, ``, false},
		{``, ``, false},
		// Malformed: counted, and nothing of the line is kept.
		{`PRISM `, ``, true},
		{`PRISM iter`, ``, true},
		{`PRISM iter=1 loss`, ``, true},
		{`PRISM iter=`, ``, true},
		{`PRISM =3`, ``, true},
		{`PRISM iter==2`, ``, true}, // a doubled '=' is a typo, not the text "=2"
		{`PRISM 9lives=3`, ``, true},
		{`PRISM path="unterminated`, ``, true},
		{`PRISM path="a"b`, ``, true},
		{`PRISM {"iter":12`, ``, true},
		{`PRISM {"iter":[1,2]}`, ``, true},
		{`PRISM {"a":1} {"b":2}`, ``, true},
		{`PRISM {"":1}`, ``, true},
		{`PRISM {"a":{"":1}}`, ``, true},
		{"PRISM {\"a\":\"\xff\"}", ``, true},
		{"PRISM {\"a\\u0000b\":1}", ``, true}, // a NUL in a JSON key, as in a key=value key
		{"PRISM: iter=3", ``, true},           // a marker written by hand: counted, not ignored
		{"PRISM " + strings.Repeat("k", MaxKeyLen+1) + "=1", ``, true},
		{`PRISM {"` + strings.Repeat("k", MaxKeyLen) + `":{"x":1}}`, ``, true}, // the dotted name is too long
		{"PRISM " + strings.Repeat("k", MaxKeyLen) + "=1", strings.Repeat("k", MaxKeyLen) + `=1`, false},
	}
	p := newParser(t)
	for _, tt := range tests {
		got, err := p.Parse(nil, []byte(tt.line), policies.SourceStdout, t0)
		if (err != nil) != tt.bad {
			t.Errorf("Parse(%q) error = %v, want malformed=%v", tt.line, err, tt.bad)
		}
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Errorf("Parse(%q) error %v does not wrap ErrMalformed", tt.line, err)
		}
		if kv(got) != tt.want {
			t.Errorf("Parse(%q) = %s, want %s", tt.line, kv(got), tt.want)
		}
		for _, o := range got {
			if o.Source != policies.SourceStdout || !o.Time.Equal(t0) {
				t.Errorf("Parse(%q): %+v lost its source or time", tt.line, o)
			}
		}
	}
}

func TestParseNaNIsNumeric(t *testing.T) {
	got, err := newParser(t).Parse(nil, []byte("PRISM loss=nan"), policies.SourceStdout, t0)
	if err != nil || len(got) != 1 || !math.IsNaN(got[0].Value) || got[0].Text != "" {
		t.Fatalf("got %+v, %v", got, err)
	}
}

func TestCustomPrefix(t *testing.T) {
	p, err := NewParser("@@metrics")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := p.Parse(nil, []byte("@@metrics loss=1"), policies.SourceStderr, t0)
	if kv(got) != "loss=1" {
		t.Fatalf("got %s", kv(got))
	}
	got, _ = p.Parse(nil, []byte("PRISM loss=1"), policies.SourceStderr, t0)
	if len(got) != 0 {
		t.Fatalf("default prefix still matched: %s", kv(got))
	}
	for _, bad := range []string{"", "A B", "X\n"} {
		if _, err := NewParser(bad); err == nil {
			t.Errorf("NewParser(%q) accepted", bad)
		}
	}
}

// run feeds input to a Stream in chunks of the given sizes (cycled) and
// returns what passed and what was found.
func run(t testing.TB, input []byte, hide bool, chunks []int) (string, string, int) {
	var out bytes.Buffer
	s := NewStream(&out, newParser(t), policies.SourceStdout, fixedClock{t0}, hide)
	var all []policies.Observation
	bad := 0
	for i, k := 0, 0; i < len(input); k++ {
		n := min(chunks[k%len(chunks)], len(input)-i)
		if _, err := s.Write(input[i : i+n]); err != nil {
			t.Fatal(err)
		}
		i += n
		o, b := s.Take()
		all, bad = append(all, o...), bad+len(b)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	o, b := s.Take()
	all, bad = append(all, o...), bad+len(b)
	return out.String(), kv(all), bad
}

func TestStream(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		hidden    string // output with Hide
		obs       string
		malformed int
	}{
		{"plain", "hello\nworld\n", "hello\nworld\n", "", 0},
		{"markers", "a\nPRISM iter=1\nb\nPRISM iter=2 loss=0.5\n", "a\nb\n", "iter=1 iter=2 loss=0.5", 0},
		{"last line without newline", "x\nPRISM iter=3", "x\n", "iter=3", 0},
		{"plain last line without newline", "x\nPRI", "x\nPRI", "", 0},
		{"crlf", "PRISM iter=4\r\nok\r\n", "ok\r\n", "iter=4", 0},
		{"malformed passes even hidden", "PRISM iter\nPRISM iter=5\n", "PRISM iter\n", "iter=5", 1},
		{"prefix inside a line", "say PRISM iter=1\n", "say PRISM iter=1\n", "", 0},
		{"prefix without blank", "PRISMATIC\nPRISM\n", "PRISMATIC\nPRISM\n", "", 0},
		{"empty lines", "\n\nPRISM a=1\n\n", "\n\n\n", "a=1", 0},
		{"nul bytes", "\x00PRISM a=1\n\x00\x00\n", "\x00PRISM a=1\n\x00\x00\n", "", 0},
		// A carriage return ends a record: a marker printed the way
		// progress-bar libraries print above their bar, or redrawn with it.
		{"marker after a redrawn bar", "\r   \rPRISM iter=5 loss=0.25\n", "\r   \r", "iter=5 loss=0.25", 0},
		{"marker ended by a carriage return", "PRISM a=1\rbar 50%\r\n", "bar 50%\r\n", "a=1", 0},
		{"markers redrawn on one line", "PRISM a=1\rPRISM a=2\n", "", "a=1 a=2", 0},
		{"a colon after the prefix", "PRISM: iter=3\nPRISMATIC\n", "PRISM: iter=3\nPRISMATIC\n", "", 1},
		// A logger's indent and colour codes: the marker is read, and
		// hidden whole.
		{"indented", "  PRISM a=1\n  code\n", "  code\n", "a=1", 0},
		{"coloured", "\x1b[32mPRISM a=1\x1b[0m\nok\n", "ok\n", "a=1", 0},
		{"colour code cut short", "\x1b[3\nPRISM a=1\n", "\x1b[3\n", "a=1", 0},
		{"blank line", "   \nPRISM a=2\n", "   \n", "a=2", 0},
	}
	chunkings := [][]int{{1}, {2}, {3, 1, 7}, {4096}}
	for _, tt := range tests {
		for _, hide := range []bool{false, true} {
			for _, ch := range chunkings {
				out, obs, bad := run(t, []byte(tt.in), hide, ch)
				want := tt.in
				if hide {
					want = tt.hidden
				}
				if out != want {
					t.Errorf("%s (hide=%v, chunks %v): output %q, want %q", tt.name, hide, ch, out, want)
				}
				if obs != tt.obs || bad != tt.malformed {
					t.Errorf("%s (hide=%v, chunks %v): found %q (%d malformed), want %q (%d)", tt.name, hide, ch, obs, bad, tt.obs, tt.malformed)
				}
			}
		}
	}
}

func TestStreamLongLines(t *testing.T) {
	long := bytes.Repeat([]byte("z"), 3*MaxMarkerLine)
	plain := append(append([]byte("start\n"), long...), "\nPRISM after=1\n"...)
	marker := append(append([]byte("PRISM x=1 junk="), long...), "\nPRISM after=1\n"...)
	for _, hide := range []bool{false, true} {
		out, obs, bad := run(t, plain, hide, []int{65536})
		if hide {
			if out != string(plain[:len(plain)-len("PRISM after=1\n")]) {
				t.Errorf("plain long line (hide) not intact")
			}
		} else if out != string(plain) {
			t.Errorf("plain long line not intact")
		}
		if obs != "after=1" || bad != 0 {
			t.Errorf("plain long line: %q %d", obs, bad)
		}
		out, obs, bad = run(t, marker, hide, []int{65536})
		want := string(marker)
		if hide {
			want = string(marker[:len(marker)-len("PRISM after=1\n")])
		}
		if out != want {
			t.Errorf("over-long marker (hide=%v) not passed intact: %d bytes, want %d", hide, len(out), len(want))
		}
		if obs != "after=1" || bad != 1 {
			t.Errorf("over-long marker (hide=%v): %q %d malformed, want after=1 and 1", hide, obs, bad)
		}
	}
}

// TestStreamRandom checks the pass-through promise on random bytes that
// are peppered with marker lines, under random chunkings.
func TestStreamRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 200; i++ {
		var in bytes.Buffer
		for in.Len() < 4000 {
			switch r.IntN(6) {
			case 0:
				in.WriteString("PRISM n=1\n")
			case 1:
				in.WriteString("PRIS")
			case 2:
				in.WriteString(" \x1b[1mPRISM m=2\x1b[0m\n")
			case 3:
				in.WriteString("\x1b[")
			default:
				b := make([]byte, r.IntN(100))
				for j := range b {
					b[j] = byte(r.IntN(256))
				}
				in.Write(b)
			}
		}
		out, obs, bad := run(t, in.Bytes(), false, []int{1 + r.IntN(300), 1 + r.IntN(5)})
		if out != in.String() {
			t.Fatalf("round %d: output differs from input", i)
		}
		// The stream finds what Parse finds record by record.
		var want []policies.Observation
		wantBad := 0
		for _, rec := range bytes.FieldsFunc(in.Bytes(), func(c rune) bool { return c == '\n' || c == '\r' }) {
			var err error
			if want, err = newParser(t).Parse(want, rec, policies.SourceStdout, t0); err != nil {
				wantBad++
			}
		}
		if obs != kv(want) || bad != wantBad {
			t.Fatalf("round %d: stream found %q (%d malformed), Parse %q (%d)", i, obs, bad, kv(want), wantBad)
		}
	}
}

type failWriter struct{}

func (failWriter) Write(p []byte) (int, error) { return 0, errors.New("broken pipe") }

func TestStreamReportsOutputErrors(t *testing.T) {
	for _, hide := range []bool{false, true} {
		s := NewStream(failWriter{}, newParser(t), policies.SourceStdout, fixedClock{t0}, hide)
		if _, err := s.Write([]byte("hello\n")); err == nil {
			t.Errorf("hide=%v: write error was swallowed", hide)
		}
	}
}

func TestPatterns(t *testing.T) {
	re := regexp.MustCompile(`Epoch (?P<iter>\d+).*loss[=:] ?(?P<loss>[0-9.eE+-]+)(?: phase=(?P<phase>\w+))?`)
	p, err := NewParser(DefaultPrefix, re)
	if err != nil {
		t.Fatal(err)
	}
	in := "Epoch 3/10 batch 5 loss: 0.52\r\nnothing here\nPRISM lr=0.1\nEpoch 4/10 loss=4e-1 phase=warm\nEpoch 5 loss: 0.3"
	for _, chunk := range []int{1, 3, 4096} {
		var out bytes.Buffer
		s := NewStream(&out, p, policies.SourceStderr, fixedClock{t0}, false)
		for i := 0; i < len(in); i += chunk {
			_, _ = s.Write([]byte(in[i:min(i+chunk, len(in))]))
		}
		_ = s.Close()
		obs, bad := s.Take()
		if got, want := kv(obs), `iter=3 loss=0.52 lr=0.1 iter=4 loss=0.4 phase="warm" iter=5 loss=0.3`; got != want || len(bad) != 0 {
			t.Errorf("chunk %d: %s (%d bad), want %s", chunk, got, len(bad), want)
		}
		if out.String() != in {
			t.Errorf("chunk %d: output changed", chunk)
		}
	}
	// A progress bar redrawn with "\r": each redraw is matched as it
	// comes, not when the line finally ends (a NaN seen at once).
	bar := "Epoch 1 loss: 0.9\rEpoch 1 loss: 0.5\rEpoch 1 loss: nan"
	nanRe := regexp.MustCompile(`Epoch (?P<iter>\d+) loss: (?P<loss>[0-9.]+|nan)`)
	bp, _ := NewParser(DefaultPrefix, nanRe)
	var bout bytes.Buffer
	bs := NewStream(&bout, bp, policies.SourceStderr, fixedClock{t0}, false)
	_, _ = bs.Write([]byte(bar))
	if obs, _ := bs.Take(); kv(obs) != "iter=1 loss=0.9 iter=1 loss=0.5" || bout.String() != bar {
		t.Errorf("redrawn bar: %s before the line ended (%q)", kv(obs), bout.String())
	}
	// A line longer than MaxMarkerLine is passed, not matched.
	long := "Epoch 9 loss: 1 " + strings.Repeat("x", MaxMarkerLine) + "\nEpoch 10 loss: 2\n"
	var out bytes.Buffer
	s := NewStream(&out, p, policies.SourceStdout, fixedClock{t0}, false)
	_, _ = s.Write([]byte(long))
	obs, _ := s.Take()
	if kv(obs) != "iter=10 loss=2" || out.String() != long {
		t.Errorf("long line: %s", kv(obs))
	}
}

func TestNamesAreInterned(t *testing.T) {
	p := newParser(t)
	names := Names{}
	line := []byte("PRISM iter=1 loss=0.5 lr=3e-4 entropy=1.5 latency_ms=2")
	a, _ := p.ParseWith(nil, line, policies.SourceStdout, t0, names)
	allocs := testing.AllocsPerRun(100, func() {
		a, _ = p.ParseWith(a[:0], line, policies.SourceStdout, t0, names)
	})
	// Five keys: without interning that is five strings per line.
	if allocs > 1 {
		t.Errorf("%v allocations per marker line once names are known", allocs)
	}
}
