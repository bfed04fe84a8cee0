package policies

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/BurntSushi/toml"
)

// Policy is one policy file (docs/DESIGN.md "Policies"), decoded. Pointer
// fields stay nil when the file does not set them, so that layering can
// tell "not set" from "set to zero".
type Policy struct {
	Description *string    `toml:"description,omitempty"`
	Strict      *bool      `toml:"strict,omitempty"`
	Limits      Limits     `toml:"limits,omitempty"`
	Isolation   Isolation  `toml:"isolation,omitempty"`
	Sampling    Sampling   `toml:"sampling,omitempty"`
	Markers     Markers    `toml:"markers,omitempty"`
	Actions     Actions    `toml:"actions,omitempty"`
	Recovery    Recovery   `toml:"recovery,omitempty"`
	Rules       []RuleSpec `toml:"rule,omitempty"`
}

// Limits confine the child (enforced by the limits package).
type Limits struct {
	Memory     *Size     `toml:"memory,omitempty"`
	MemoryHigh *Size     `toml:"memory_high,omitempty"`
	CPUs       *float64  `toml:"cpus,omitempty"`
	Pids       *int64    `toml:"pids,omitempty"`
	Nofile     *int64    `toml:"nofile,omitempty"`
	Nproc      *int64    `toml:"nproc,omitempty"`
	Core       *Size     `toml:"core,omitempty"`
	AS         *Size     `toml:"as,omitempty"`
	Fsize      *Size     `toml:"fsize,omitempty"`
	CPUTime    *Duration `toml:"cpu_time,omitempty"`
}

// Isolation is the seed's zero-trust for PWSA.
type Isolation struct {
	NoNewPrivs *bool `toml:"no_new_privs,omitempty"`
	CleanEnv   *bool `toml:"clean_env,omitempty"`
	IsolateNet *bool `toml:"isolate_net,omitempty"`
}

// Sampling sets how often probes and the clock feed the engine.
type Sampling struct {
	Interval *Duration `toml:"interval,omitempty"`
}

// Markers configures the marker protocol.
type Markers struct {
	Prefix  *string   `toml:"prefix,omitempty"`
	Pattern []Pattern `toml:"pattern,omitempty"`
}

// Pattern turns a program's own log lines into metrics: each named group
// of Regex that matches becomes an observation of that name.
type Pattern struct {
	Regex string `toml:"regex"`
}

// Actions sets how actions are carried out.
type Actions struct {
	CheckpointEvery   *Duration `toml:"checkpoint_every,omitempty"`
	CheckpointSignal  *string   `toml:"checkpoint_signal,omitempty"`
	CheckpointTimeout *Duration `toml:"checkpoint_timeout,omitempty"`
	DegradeSignal     *string   `toml:"degrade_signal,omitempty"`
	KillAfter         *Duration `toml:"kill_after,omitempty"`
	// SendUnhandled sends checkpoint and degrade signals to the child even
	// when /proc shows it does not handle them.
	SendUnhandled *bool `toml:"send_unhandled,omitempty"`
}

// Recovery is what happens after a child ends: whether it is started
// again, how often and how soon, from which checkpoint, and what runs
// when restarts are used up (docs/DESIGN.md "Recovery").
type Recovery struct {
	// Strategy is what a high-severity rule without an action does:
	// checkpoint-stop (the default), restart, rollback or failover.
	Strategy *string `toml:"strategy,omitempty"`
	// Restart is what a child's own end does (systemd's Restart=):
	// never (the default), on-failure, always.
	Restart            *string   `toml:"restart,omitempty"`
	MaxRestarts        *int64    `toml:"max_restarts,omitempty"`
	MaxRestartsPerHour *int64    `toml:"max_restarts_per_hour,omitempty"`
	BackoffInitial     *Duration `toml:"backoff_initial,omitempty"`
	BackoffMax         *Duration `toml:"backoff_max,omitempty"`
	Jitter             *float64  `toml:"jitter,omitempty"`
	HealthyAfter       *Duration `toml:"healthy_after,omitempty"`
	Fallback           []string  `toml:"fallback,omitempty"`
	Keep               *int64    `toml:"keep,omitempty"`
}

// RuleSpec is one [[rule]] table. Which fields apply depends on Kind.
type RuleSpec struct {
	Name     *string `toml:"name,omitempty"`
	Kind     *string `toml:"kind,omitempty"`
	Enabled  *bool   `toml:"enabled,omitempty"`
	Metric   *string `toml:"metric,omitempty"`
	Severity *string `toml:"severity,omitempty"`
	Action   *string `toml:"action,omitempty"`
	Signal   *string `toml:"signal,omitempty"`
	ExitCode *int    `toml:"exit_code,omitempty"`
	What     *string `toml:"what,omitempty"`
	Repeat   *string `toml:"repeat,omitempty"`

	For           *Duration `toml:"for,omitempty"`
	Escalate      *string   `toml:"escalate,omitempty"`
	EscalateAfter *Duration `toml:"escalate_after,omitempty"`

	Above     *Number `toml:"above,omitempty"`     // threshold, ratio
	Below     *Number `toml:"below,omitempty"`     // threshold, ratio
	Aggregate *string `toml:"aggregate,omitempty"` // threshold
	Window    *Window `toml:"window,omitempty"`    // threshold

	Tolerance *float64 `toml:"tolerance,omitempty"` // monotonic
	Direction *string  `toml:"direction,omitempty"` // monotonic: increasing | decreasing

	Patience *int     `toml:"patience,omitempty"`  // stall
	MinDelta *float64 `toml:"min_delta,omitempty"` // stall
	Goal     *string  `toml:"goal,omitempty"`      // stall: min | max

	Within    *Number `toml:"within,omitempty"`    // converge-by
	Counter   *string `toml:"counter,omitempty"`   // converge-by: default "iter"
	Converged *string `toml:"converged,omitempty"` // converge-by: default "converged"

	Max *Number `toml:"max,omitempty"` // max

	After *Duration `toml:"after,omitempty"` // deadline

	Budget       *Number `toml:"budget,omitempty"`        // budget
	RunningTotal *bool   `toml:"running_total,omitempty"` // budget

	AtLeast *float64  `toml:"at_least,omitempty"` // ratio
	Over    *Duration `toml:"over,omitempty"`     // ratio

	Timeout *Duration `toml:"timeout,omitempty"` // heartbeat

	Events []string `toml:"events,omitempty"` // health
}

// FileError is a policy mistake, located: it prints as one line
// "FILE:LINE:COL: FIELD: MESSAGE" and wraps ErrInvalid.
type FileError struct {
	File  string
	Line  int
	Col   int
	Field string
	Msg   string
}

// Error is the mistake on one line: "FILE:LINE:COL: FIELD: MESSAGE".
func (e *FileError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.File == "" {
		b.WriteString("policy")
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Col > 0 {
			fmt.Fprintf(&b, ":%d", e.Col)
		}
	}
	if e.Field != "" {
		b.WriteString(": " + e.Field)
	}
	b.WriteString(": " + e.Msg)
	return oneLine(b.String())
}

// oneLine escapes control characters (the TOML decoder quotes the
// offending input verbatim, newlines included) so that an error is always
// one line on a terminal and in a log.
func oneLine(s string) string {
	if !strings.ContainsFunc(s, unicode.IsControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unicode.IsControl(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Unwrap makes every FileError an ErrInvalid.
func (e *FileError) Unwrap() error { return ErrInvalid }

// LoadFile reads and validates a policy file.
func LoadFile(path string) (*Policy, error) {
	b, err := readFile(path) // bounded: see read.go
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is named already
		}
		return nil, &FileError{File: path, Msg: "cannot read the policy file: " + err.Error()}
	}
	return Parse(path, b)
}

var lineRe = lazyRegexp(`line (\d+)`)

// Parse decodes a policy strictly: an unknown key, a wrong type, a bad
// value or an invalid rule is a *FileError naming the file, the line (and
// column where known) and the field.
func Parse(name string, src []byte) (*Policy, error) {
	if err := nestingError(name, src); err != nil {
		return nil, err
	}
	var p Policy
	md, err := toml.NewDecoder(bytes.NewReader(src)).Decode(&p)
	if err != nil {
		fe := &FileError{File: name, Msg: err.Error()}
		var pe toml.ParseError
		if errors.As(err, &pe) {
			fe.Line, fe.Col, fe.Field, fe.Msg = pe.Position.Line, pe.Position.Col, pe.LastKey, pe.Message
		} else if m := lineRe().FindStringSubmatch(err.Error()); m != nil {
			fe.Line, _ = strconv.Atoi(m[1])
			fe.Msg = strings.TrimPrefix(err.Error(), "toml: ")
		}
		if field, msg, ok := typeMistake(err.Error()); ok {
			fe.Field, fe.Msg = field, msg
			if i := locate(src).tableIndex("rule", fe.Line); i >= 0 && strings.HasPrefix(field, "rule.") {
				fe.Field = fmt.Sprintf("rule[%d].%s", i, strings.TrimPrefix(field, "rule."))
			}
		}
		return nil, fe
	}
	loc := locate(src)
	if und := md.Undecoded(); len(und) > 0 {
		k := und[0]
		line := loc.find(k)
		field, kind := k.String(), ""
		if len(k) == 2 && k[0] == "rule" {
			// Name the rule as every other rule error does, and hint
			// within its kind's fields.
			if i := loc.tableIndex("rule", line); i >= 0 && i < len(p.Rules) {
				field, kind = displayField(fmt.Sprintf("rule#%d.%s", i, k[1])), str(p.Rules[i].Kind)
			}
		}
		return nil, &FileError{File: name, Line: line, Field: field, Msg: "unknown key" + hint(k, kind)}
	}
	if err := p.validate(); err != nil {
		var fe *FileError
		if errors.As(err, &fe) {
			fe.File = name
			if fe.Line == 0 {
				fe.Line = loc.lines[fe.Field]
			}
			if fe.Line == 0 {
				fe.Line = loc.lines[tableOf(fe.Field)]
			}
			fe.Field = displayField(fe.Field)
		}
		return nil, err
	}
	return &p, nil
}

var (
	incompatibleRe = lazyRegexp(`\(last key "([^"]+)"\): incompatible types: TOML value has type (\S+); destination has type (\S+)`)
	mismatchRe     = lazyRegexp(`\(last key "([^"]+)"\): type mismatch for \S+: expected table but found \[\]`)
)

// typeMistake says a decoder's type error in the terms of a policy file:
// the key, what it wants, and what to write ([rule] for [[rule]] above
// all).
func typeMistake(msg string) (field, say string, ok bool) {
	if m := mismatchRe().FindStringSubmatch(msg); m != nil {
		return m[1], fmt.Sprintf("[[%s]] is an array of tables; write [%s], one table", m[1], m[1]), true
	}
	m := incompatibleRe().FindStringSubmatch(msg)
	if m == nil {
		return "", "", false
	}
	key, got, want := m[1], tomlWords(m[2]), m[3]
	if want == "slice" && strings.HasPrefix(m[2], "map") {
		return key, fmt.Sprintf("[%s] is one table; write [[%s]] (an array of tables), one per entry", key, key), true
	}
	wants := map[string]string{"boolean": "true or false", "string": "a string in quotes", "integer": "a whole number",
		"float": "a number", "slice": "an array [...]"}[want]
	if wants == "" {
		wants = want
	}
	return key, fmt.Sprintf("want %s, got %s", wants, got), true
}

// tomlWords names a decoded TOML value's Go type as a person would.
func tomlWords(goType string) string {
	switch {
	case strings.HasPrefix(goType, "map"):
		return "a table"
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	}
	return map[string]string{"string": "a string", "int64": "a whole number", "float64": "a number", "bool": "true or false"}[goType]
}

// hint says what an unknown key could have been: the closest known key
// of its table, and the table's keys (read off the structs' tags, so the
// list is never out of date).
func hint(k toml.Key, ruleKind string) string {
	table := reflect.TypeOf(Policy{})
	name := k[len(k)-1]
	for _, part := range k[:len(k)-1] {
		f, ok := fieldByKey(table, part)
		if !ok {
			return ""
		}
		table = f
	}
	keys := tomlKeys(table)
	if table == reflect.TypeOf(RuleSpec{}) {
		msg := ""
		if kind, ok := kindNamed(ruleKind); ok {
			// Only what this rule's kind can take.
			if near := Closest(name, append(fieldNames(CommonFields()), fieldNames(kind.Fields)...)); near != "" {
				msg = fmt.Sprintf("; did you mean %q?", near)
			}
			return msg + fmt.Sprintf(" (a %s rule's own fields: %s)", kind.Name, strings.Join(fieldNames(kind.Fields), ", "))
		}
		if near := Closest(name, keys); near != "" {
			msg = fmt.Sprintf("; did you mean %q (a field of %s)?", near, ruleFieldOwners(near))
		}
		return msg + "; docs/DESIGN.md 'Policy reference' lists the fields of each rule kind"
	}
	msg := ""
	if near := Closest(name, keys); near != "" {
		msg = fmt.Sprintf("; did you mean %q?", near)
	}
	where := "top level"
	if len(k) > 1 {
		where = "[" + strings.Join(k[:len(k)-1], ".") + "]"
	}
	return fmt.Sprintf("%s (%s: %s)", msg, where, strings.Join(keys, ", "))
}

// ruleFieldOwners says which rules have a field: every rule, or the kinds.
func ruleFieldOwners(field string) string {
	if slices.Contains(fieldNames(CommonFields()), field) {
		return "every rule"
	}
	return strings.Join(KindsOfField(field), " and ") + " rules"
}

// tomlKeys are the TOML keys of a struct type, in declaration order.
func tomlKeys(t reflect.Type) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("toml"), ","); name != "" {
			out = append(out, name)
		}
	}
	return out
}

// fieldByKey is the struct type (element type, for arrays of tables)
// behind a table's key.
func fieldByKey(t reflect.Type, key string) (reflect.Type, bool) {
	for i := 0; i < t.NumField(); i++ {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("toml"), ","); name == key {
			ft := t.Field(i).Type
			for ft.Kind() == reflect.Slice || ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			return ft, ft.Kind() == reflect.Struct
		}
	}
	return nil, false
}

// Closest is the key nearest to s by edit distance, when it is near
// enough to be a typo (at most a third of its length, and 2 at least).
func Closest(s string, keys []string) string {
	best, bestD := "", max(2, len(s)/3)+1
	for _, k := range keys {
		if d := EditDistance(s, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// EditDistance is the Levenshtein distance between a and b.
func EditDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// locator finds the line of a key in a TOML source, reading it line by
// line: enough for the tables and keys a policy has (the decoder itself
// reports positions only for its own errors).
type locator struct {
	lines map[string]int // "limits.memory", "rule#2.above", "rule#2" -> line
}

var (
	headerRe = lazyRegexp(`^\s*(\[\[?)\s*([A-Za-z0-9_.-]+)\s*\]\]?`)
	keyRe    = lazyRegexp(`^\s*([A-Za-z0-9_-]+)\s*=`)
)

func locate(src []byte) *locator {
	l := &locator{lines: map[string]int{}}
	table := ""
	counts := map[string]int{}
	for i, line := range strings.Split(string(src), "\n") {
		if m := headerRe().FindStringSubmatch(line); m != nil {
			table = m[2]
			if m[1] == "[[" {
				table = fmt.Sprintf("%s#%d", m[2], counts[m[2]])
				counts[m[2]]++
			}
			if _, ok := l.lines[table]; !ok {
				l.lines[table] = i + 1
			}
			continue
		}
		if m := keyRe().FindStringSubmatch(line); m != nil {
			k := m[1]
			if table != "" {
				k = table + "." + k
			}
			if _, ok := l.lines[k]; !ok {
				l.lines[k] = i + 1
			}
		}
	}
	return l
}

// tableIndex is the index of the [[prefix]] table that holds line: the
// last one whose header is at or above it (-1: none).
func (l *locator) tableIndex(prefix string, line int) int {
	best, bestLine := -1, 0
	for key, at := range l.lines {
		rest, ok := strings.CutPrefix(key, prefix+"#")
		if !ok || strings.Contains(rest, ".") {
			continue
		}
		if i, err := strconv.Atoi(rest); err == nil && at <= line && at > bestLine {
			best, bestLine = i, at
		}
	}
	return best
}

// find returns the first line of a decoder key (which has no array index).
func (l *locator) find(k toml.Key) int {
	want := strings.Join(k, ".")
	best := 0
	for key, line := range l.lines {
		if stripIndex(key) == want && (best == 0 || line < best) {
			best = line
		}
	}
	return best
}

var indexRe = lazyRegexp(`#\d+`)

func stripIndex(k string) string { return indexRe().ReplaceAllString(k, "") }

func tableOf(field string) string {
	if i := strings.LastIndexByte(field, '.'); i >= 0 {
		return field[:i]
	}
	return ""
}

// displayField turns "rule#2.above" into "rule[2].above".
func displayField(f string) string {
	return indexRe().ReplaceAllStringFunc(f, func(s string) string { return "[" + s[1:] + "]" })
}

func fieldErr(field, format string, a ...any) error {
	return &FileError{Field: field, Msg: fmt.Sprintf(format, a...)}
}

// validate checks what the decoder cannot: known names, ranges, rules that
// can be built. Fields are named in locator form ("rule#1.kind").
func (p *Policy) validate() error {
	if err := p.Recovery.check(); err != nil {
		return err
	}
	for _, k := range []struct {
		f string
		v *string
	}{{"actions.checkpoint_signal", p.Actions.CheckpointSignal}, {"actions.degrade_signal", p.Actions.DegradeSignal}} {
		if k.v != nil {
			if _, err := ParseSignal(*k.v); err != nil {
				return fieldErr(k.f, "unknown signal %q", *k.v)
			}
		}
	}
	if ce := p.Actions.CheckpointEvery; ce != nil && ce.D() <= 0 {
		return fieldErr("actions.checkpoint_every", "must be positive")
	}
	if ct := p.Actions.CheckpointTimeout; ct != nil && ct.D() <= 0 {
		return fieldErr("actions.checkpoint_timeout", "must be positive: a checkpoint request needs time to be answered (to stop without one, use action = \"stop\")")
	}
	if iv := p.Sampling.Interval; iv != nil && iv.D() < minSampleInterval {
		return fieldErr("sampling.interval", "must be at least %s", minSampleInterval)
	}
	if err := p.Limits.Check(); err != nil {
		return err
	}
	if p.Markers.Prefix != nil && (*p.Markers.Prefix == "" || strings.ContainsAny(*p.Markers.Prefix, " \t\r\n")) {
		return fieldErr("markers.prefix", "must be one word")
	}
	for i, pat := range p.Markers.Pattern {
		f := fmt.Sprintf("markers.pattern#%d.regex", i)
		re, err := regexp.Compile(pat.Regex)
		if err != nil {
			return fieldErr(f, "%v", err)
		}
		named := 0
		for _, n := range re.SubexpNames() {
			if n != "" {
				named++
			}
		}
		if named == 0 {
			return fieldErr(f, "has no named group (?P<metric>...) to turn into a metric")
		}
	}
	seen := map[string]int{}
	for i := range p.Rules {
		r := &p.Rules[i]
		if r.Name == nil || *r.Name == "" {
			return fieldErr(fmt.Sprintf("rule#%d", i), "a rule needs a name")
		}
		if *r.Name == PeriodicRuleName && p.Actions.CheckpointEvery != nil {
			return fieldErr(fmt.Sprintf("rule#%d.name", i), "%q is the rule [actions] checkpoint_every makes: give yours another name", PeriodicRuleName)
		}
		if j, dup := seen[*r.Name]; dup {
			return fieldErr(fmt.Sprintf("rule#%d.name", i), "rule %q is already defined (rule %d): one file names a rule once", *r.Name, j)
		}
		seen[*r.Name] = i
		// A rule that only changes fields of a rule of a lower layer
		// (same name, no kind) is checked once the layers are merged.
		if r.Kind == nil {
			continue
		}
		if _, err := r.build(fmt.Sprintf("rule#%d", i)); err != nil {
			return err
		}
	}
	return nil
}

// minSampleInterval is the shortest sampling interval a policy may ask for.
const minSampleInterval = 10 * time.Millisecond

// lazyRegexp compiles expr on first use: package initialisation runs on
// every start of prism-run (and of its watchdog), which needs none of the
// policy loader's error-message patterns.
func lazyRegexp(expr string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })
}
