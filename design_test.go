package main

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/prism-run/prism-run/policies"
	"github.com/prism-run/prism-run/supervisor"
	"github.com/prism-run/prism-run/telemetry"
)

// The design document is held to the code: its exit-code table to
// supervisor.ExitCode, its policy reference to the policy structs and the
// rule kind registry, its observation names to policies.Names.

// designSection returns the lines of the section of docs/DESIGN.md under
// heading (a whole heading line, such as "## Exit codes"), up to the next
// heading of the same or a higher level.
func designSection(t *testing.T, heading string) []string {
	t.Helper()
	b, err := os.ReadFile("docs/DESIGN.md")
	if err != nil {
		t.Fatal(err)
	}
	level := strings.Index(heading, " ")
	var out []string
	in := false
	for _, l := range strings.Split(string(b), "\n") {
		if h := strings.Index(l, " "); strings.HasPrefix(l, "#") && h > 0 && h <= level && strings.Trim(l[:h], "#") == "" {
			if in {
				break
			}
			in = l == heading
			continue
		}
		if in {
			out = append(out, l)
		}
	}
	if !in && out == nil {
		t.Fatalf("docs/DESIGN.md has no section %q", heading)
	}
	return out
}

// tableColumn is the first column of the first table in lines, without
// backquotes.
func tableColumn(lines []string) []string {
	var out []string
	started := false
	for _, l := range lines {
		if !strings.HasPrefix(l, "|") {
			if started {
				break
			}
			continue
		}
		cells := strings.Split(l, "|")
		cell := strings.Trim(strings.TrimSpace(cells[1]), "`")
		if !started || strings.HasPrefix(cell, "---") {
			started = true // the header row, then the separator
			continue
		}
		out = append(out, cell)
	}
	return out
}

// exitRow is one row of the design's exit-code table, as a predicate over
// outcomes and the code the row promises for them.
type exitRow struct {
	holds func(o supervisor.Outcome) bool
	code  func(o supervisor.Outcome) int
}

func exitRows() map[string]exitRow {
	policy := func(o supervisor.Outcome) bool { return o.Reason == telemetry.ReasonPolicy && !o.Preserve }
	failed := func(o supervisor.Outcome) bool { return o.Reason == telemetry.ReasonError }
	fixed := func(n int) func(supervisor.Outcome) int { return func(supervisor.Outcome) int { return n } }
	own := func(o supervisor.Outcome) int {
		if o.Signal != 0 {
			return 128 + int(o.Signal)
		}
		return o.Code
	}
	return map[string]exitRow{
		"child's own": {func(o supervisor.Outcome) bool { return o.Reason == telemetry.ReasonExited }, own},
		"75":          {func(o supervisor.Outcome) bool { return policy(o) && o.RuleExit == nil && o.Acked }, fixed(75)},
		"124":         {func(o supervisor.Outcome) bool { return policy(o) && o.RuleExit == nil && !o.Acked }, fixed(124)},
		"the rule's exit_code": {func(o supervisor.Outcome) bool { return policy(o) && o.RuleExit != nil },
			func(o supervisor.Outcome) int { return *o.RuleExit }},
		"child's own, with --preserve-status": {func(o supervisor.Outcome) bool { return o.Reason == telemetry.ReasonPolicy && o.Preserve }, own},
		"125": {func(o supervisor.Outcome) bool {
			return failed(o) && !errors.Is(o.Err, supervisor.ErrNotFound) && !errors.Is(o.Err, supervisor.ErrCannotRun)
		}, fixed(125)},
		"126": {func(o supervisor.Outcome) bool { return failed(o) && errors.Is(o.Err, supervisor.ErrCannotRun) }, fixed(126)},
		"65":  {func(o supervisor.Outcome) bool { return o.Reason == telemetry.ReasonNotReproducible }, fixed(65)},
		"127": {func(o supervisor.Outcome) bool { return failed(o) && errors.Is(o.Err, supervisor.ErrNotFound) }, fixed(127)},
		"128+N": {func(o supervisor.Outcome) bool {
			return o.Reason == telemetry.ReasonSignaled || o.Reason == telemetry.ReasonOOM
		}, own},
	}
}

// outcomeGrid is every kind of outcome a run can have: each reason, with
// and without each of the fields that matter to some reason.
func outcomeGrid() []supervisor.Outcome {
	seven := 7
	errs := []error{errors.New("usage: no command"), supervisor.ErrConfig, supervisor.ErrSetup, supervisor.ErrCancelled,
		fmt.Errorf("%w: exec: no such file", supervisor.ErrNotFound), fmt.Errorf("%w: permission denied", supervisor.ErrCannotRun)}
	var out []supervisor.Outcome
	for _, r := range telemetry.Reasons() {
		for _, sig := range []syscall.Signal{0, syscall.SIGTERM, syscall.SIGKILL} {
			for _, code := range []int{0, 3} {
				for _, bits := range []int{0, 1, 2, 3, 4, 5, 6, 7} {
					o := supervisor.Outcome{Reason: r, Signal: sig, Code: code, Acked: bits&1 != 0, Preserve: bits&4 != 0}
					if bits&2 != 0 {
						o.RuleExit = &seven
					}
					if (r == telemetry.ReasonSignaled || r == telemetry.ReasonOOM) && (sig == 0 || code != 0) ||
						r == telemetry.ReasonExited && sig != 0 {
						continue // not an outcome a child can have
					}
					if r != telemetry.ReasonError {
						out = append(out, o)
						continue
					}
					for _, err := range errs {
						o.Err = err
						out = append(out, o)
					}
				}
			}
		}
	}
	return out
}

// The exit-code table is held to ExitCode both ways: every row of the
// table is a row the test knows, and every outcome a run can have falls in
// exactly one row, whose code ExitCode gives. A branch of ExitCode the
// table does not describe fails here.
func TestDesignExitCodes(t *testing.T) {
	rows := exitRows()
	codes := tableColumn(designSection(t, "## Exit codes"))
	for _, code := range codes {
		if _, ok := rows[code]; !ok {
			t.Errorf("the design's exit-code table has a row %q that this test does not know", code)
		}
	}
	for code := range rows {
		if !slices.Contains(codes, code) {
			t.Errorf("this test knows a row %q that the design's table lacks", code)
		}
	}
	for _, o := range outcomeGrid() {
		var in []string
		for code, row := range rows {
			if row.holds(o) {
				in = append(in, code)
			}
		}
		if len(in) != 1 {
			t.Errorf("outcome %+v is in rows %q of the table, want exactly one", o, in)
			continue
		}
		if got, want := supervisor.ExitCode(o), rows[in[0]].code(o); got != want {
			t.Errorf("row %q: ExitCode(%+v) = %d, the table says %d", in[0], o, got, want)
		}
	}
}

func TestDesignObservationNames(t *testing.T) {
	lines := designSection(t, "### Observation names")
	var want []string
	for _, n := range policies.Names() {
		want = append(want, n.Name)
	}
	if got := tableColumn(lines); !slices.Equal(got, want) {
		t.Errorf("the design lists names\n  %v\npolicies.Names() has\n  %v", got, want)
	}
	// The source column too.
	for _, n := range policies.Names() {
		if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, "| `"+n.Name+"` | "+n.Source+" |") }) {
			t.Errorf("the design does not give %s's source as %s", n.Name, n.Source)
		}
	}
}

// The policy reference lists every key of every table, and every field of
// every rule kind, in the code's order.
func TestDesignPolicyReference(t *testing.T) {
	keys := func(v any) []string {
		var out []string
		rt := reflect.TypeOf(v)
		for i := 0; i < rt.NumField(); i++ {
			name, _, _ := strings.Cut(rt.Field(i).Tag.Get("toml"), ",")
			out = append(out, name)
		}
		return out
	}
	fields := func(fs []policies.Field) []string {
		var out []string
		for _, f := range fs {
			out = append(out, f.Name)
		}
		return out
	}
	tables := []struct {
		heading string
		want    []string
	}{
		{"### Top level", keys(policies.Policy{})},
		{"### [limits]", keys(policies.Limits{})},
		{"### [isolation]", keys(policies.Isolation{})},
		{"### [sampling]", keys(policies.Sampling{})},
		{"### [markers]", keys(policies.Markers{})},
		{"### [actions]", keys(policies.Actions{})},
		{"### [recovery]", keys(policies.Recovery{})},
		{"### Every rule", fields(policies.CommonFields())},
	}
	var kindHeadings []string
	for _, k := range policies.Kinds() {
		tables = append(tables, struct {
			heading string
			want    []string
		}{"#### " + k.Name, fields(k.Fields)})
		kindHeadings = append(kindHeadings, k.Name)
	}
	for _, tb := range tables {
		if got := tableColumn(designSection(t, tb.heading)); !slices.Equal(got, tb.want) {
			t.Errorf("%s lists %v, the code has %v", tb.heading, got, tb.want)
		}
	}
	// No kind in the document that the registry lacks.
	for _, l := range designSection(t, "### Rule kinds") {
		if k, ok := strings.CutPrefix(l, "#### "); ok && !slices.Contains(kindHeadings, k) {
			t.Errorf("the design describes a kind %q the registry lacks", k)
		}
	}
}
