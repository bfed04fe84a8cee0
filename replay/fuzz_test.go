package replay

import (
	"bytes"
	"encoding/json"
	"io"
	"reflect"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/prism-run/prism-run/markers"
	"github.com/prism-run/prism-run/policies"
)

// fuzzMissions are the built-in missions, parsed once: each replay
// resolves fresh rules from them (rules keep state).
var fuzzMissions = sync.OnceValue(func() map[string]*policies.Policy {
	out := map[string]*policies.Policy{}
	for _, name := range policies.MissionNames() {
		p, err := policies.LoadMission(name)
		if err != nil {
			panic(err)
		}
		out[name] = p
	}
	return out
})

// FuzzReplay: whatever the recording, replay never panics or fails, and
// is deterministic whatever the reads: the same bytes read at once and a
// byte at a time give the same output, byte for byte, and the same
// summary. Every decision is one output line (a JSON object with -format
// json), and the summary's counts never exceed the recording's records.
func FuzzReplay(f *testing.F) {
	for i, s := range []string{
		"2026-11-27T10:00:00Z starting\n2026-11-27T10:00:01.5Z PRISM frame=1 latency_ms=3.1\n2026-11-27T10:00:02Z PRISM latency_ms=7.5\n",
		"PRISM t=0 colors=90\nPRISM t=3600 colors=88\nPRISM t=86401 colors=85\n",
		"2026-11-27T10:00:00Z # prism-run started\n2026-11-27T10:00:01Z # probe gpu_memory_bytes=1e12\n" +
			"2026-11-27T10:00:02Z # prism-run started\n2026-11-27T10:00:03Z PRISM checkpoint=\"/ck/1\"\n",
		"PRISM iter=1 converged=false\rPRISM iter=9\r\nPRISM privacy_spent=2\n",
		"PRISM checkpoint=\"/ck/1\"\nPRISM broken\nPRISM {\"loss\":1,\"entropy\":2}\nPRISM entropy=1\n",
		"2026-11-27T10:00:00+01:00\tPRISM latency_ms=NaN t=-1e300\n2026-11-27T09:00:00Z PRISM latency_ms=+Inf\n",
	} {
		f.Add([]byte(s), uint8(i))
	}
	p, _ := markers.NewParser(markers.DefaultPrefix)
	names := policies.MissionNames()
	f.Fuzz(func(t *testing.T, rec []byte, opts uint8) {
		mission := fuzzMissions()[names[int(opts)%len(names)]]
		o := Options{Parser: p, JSON: opts&4 != 0, KeepGoing: opts&8 != 0,
			Tick: time.Duration(opts>>4) * 10 * time.Millisecond, CheckpointTimeout: time.Duration(opts>>6) * time.Second}
		run := func(r io.Reader) (string, Summary) {
			res, err := policies.Resolve(mission)
			if err != nil {
				t.Fatal(err)
			}
			o.Rules = res.Rules
			var out bytes.Buffer
			sum, err := Run(r, &out, o)
			if err != nil {
				t.Fatalf("replay failed: %v", err)
			}
			return out.String(), sum
		}
		out, sum := run(bytes.NewReader(rec))
		out2, sum2 := run(iotest.OneByteReader(bytes.NewReader(rec)))
		if out != out2 || !reflect.DeepEqual(sum, sum2) {
			t.Fatalf("two replays of one recording differ:\n%s\n%+v\n---\n%s\n%+v", out, sum, out2, sum2)
		}
		checkReplayOutput(t, rec, out, sum, o.JSON)
	})
}

// checkReplayOutput holds a replay's output to its summary: one line per
// decision, then (text) one per idle rule, one for malformed markers and
// one for the decision that ended the child; and no more lines, markers
// or malformed markers than records.
func checkReplayOutput(t *testing.T, rec []byte, out string, sum Summary, asJSON bool) {
	t.Helper()
	records := bytes.Count(rec, []byte{'\n'}) + bytes.Count(rec, []byte{'\r'}) + 1
	if sum.Lines > records || sum.Markers+sum.Malformed > sum.Lines || sum.EndedBy != nil && sum.Decisions == 0 {
		t.Fatalf("summary %+v of %d records", sum, records)
	}
	if out != "" && !strings.HasSuffix(out, "\n") {
		t.Fatalf("output ends without a newline: %q", out)
	}
	count := map[string]int{}
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		kind, _, _ := strings.Cut(l, ": ")
		switch {
		case l == "" && out == "":
			continue
		case asJSON:
			var d map[string]any
			if err := json.Unmarshal([]byte(l), &d); err != nil || d["rule"] == nil {
				t.Fatalf("JSON output line %q: %v", l, err)
			}
			kind = "decision"
		case strings.HasPrefix(l, "+") && count["idle"]+count["malformed"]+count["ended"] == 0:
			kind = "decision"
		case kind != "idle" && kind != "malformed" && kind != "ended" || count["ended"] > 0:
			t.Fatalf("output line %q is out of place (a decision's reason broke its line?):\n%s", l, out)
		}
		count[kind]++
	}
	want := map[string]int{"decision": sum.Decisions}
	if !asJSON {
		want["idle"], want["malformed"], want["ended"] = len(sum.Idle), min(sum.Malformed, 1), 0
		if sum.EndedBy != nil {
			want["ended"] = 1
		}
	}
	for k, n := range want {
		if count[k] != n {
			t.Fatalf("%d %s lines, the summary says %d:\n%s", count[k], k, n, out)
		}
	}
}
