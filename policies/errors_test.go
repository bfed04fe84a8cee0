package policies

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// More of what a person gets wrong in a policy file, each refused on one
// line naming the file, the line, the field and what was wanted.
func TestParseMistakes(t *testing.T) {
	const rule = "[[rule]]\nname = \"a\"\n"
	tests := []struct{ src, want string }{
		{"[[limits]]\nmemory = 5\n", "p.toml:1: limits: [[limits]] is an array of tables; write [limits], one table"},
		{"[rule]\nname = \"a\"\n", "p.toml:1: rule: [rule] is one table; write [[rule]] (an array of tables), one per entry"},
		{rule + "kind = \"max\"\nmetric = \"x\"\nmax = 1\nenabled = \"yes\"\n", "p.toml:6: rule[0].enabled: want true or false, got a string"},
		{rule + "kind = \"health\"\nevents = \"xid\"\n", "p.toml:4: rule[0].events: want an array [...], got a string"},
		{rule + "kind = \"health\"\nevents = [{a = 1}]\n", "p.toml:4: rule[0].events: want a string in quotes, got a table"},
		{"strict = [1]\n", "p.toml:1: strict: want true or false, got an array"},
		{"[limits.x]\nmemory = 5\n", `p.toml:1: limits.x: unknown key; did you mean "as"? ([limits]: memory, memory_high,`},
		{"[markers]\nprefix = \"two words\"\n", "p.toml:2: markers.prefix: must be one word"},
		{"[markers]\nprefix = \"\"\n", "p.toml:2: markers.prefix: must be one word"},
		{rule + "kind = \"heartbeat\"\n", "p.toml:1: rule[0]: heartbeat needs 'timeout', a positive duration"},
		{rule + "kind = \"max\"\nmetric = \"x\"\nmax = 1\nseverity = \"urgent\"\n", `p.toml:6: rule[0].severity: unknown severity "urgent" (low | medium | high | critical)`},
		{rule + "kind = \"max\"\nmetric = \"x\"\nmax = 1\nsignal = \"SIGFOO\"\n", `p.toml:6: rule[0].signal: unknown signal "SIGFOO"`},
		{rule + "kind = \"max\"\nmetric = \"x\"\nmax = 1\nescalate_after = \"1m\"\n", "p.toml:6: rule[0].escalate_after: needs escalate (the action to escalate to)"},
		{rule + "kind = \"max\"\nmetric = \"x\"\nmax = 1\nescalate = \"explode\"\nescalate_after = \"1m\"\n", `p.toml:6: rule[0].escalate: unknown action "explode" (log | alert |`},
		{rule + "kind = \"budget\"\nmetric = \"x\"\n", "p.toml:1: rule[0].budget: a budget rule needs budget"},
		{rule + "kind = \"converge-by\"\n", "p.toml:1: rule[0].within: a converge-by rule needs within"},
		{rule + "kind = \"max\"\nmetric = \"x\"\n", "p.toml:1: rule[0].max: a max rule needs max"},
		{rule + "kind = \"ratio\"\nmetric = \"x\"\nabove = 1\nover = \"1m\"\n", "p.toml:1: rule[0].at_least: a ratio rule needs at_least"},
		{rule + "kind = \"ratio\"\nmetric = \"x\"\nabove = 1\nat_least = 0.5\n", "p.toml:1: rule[0]: ratio needs 'over', a positive duration"},
		{rule + "kind = \"monotonic\"\nmetric = \"x\"\ndirection = \"up\"\n", "p.toml:5: rule[0].direction: want increasing (must not decrease) or decreasing (must not increase)"},
		{rule + "kind = \"stall\"\nmetric = \"x\"\npatience = 3\ngoal = \"best\"\n", "p.toml:6: rule[0].goal: want min (lower is better) or max"},
		{rule + "kind = \"threshold\"\nabove = 1\n", "p.toml:1: rule[0].metric: a threshold rule needs metric"},
		{rule + "kind = \"threshold\"\nmetric = \"x\"\n", "p.toml:1: rule[0]: a threshold rule needs above or below"},
		{rule + "kind = \"budget\"\nbudget = 1\n", "p.toml:1: rule[0]: budget needs a metric and 'budget'"},
		{rule + "kind = \"max\"\nmax = 1\n", "p.toml:1: rule[0]: max needs a metric and 'max'"},
		{rule + "kind = \"converge-by\"\nwithin = 0\n", "p.toml:1: rule[0]: converge-by needs 'within' > 0"},
		{rule + "kind = \"monotonic\"\nmetric = \"x\"\ntolerance = -1.0\n", "p.toml:1: rule[0]: monotonic needs a metric and a tolerance >= 0"},
		{rule + "kind = \"stall\"\nmetric = \"x\"\npatience = 0\n", "p.toml:1: rule[0]: stall needs a metric, patience >= 1 and min_delta >= 0"},
		{rule + "kind = \"threshold\"\nmetric = \"x\"\nabove = \"lots\"\n", `p.toml:5:10: rule.above: bad number "lots": want a number, or a size such as "8GiB"`},
		{rule + "kind = \"threshold\"\nmetric = \"x\"\nabove = true\n", "p.toml:5:9: rule.above: bad number true"},
		{rule + "kind = \"threshold\"\nmetric = \"x\"\nabove = nan\n", "p.toml:5:9: rule.above: bad number nan: a bound must be a number"},
		{rule + "kind = \"threshold\"\nmetric = \"x\"\nabove = 1\nwindow = true\n", "p.toml:6:10: rule.window: bad window true: want a number of observations"},
		{rule + "kind = \"threshold\"\nmetric = \"x\"\nabove = 1\nwindow = \"soon\"\n", `p.toml:6:11: rule.window: bad window "soon"`},
		{"[limits]\nmemory = -5\n", "p.toml:2:10: limits.memory: bad size -5: must not be negative"},
		{"[limits]\nmemory = true\n", `p.toml:2:10: limits.memory: bad size true: want bytes or a string such as "8GiB"`},
		{"[limits]\nmemory_high = 100\n", "p.toml:2: limits.memory_high: must be at least 4096 bytes (one page)"},
		{"[limits]\nmemory = \"1GiB\"\nmemory_high = \"2GiB\"\n", "p.toml:3: limits.memory_high: must not be above limits.memory"},
		{"[limits]\ncpu_time = 0\n", "p.toml:2: limits.cpu_time: must be positive"},
		{"[actions]\nkill_after = true\n", "p.toml:2:14: actions.kill_after: bad duration true: want seconds"},
		{"[rules]\nx = 1\n", `p.toml:1: rules: unknown key; did you mean "rule"? (top level: description, strict,`},
		{rule + "kind = \"max\"\nmetric = \"x\"\nmax = 1\n[[rule]]\nname = \"b\"\npatiense = 3\n", `p.toml:8: rule[1].patiense: unknown key; did you mean "patience" (a field of stall rules)?`},
		{rule + "escalat = \"kill\"\n", `p.toml:3: rule[0].escalat: unknown key; did you mean "escalate" (a field of every rule)?`},
		{"[recovery.x]\ny = 1\n", "p.toml:1: recovery.x: unknown key ([recovery]: strategy, restart,"},
	}
	for _, tt := range tests {
		_, err := Parse("p.toml", []byte(tt.src))
		if err == nil || !errors.Is(err, ErrInvalid) || !strings.HasPrefix(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q:\n  got  %v\n  want %s...", tt.src, err, tt.want)
		}
	}
}

// A policy file is read from disk, or refused naming the file and why.
func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mine.toml")
	if err := os.WriteFile(path, []byte("[actions]\nkill_after = \"30s\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := LoadFile(path)
	if err != nil || p.Actions.KillAfter.D() != 30*time.Second {
		t.Fatalf("LoadFile = %+v, %v", p, err)
	}
	missing := filepath.Join(dir, "missing.toml")
	if _, err := LoadFile(missing); err == nil || !errors.Is(err, ErrInvalid) ||
		err.Error() != missing+": cannot read the policy file: no such file or directory" {
		t.Errorf("missing file: %v", err)
	}
}

// Every [recovery] field, set, is the plan's.
func TestRecoveryPlanFields(t *testing.T) {
	res, err := resolveSrc(t, `[recovery]
restart = "always"
max_restarts = 7
max_restarts_per_hour = 2
backoff_initial = "1s"
backoff_max = "4s"
jitter = 0.1
healthy_after = "90s"
keep = 2
`)
	if err != nil {
		t.Fatal(err)
	}
	want := RecoveryPlan{Strategy: ActionCheckpointStop, Restart: RestartAlways, MaxRestarts: 7, MaxRestartsPerHour: 2,
		BackoffInitial: time.Second, BackoffMax: 4 * time.Second, Jitter: 0.1, HealthyAfter: 90 * time.Second, Keep: 2}
	if got := res.Recovery; got.Strategy != want.Strategy || got.Restart != want.Restart || got.MaxRestarts != want.MaxRestarts ||
		got.MaxRestartsPerHour != want.MaxRestartsPerHour || got.BackoffInitial != want.BackoffInitial || got.BackoffMax != want.BackoffMax ||
		got.Jitter != want.Jitter || got.HealthyAfter != want.HealthyAfter || got.Keep != want.Keep {
		t.Errorf("plan %+v, want %+v", got, want)
	}
}

// A window keeps exactly its newest observations however many pass
// through it, and one NaN in it makes every aggregate but the last NaN
// (a threshold fails closed).
func TestWindowAggregates(t *testing.T) {
	w := newWindow(10, 0)
	if v := w.agg(AggMean); v == v {
		t.Errorf("an empty window's mean is %v, want NaN", v)
	}
	for i := 1; i <= 1000; i++ {
		w.add(t0.Add(time.Duration(i)*time.Second), float64(i))
	}
	want := map[Aggregate]float64{AggLast: 1000, AggMean: 995.5, AggMax: 1000, AggMin: 991, AggP50: 995, AggP90: 999, AggP99: 1000}
	for a, v := range want {
		if got := w.agg(a); got != v {
			t.Errorf("%s over the last 10 of 1..1000 = %v, want %v", a, got, v)
		}
	}
	w.add(t0.Add(1001*time.Second), nan)
	w.add(t0.Add(1002*time.Second), 5)
	for _, a := range []Aggregate{AggMean, AggMax, AggMin, AggP50} {
		if v := w.agg(a); v == v {
			t.Errorf("%s with a NaN in the window = %v, want NaN", a, v)
		}
	}
	if v := w.agg(AggLast); v != 5 {
		t.Errorf("last = %v", v)
	}
	// A duration window keeps the observations of its span.
	d := newWindow(0, 10*time.Second)
	for i := 0; i <= 300; i++ {
		d.add(t0.Add(time.Duration(i)*time.Second), float64(i))
	}
	if d.len() != 11 || d.agg(AggMin) != 290 {
		t.Errorf("10s window over 0..300s: %d samples, min %v; want 11 samples from 290", d.len(), d.agg(AggMin))
	}
}
