package policies

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

const good = `
description = "test"
strict = true

[limits]
memory = "16GiB"
memory_high = 15032385536
cpus = 4.0

[sampling]
interval = "50ms"

[markers]
prefix = "PRISM"
[[markers.pattern]]
regex = 'Epoch (?P<iter>\d+).*loss[=:] ?(?P<loss>[0-9.eE+-]+)'

[actions]
checkpoint_signal = "USR1"
checkpoint_timeout = "30s"
kill_after = "5s"

[[rule]]
name = "latency-hard"
kind = "threshold"
metric = "latency_ms"
above = 5.0
aggregate = "p99"
window = 100
for = "2s"
severity = "critical"
action = "stop"
exit_code = 124

[[rule]]
name = "gpu"
kind = "threshold"
metric = "gpu_memory_bytes"
above = "8GiB"
window = "10s"
aggregate = "max"
severity = "high"
action = "degrade"
what = "free-memory"
escalate = "stop"
escalate_after = "30s"
repeat = "1m"
`

func TestParseGood(t *testing.T) {
	p, err := Parse("good.toml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	r, err := Resolve(p)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Strict || *r.SampleInterval != 50*time.Millisecond || r.CheckpointSignal != "SIGUSR1" ||
		*r.KillAfter != 5*time.Second || len(r.Patterns) != 1 || len(r.Rules) != 2 {
		t.Fatalf("resolved %+v", r)
	}
	if *p.Limits.Memory != 16<<30 {
		t.Errorf("memory = %d", *p.Limits.Memory)
	}
	th := r.Rules[1].(*Threshold)
	if *th.Above != 8<<30 || th.M.Escalate != ActionStop || th.M.Repeat != Repeat(time.Minute) {
		t.Errorf("gpu rule = %+v", th)
	}
}

// Every mistake names the file, the line and the field, in one line.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want string // prefix of the error
	}{
		{"unknown top-level key", "strict = true\nstrikt = true\n", "p.toml:2: strikt: unknown key"},
		{"unknown rule key", "[[rule]]\nname = \"a\"\nkind = \"max\"\nmetric = \"iter\"\nmax = 3\nabove_x = 1\n", "p.toml:6: rule[0].above_x: unknown key"},
		{"wrong type", "[[rule]]\nname = \"a\"\nkind = \"max\"\nmetric = 7\n", "p.toml:4"},
		{"bad duration", "[actions]\nkill_after = \"10 parsecs\"\n", "p.toml:2:"},
		{"bad size", "[limits]\nmemory = \"lots\"\n", "p.toml:2:"},
		{"negative pids", "[limits]\npids = -5\n", "p.toml:2: limits.pids: must be 1..4194304"},
		{"too many cpus", "[limits]\ncpus = 1e308\n", "p.toml:2: limits.cpus: must be 0.01..1048576 cores"},
		{"a quota the kernel refuses", "[limits]\ncpus = 0.0001\n", "p.toml:2: limits.cpus: must be 0.01.."},
		{"memory of no page", "[limits]\nmemory = 100\n", "p.toml:2: limits.memory: must be at least 4096 bytes"},
		{"a size past int64", "[limits]\nmemory = \"9999999TiB\"\n", "p.toml:2:"},
		{"negative nofile", "[limits]\nnofile = -1\n", "p.toml:2: limits.nofile: must not be negative"},
		{"negative duration", "[actions]\nkill_after = \"-1s\"\n", "p.toml:2:"},
		{"syntax", "[[rule]\nname = 1\n", "p.toml:2:7: expected end of table array name"},
		{"unknown kind", "[[rule]]\nname = \"a\"\nkind = \"thresh\"\n", "p.toml:3: rule[0].kind: unknown rule kind \"thresh\""},
		{"unknown action", "[[rule]]\nname = \"a\"\nkind = \"deadline\"\nafter = \"1h\"\naction = \"explode\"\n", "p.toml:5: rule[0].action: unknown action"},
		{"unknown aggregate", "[[rule]]\nname = \"a\"\nkind = \"threshold\"\nmetric = \"x\"\nabove = 1\naggregate = \"p95\"\n", "p.toml:6: rule[0].aggregate: unknown aggregate"},
		{"unknown signal", "[actions]\ncheckpoint_signal = \"SIGFOO\"\n", "p.toml:2: actions.checkpoint_signal: unknown signal"},
		{"field of another kind", "[[rule]]\nname = \"a\"\nkind = \"threshold\"\nmetric = \"x\"\nabove = 1\npatience = 3\n", "p.toml:6: rule[0].patience: does not apply to a threshold rule"},
		{"degrade without what", "[[rule]]\nname = \"a\"\nkind = \"max\"\nmetric = \"x\"\nmax = 1\naction = \"degrade\"\n", "p.toml:1: rule[0].what: a degrade action needs 'what'"},
		{"unknown what", "[[rule]]\nname = \"a\"\nkind = \"max\"\nmetric = \"x\"\nmax = 1\naction = \"degrade\"\nwhat = \"pray\"\n", "p.toml:7: rule[0].what: unknown degrade request"},
		{"missing field", "[[rule]]\nname = \"a\"\nkind = \"deadline\"\n", "p.toml:1: rule[0].after: a deadline rule needs after"},
		{"no name", "[[rule]]\nkind = \"deadline\"\nafter = \"1h\"\n", "p.toml:1: rule[0]: a rule needs a name"},
		{"second rule located", "[[rule]]\nname = \"a\"\nkind = \"deadline\"\nafter = \"1h\"\n\n[[rule]]\nname = \"b\"\nkind = \"stall\"\nmetric = \"loss\"\n", "p.toml:6: rule[1].patience: a stall rule needs patience"},
		{"duplicate name", "[[rule]]\nname = \"a\"\nkind = \"deadline\"\nafter = \"1h\"\n[[rule]]\nname = \"a\"\n", "p.toml:6: rule[1].name: rule \"a\" is already defined"},
		{"window too big", "[[rule]]\nname = \"a\"\nkind = \"threshold\"\nmetric = \"x\"\nabove = 1\nwindow = 99999999\n", "p.toml:6:"},
		{"bad regex", "[[markers.pattern]]\nregex = '(?P<x>['\n", "p.toml:2: markers.pattern[0].regex:"},
		{"regex without a group", "[[markers.pattern]]\nregex = 'loss'\n", "p.toml:2: markers.pattern[0].regex: has no named group"},
		{"sampling too fast", "[sampling]\ninterval = \"1ms\"\n", "p.toml:2: sampling.interval: must be at least 10ms"},
		{"bad repeat", "[[rule]]\nname = \"a\"\nkind = \"deadline\"\nafter = \"1h\"\nrepeat = \"sometimes\"\n", "p.toml:5: rule[0].repeat:"},
		{"exit code range", "[[rule]]\nname = \"a\"\nkind = \"deadline\"\nafter = \"1h\"\nexit_code = 300\n", "p.toml:5: rule[0].exit_code: must be 0..255"},
		{"for on a momentary kind", "[[rule]]\nname = \"e\"\nkind = \"monotonic\"\nmetric = \"entropy\"\nfor = \"1s\"\n", "p.toml:5: rule[0].for: does not apply to a monotonic rule: it holds only on the observation"},
		{"escalate on a momentary kind", "[[rule]]\nname = \"g\"\nkind = \"health\"\naction = \"checkpoint\"\nescalate = \"kill\"\nescalate_after = \"1m\"\n", "p.toml:5: rule[0].escalate: does not apply to a health rule"},
		{"escalate alone", "[[rule]]\nname = \"a\"\nkind = \"deadline\"\nafter = \"1h\"\nescalate = \"kill\"\n", "p.toml:5: rule[0].escalate: needs escalate_after"},
		{"unknown strategy", "[recovery]\nstrategy = \"pray\"\n", "p.toml:2: recovery.strategy: unknown strategy \"pray\" (checkpoint-stop | restart | rollback | failover)"},
		{"unknown restart mode", "[recovery]\nrestart = \"sometimes\"\n", "p.toml:2: recovery.restart: unknown restart mode"},
		{"negative max restarts", "[recovery]\nmax_restarts = -1\n", "p.toml:2: recovery.max_restarts: must be 0..1000000"},
		{"backoff max below initial", "[recovery]\nbackoff_initial = \"1m\"\nbackoff_max = \"10s\"\n", "p.toml:3: recovery.backoff_max: is below backoff_initial"},
		{"jitter of 1", "[recovery]\njitter = 1.0\n", "p.toml:2: recovery.jitter: must be at least 0 and below 1"},
		{"empty fallback", "[recovery]\nfallback = []\n", "p.toml:2: recovery.fallback: must name a command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("p.toml", []byte(tt.src))
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error\n  %s\nwant prefix\n  %s", err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

func TestMergeLayers(t *testing.T) {
	mission := mustParse(t, `
[actions]
kill_after = "10s"
[[markers.pattern]]
regex = 'a=(?P<a>\d+)'
[[rule]]
name = "latency-hard"
kind = "threshold"
metric = "latency_ms"
above = 5.0
severity = "critical"
action = "stop"
[[rule]]
name = "uptime"
kind = "ratio"
metric = "latency_ms"
above = 5.0
at_least = 0.999
over = "60s"
`)
	user := mustParse(t, `
[actions]
checkpoint_timeout = "5s"
[[markers.pattern]]
regex = 'b=(?P<b>\d+)'
[[rule]]
name = "latency-hard"
above = 8.0
[[rule]]
name = "uptime"
enabled = false
[[rule]]
name = "deadline"
kind = "deadline"
after = "1h"
`)
	r, err := Resolve(Merge(mission, user))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Rules) != 2 {
		t.Fatalf("%d rules, want latency-hard and deadline (uptime disabled)", len(r.Rules))
	}
	th := r.Rules[0].(*Threshold)
	if *th.Above != 8 || th.M.Severity != SeverityCritical || th.M.Action != ActionStop {
		t.Errorf("merged latency-hard = %+v: the later layer changes only what it sets", th.M)
	}
	if *r.KillAfter != 10*time.Second || *r.CheckpointTimeout != 5*time.Second || len(r.Patterns) != 2 {
		t.Errorf("merged settings %+v", r)
	}
	// A rule that changes nothing below it has no kind.
	orphan := mustParse(t, "[[rule]]\nname = \"nope\"\nabove = 1\n")
	if _, err := Resolve(Merge(mission, orphan)); err == nil || !strings.Contains(err.Error(), `rule "nope": has no kind`) {
		t.Errorf("orphan override: %v", err)
	}
}

func mustParse(t *testing.T, src string) *Policy {
	t.Helper()
	p, err := Parse("t.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// The resolved policy printed as TOML (dry-run) parses back to the same.
func TestEncodeRoundTrip(t *testing.T) {
	for _, name := range append(MissionNames(), "good") {
		var p *Policy
		if name == "good" {
			p = mustParse(t, good)
		} else {
			var err error
			if p, err = LoadMission(name); err != nil {
				t.Fatal(err)
			}
		}
		var buf bytes.Buffer
		if err := toml.NewEncoder(&buf).Encode(p); err != nil {
			t.Fatal(err)
		}
		back, err := Parse(name+" (encoded)", buf.Bytes())
		if err != nil {
			t.Fatalf("%s: encoded policy does not parse: %v\n%s", name, err, buf.String())
		}
		var again bytes.Buffer
		_ = toml.NewEncoder(&again).Encode(back)
		if again.String() != buf.String() {
			t.Errorf("%s: round trip changed the policy:\n%s\n---\n%s", name, buf.String(), again.String())
		}
	}
}

func TestMissions(t *testing.T) {
	want := map[string][]string{
		"default":      {"gpu-memory", "gpu-memory-warning", "host-memory", "max-iterations", "convergence-stall", "entropy-decrease", "gpu-utilization", "gpu-utilization-very-low", "gpu-health"},
		"pwsa":         {"latency-hard", "uptime"},
		"world-record": {"colors-above-target", "colors-stuck", "deadline"},
		"llm":          {"converge-within-3", "privacy-budget", "consensus-low"},
	}
	if got := MissionNames(); strings.Join(got, ",") != "default,llm,pwsa,world-record" {
		t.Fatalf("missions %v", got)
	}
	for name, rules := range want {
		p, err := LoadMission(name)
		if err != nil {
			t.Fatal(err)
		}
		r, err := Resolve(p)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, rule := range r.Rules {
			got = append(got, rule.Meta().Name)
		}
		if strings.Join(got, ",") != strings.Join(rules, ",") {
			t.Errorf("%s rules %v, want %v", name, got, rules)
		}
		if p.Description == nil {
			t.Errorf("%s has no description", name)
		}
	}
	if _, err := LoadMission("moon-landing"); err == nil {
		t.Error("unknown mission loaded")
	}
}

// The seed's numbers are in the missions.
func TestMissionNumbers(t *testing.T) {
	rules := func(name string) map[string]Rule {
		p, _ := LoadMission(name)
		r, err := Resolve(p)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]Rule{}
		for _, x := range r.Rules {
			out[x.Meta().Name] = x
		}
		return out
	}
	d := rules("default")
	if g := d["gpu-memory"].(*Threshold); *g.Above != 8589934592 || g.M.Severity != SeverityHigh {
		t.Errorf("gpu-memory %+v", g)
	}
	if m := d["max-iterations"].(*Max); m.Max != 1e6 {
		t.Errorf("max-iterations %v", m.Max)
	}
	if s := d["convergence-stall"].(*Stall); s.MinDelta != 1e-6 || s.M.Severity != SeverityMedium {
		t.Errorf("stall %+v", s)
	}
	if e := d["entropy-decrease"].(*Monotonic); e.Tolerance != 1e-10 || e.M.Severity != SeverityCritical {
		t.Errorf("entropy %+v", e)
	}
	if u := d["gpu-utilization"].(*Threshold); *u.Below != 0.8 {
		t.Errorf("utilization %+v", u)
	}
	if u := d["gpu-utilization-very-low"].(*Threshold); *u.Below != 0.5 {
		t.Errorf("utilization low %+v", u)
	}
	if w := d["gpu-memory-warning"].(*Threshold); *w.Above != 7.5e9 {
		t.Errorf("warning %+v", w)
	}
	p := rules("pwsa")
	if l := p["latency-hard"].(*Threshold); *l.Above != 5 || l.M.Action != ActionStop {
		t.Errorf("latency %+v", l)
	}
	if u := p["uptime"].(*Ratio); u.AtLeast != 0.999 {
		t.Errorf("uptime %+v", u)
	}
	w := rules("world-record")
	if dl := w["deadline"].(*Deadline); dl.After != 24*time.Hour || dl.M.Action != ActionCheckpointStop {
		t.Errorf("deadline %+v", dl)
	}
	if c := w["colors-above-target"].(*Threshold); *c.Above != 82 || c.M.Action != ActionLog {
		t.Errorf("colors %+v", c)
	}
	l := rules("llm")
	if c := l["converge-within-3"].(*ConvergeBy); c.Within != 3 || c.M.What != "reduce-ensemble" {
		t.Errorf("converge %+v", c)
	}
	if b := l["privacy-budget"].(*Budget); b.M.ExitCode == nil || *b.M.ExitCode != 0 || b.M.Action != ActionCheckpointStop {
		t.Errorf("privacy %+v", b)
	}
}

func TestAllKindsFile(t *testing.T) {
	p, err := LoadFile("testdata/policies/all-kinds.toml")
	if err != nil {
		t.Fatal(err)
	}
	r, err := Resolve(p)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, rule := range r.Rules {
		kinds = append(kinds, rule.Meta().Kind)
	}
	if strings.Join(kinds, ",") != strings.Join(KindNames(), ",") {
		t.Errorf("kinds %v, want every kind %v", kinds, KindNames())
	}
}
