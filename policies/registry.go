package policies

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Kind declares one rule kind: its name, the fields of its [[rule]] table
// beside the common ones, the severity of a rule that names none, and how
// a table becomes a rule. Each kind declares itself in its own file
// (kind_*.go); Kinds is the registry, and every list of kinds and fields
// in messages, hints and checks derives from it.
type Kind struct {
	Name string
	Doc  string // what a rule of this kind holds on, in one line
	// Fields are the kind's own fields, in the order the design document
	// lists them.
	Fields []Field
	// Severity is the default severity (medium unless the kind says).
	Severity Severity
	// Momentary: a rule of the kind holds only on the observation that
	// shows the violation (a step against the trend, a health event),
	// never for a stretch of time, so `for` and `escalate` cannot apply.
	Momentary bool
	build     func(r *RuleSpec, m Meta, c ruleCheck) (Rule, error)
}

// Field is one field of a [[rule]] table.
type Field struct {
	Name string // the TOML key
	Doc  string
}

// Kinds is the registry of rule kinds, in the design document's order.
// Adding a kind is one kind_*.go file and one line here.
func Kinds() []Kind {
	return []Kind{
		thresholdKind(), monotonicKind(), stallKind(), convergeByKind(), maxKind(),
		deadlineKind(), budgetKind(), ratioKind(), heartbeatKind(), healthKind(),
	}
}

// KindNames lists the kinds' names, in registry order.
func KindNames() []string {
	var out []string
	for _, k := range Kinds() {
		out = append(out, k.Name)
	}
	return out
}

func kindNamed(name string) (Kind, bool) {
	for _, k := range Kinds() {
		if k.Name == name {
			return k, true
		}
	}
	return Kind{}, false
}

// CommonFields are the fields every [[rule]] may have, whatever its kind.
func CommonFields() []Field {
	return []Field{
		{"name", "the rule's name; a later layer with the same name changes this rule"},
		{"kind", "one of the kinds below"},
		{"enabled", "false turns the rule off (default true)"},
		{"metric", "the observation the rule watches"},
		{"severity", "low | medium | high | critical; sets the default action"},
		{"action", "what to do when it holds: " + actionList()},
		{"signal", "the signal the action sends, instead of the policy's"},
		{"exit_code", "prism-run's exit code when this rule stops the child (0..255)"},
		{"what", "the degrade request named in the control line: " + strings.Join(DegradeRequests(), " | ")},
		{"repeat", "once | every | episode (default) | a cooldown such as \"10m\""},
		{"for", "the condition must hold this long before the rule fires"},
		{"escalate", "the next action when the rule still holds escalate_after after it fired"},
		{"escalate_after", "how long the first action has to work"},
	}
}

// DegradeRequests are what a degrade action may name in `what`.
func DegradeRequests() []string {
	return []string{"reduce-precision", "reduce-ensemble", "increase-temperature", "increase-effort", "free-memory"}
}

func actionList() string {
	names := make([]string, len(knownActions))
	for i, a := range knownActions {
		names[i] = string(a)
	}
	return strings.Join(names, " | ")
}

func fieldNames(fs []Field) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.Name
	}
	return out
}

// ruleCheck names a rule table's fields in errors ("rule#2.above").
type ruleCheck struct {
	f    string // the table: "rule#2"
	kind string
}

// need fails when a required field is missing.
func (c ruleCheck) need(field string, ok bool) error {
	if !ok {
		return fieldErr(c.f+"."+field, "a %s rule needs %s", c.kind, field)
	}
	return nil
}

// bad is a field whose value is wrong.
func (c ruleCheck) bad(field, format string, a ...any) error {
	return fieldErr(c.f+"."+field, format, a...)
}

// build turns a rule table into a Rule; f names it in errors ("rule#2").
// A disabled rule builds to nil.
func (r *RuleSpec) build(f string) (Rule, error) {
	kind, ok := kindNamed(str(r.Kind))
	if !ok {
		return nil, fieldErr(f+".kind", "unknown rule kind %q (%s)", str(r.Kind), strings.Join(KindNames(), " | "))
	}
	if err := r.checkFields(f, kind); err != nil {
		return nil, err
	}
	if r.Enabled != nil && !*r.Enabled {
		return nil, nil
	}
	m, err := r.meta(f, kind)
	if err != nil {
		return nil, err
	}
	if kind.Momentary && r.For != nil {
		return nil, fieldErr(f+".for", "does not apply to a %s rule: it holds only on the observation that shows the violation, never for a stretch of time (a threshold rule on the metric holds for as long as it is out of bounds)", kind.Name)
	}
	if kind.Momentary && r.Escalate != nil {
		return nil, fieldErr(f+".escalate", "does not apply to a %s rule: it holds only on the observation that shows the violation, so it never still holds later", kind.Name)
	}
	rule, err := kind.build(r, m, ruleCheck{f: f, kind: kind.Name})
	if err != nil {
		if fe := (*FileError)(nil); errors.As(err, &fe) {
			return nil, err
		}
		// The constructor names the rule itself; f already does.
		msg := strings.TrimPrefix(err.Error(), ErrInvalid.Error()+": ")
		msg = strings.TrimPrefix(strings.TrimPrefix(msg, fmt.Sprintf("rule %q: ", m.Name)), fmt.Sprintf("rule %q ", m.Name))
		return nil, fieldErr(f, "%s", msg)
	}
	return rule, nil
}

// meta reads the common fields of a rule table.
func (r *RuleSpec) meta(f string, kind Kind) (Meta, error) {
	m := Meta{Name: str(r.Name), Severity: kind.Severity, Metric: str(r.Metric)}
	var err error
	if r.Severity != nil {
		if m.Severity, err = ParseSeverity(*r.Severity); err != nil {
			return m, fieldErr(f+".severity", "unknown severity %q (low | medium | high | critical)", *r.Severity)
		}
	}
	if r.Action != nil {
		if m.Action, err = parseAction(f+".action", *r.Action); err != nil {
			return m, err
		}
	}
	if err := r.escalation(f, &m); err != nil {
		return m, err
	}
	if r.Signal != nil {
		if m.Signal, err = ParseSignal(*r.Signal); err != nil {
			return m, fieldErr(f+".signal", "unknown signal %q", *r.Signal)
		}
	}
	if r.ExitCode != nil {
		if *r.ExitCode < 0 || *r.ExitCode > 255 {
			return m, fieldErr(f+".exit_code", "must be 0..255")
		}
		m.ExitCode = r.ExitCode
	}
	if err := r.degrade(f, &m); err != nil {
		return m, err
	}
	if r.Repeat != nil {
		if m.Repeat, err = ParseRepeat(*r.Repeat); err != nil {
			return m, fieldErr(f+".repeat", "want once | every | episode | a cooldown such as \"10m\"")
		}
	}
	m.For = r.For.D()
	return m, nil
}

func (r *RuleSpec) escalation(f string, m *Meta) error {
	if r.Escalate == nil {
		if r.EscalateAfter != nil {
			return fieldErr(f+".escalate_after", "needs escalate (the action to escalate to)")
		}
		return nil
	}
	var err error
	if m.Escalate, err = parseAction(f+".escalate", *r.Escalate); err != nil {
		return err
	}
	if r.EscalateAfter == nil {
		return fieldErr(f+".escalate", "needs escalate_after")
	}
	m.EscalateAfter = r.EscalateAfter.D()
	return nil
}

// degrade checks `what`: a known request, and present whenever the rule
// degrades.
func (r *RuleSpec) degrade(f string, m *Meta) error {
	reqs := strings.Join(DegradeRequests(), " | ")
	if r.What != nil {
		if !slices.Contains(DegradeRequests(), *r.What) {
			return fieldErr(f+".what", "unknown degrade request %q (%s)", *r.What, reqs)
		}
		m.What = *r.What
	}
	eff := m.Action
	if eff == "" {
		eff = DefaultAction(m.Severity)
	}
	if (eff == ActionDegrade || m.Escalate == ActionDegrade) && m.What == "" {
		return fieldErr(f+".what", "a degrade action needs 'what' (%s)", reqs)
	}
	return nil
}

func parseAction(field, s string) (Action, error) {
	a, err := ParseAction(s)
	if err != nil {
		return "", fieldErr(field, "unknown action %q (%s)", s, actionList())
	}
	return a, nil
}

// checkFields refuses a field that does not apply to the rule's kind: a
// 'patience' on a threshold rule is a mistake, not something to ignore.
func (r *RuleSpec) checkFields(f string, kind Kind) error {
	common := fieldNames(CommonFields())
	own := fieldNames(kind.Fields)
	for _, name := range r.setFields() {
		if !slices.Contains(common, name) && !slices.Contains(own, name) {
			return fieldErr(f+"."+name, "does not apply to a %s rule (its fields: %s)", kind.Name, strings.Join(own, ", "))
		}
	}
	return nil
}

// KindsOfField names the kinds that have a field (for hints).
func KindsOfField(name string) []string {
	var out []string
	for _, k := range Kinds() {
		if slices.Contains(fieldNames(k.Fields), name) {
			out = append(out, k.Name)
		}
	}
	return out
}
