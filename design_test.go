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

// Each row of the exit-code table, as outcomes ExitCode must map to it.
func TestDesignExitCodes(t *testing.T) {
	seven := 7
	errNotFound := fmt.Errorf("%w: exec: no such file", supervisor.ErrNotFound)
	rows := map[string][]struct {
		o    supervisor.Outcome
		want int
	}{
		"child's own": {{supervisor.Outcome{Reason: telemetry.ReasonExited, Code: 0}, 0}, {supervisor.Outcome{Reason: telemetry.ReasonExited, Code: 3}, 3}},
		"75":          {{supervisor.Outcome{Reason: telemetry.ReasonPolicy, Acked: true}, 75}},
		"124": {{supervisor.Outcome{Reason: telemetry.ReasonPolicy}, 124},
			{supervisor.Outcome{Reason: telemetry.ReasonPolicy, Signal: syscall.SIGKILL}, 124}}, // escalated: still 124
		"the rule's exit_code": {{supervisor.Outcome{Reason: telemetry.ReasonPolicy, RuleExit: &seven, Acked: true}, 7}},
		"child's own, with --preserve-status": {{supervisor.Outcome{Reason: telemetry.ReasonPolicy, Preserve: true, Code: 0, Acked: true}, 0},
			{supervisor.Outcome{Reason: telemetry.ReasonPolicy, Preserve: true, Signal: syscall.SIGTERM}, 143}},
		"125": {{supervisor.Failed(errors.New("usage: no command")), 125}, {supervisor.Failed(supervisor.ErrConfig), 125},
			{supervisor.Failed(supervisor.ErrCancelled), 125}, {supervisor.Failed(supervisor.ErrSetup), 125}},
		"126": {{supervisor.Failed(fmt.Errorf("%w: permission denied", supervisor.ErrCannotRun)), 126}},
		"127": {{supervisor.Failed(errNotFound), 127}},
		"128+N": {{supervisor.Outcome{Reason: telemetry.ReasonSignaled, Signal: syscall.SIGTERM}, 143},
			{supervisor.Outcome{Reason: telemetry.ReasonSignaled, Signal: syscall.SIGKILL}, 137},
			{supervisor.Outcome{Reason: telemetry.ReasonOOM, Signal: syscall.SIGKILL}, 137}},
	}
	codes := tableColumn(designSection(t, "## Exit codes"))
	for _, code := range codes {
		cases, ok := rows[code]
		if !ok {
			t.Errorf("the design's exit-code table has a row %q that ExitCode's test does not know", code)
		}
		for _, c := range cases {
			if got := supervisor.ExitCode(c.o); got != c.want {
				t.Errorf("row %q: ExitCode(%+v) = %d, want %d", code, c.o, got, c.want)
			}
		}
	}
	for code := range rows {
		if !slices.Contains(codes, code) {
			t.Errorf("ExitCode gives %q, which the design's table lacks", code)
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
