package policies

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// setFields are the TOML keys of the fields a rule table sets.
func (r *RuleSpec) setFields() []string {
	var out []string
	v := reflect.ValueOf(r).Elem()
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		fv := v.Field(i)
		if (fv.Kind() == reflect.Pointer || fv.Kind() == reflect.Slice) && fv.IsNil() {
			continue
		}
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("toml"), ",")
		out = append(out, name)
	}
	return out
}

// Merge layers policies: later ones win field by field; rules merge by
// name (a later [[rule]] with the same name changes only the fields it
// sets, `enabled = false` turns a rule off); marker patterns add up.
func Merge(layers ...*Policy) *Policy {
	out := &Policy{}
	for _, p := range layers {
		if p == nil {
			continue
		}
		mergeValue(reflect.ValueOf(out).Elem(), reflect.ValueOf(p).Elem())
	}
	return out
}

var (
	rulesType    = reflect.TypeOf([]RuleSpec(nil))
	patternsType = reflect.TypeOf([]Pattern(nil))
)

func mergeValue(dst, src reflect.Value) {
	for i := 0; i < dst.NumField(); i++ {
		d, s := dst.Field(i), src.Field(i)
		switch {
		case s.Type() == rulesType:
			d.Set(reflect.ValueOf(mergeRules(d.Interface().([]RuleSpec), s.Interface().([]RuleSpec))))
		case s.Type() == patternsType:
			d.Set(reflect.AppendSlice(d, s))
		case s.Kind() == reflect.Struct:
			mergeValue(d, s)
		case (s.Kind() == reflect.Pointer || s.Kind() == reflect.Slice) && !s.IsNil():
			d.Set(s)
		}
	}
}

func mergeRules(base, over []RuleSpec) []RuleSpec {
	out := slices.Clone(base)
	for _, r := range over {
		i := slices.IndexFunc(out, func(b RuleSpec) bool { return str(b.Name) == str(r.Name) })
		if i < 0 {
			out = append(out, r)
			continue
		}
		mergeValue(reflect.ValueOf(&out[i]).Elem(), reflect.ValueOf(&r).Elem())
	}
	return out
}

// Resolved is a merged policy made ready for a run.
type Resolved struct {
	Policy            *Policy
	Rules             []Rule
	Strict            bool
	SampleInterval    *time.Duration // nil: not set by any layer
	MarkerPrefix      string
	Patterns          []*regexp.Regexp
	CheckpointSignal  string
	DegradeSignal     string
	CheckpointTimeout *time.Duration // nil: not set by any layer
	KillAfter         *time.Duration // nil: not set by any layer; 0: SIGKILL with SIGTERM
	SendUnhandled     bool
	Recovery          RecoveryPlan
}

var ruleIndexRe = lazyRegexp(`rule#\d+`)

// ResolveLayers merges named layers (the mission, the files, the flags)
// and resolves them. A mistake only the merge shows (a field one layer
// sets on a rule whose kind another layer gave) is named by the layer
// that brought it: "mine.toml (over mission pwsa): rule \"x\".patience".
func ResolveLayers(names []string, layers []*Policy) (*Resolved, error) {
	if err := checkOverrides(names, layers); err != nil {
		return nil, err
	}
	res, err := Resolve(Merge(layers...))
	if err == nil {
		return res, nil
	}
	var fe *FileError
	if !errors.As(err, &fe) || fe.File != "" {
		return nil, err
	}
	// The culprit is the layer that brought the error in: the last one
	// without which the layers before it do not have it (an earlier
	// layer may fail on its own for another reason, a partial rule that
	// a later one completes).
	for i := len(layers) - 1; i >= 0; i-- {
		if _, e := Resolve(Merge(layers[:i]...)); i > 0 && e != nil && e.Error() == err.Error() {
			continue
		}
		fe.File = names[i]
		if i > 0 {
			fe.File += " (over " + strings.Join(names[:i], ", ") + ")"
		}
		break
	}
	return nil, err
}

// checkOverrides refuses a rule without a kind (an override of some of a
// rule's fields) that no earlier layer defines: put before the rule it
// changes, it would merge into it in an order nobody meant.
func checkOverrides(names []string, layers []*Policy) error {
	defined := map[string]bool{}
	for i, l := range layers {
		if l == nil {
			continue
		}
		for _, r := range l.Rules {
			if n := str(r.Name); r.Kind == nil && !defined[n] {
				fe := &FileError{File: names[i], Field: fmt.Sprintf("rule %q", n),
					Msg: "has no kind: it changes no rule of the mission or an earlier policy file (an override comes after the rule it changes)"}
				if i > 0 {
					fe.File += " (over " + strings.Join(names[:i], ", ") + ")"
				}
				return fe
			}
		}
		for _, r := range l.Rules {
			defined[str(r.Name)] = true
		}
	}
	return nil
}

// Resolve builds the rules of a merged policy.
func Resolve(p *Policy) (*Resolved, error) {
	if err := p.validate(); err != nil {
		// Merged layers have no file to point into: a rule is named by
		// its name, not by its place in the merge.
		var fe *FileError
		if errors.As(err, &fe) {
			fe.Field = ruleIndexRe().ReplaceAllStringFunc(fe.Field, func(m string) string {
				i, _ := strconv.Atoi(m[len("rule#"):])
				if i < len(p.Rules) && p.Rules[i].Name != nil {
					return fmt.Sprintf("rule %q", *p.Rules[i].Name)
				}
				return m
			})
		}
		return nil, err
	}
	res := &Resolved{Policy: p, Strict: p.Strict != nil && *p.Strict,
		SampleInterval: p.Sampling.Interval.Ptr(), MarkerPrefix: str(p.Markers.Prefix),
		CheckpointSignal: "SIGUSR1", DegradeSignal: "SIGUSR2",
		CheckpointTimeout: p.Actions.CheckpointTimeout.Ptr(), KillAfter: p.Actions.KillAfter.Ptr(),
		SendUnhandled: p.Actions.SendUnhandled != nil && *p.Actions.SendUnhandled}
	if s := p.Actions.CheckpointSignal; s != nil {
		res.CheckpointSignal, _ = ParseSignal(*s)
	}
	if s := p.Actions.DegradeSignal; s != nil {
		res.DegradeSignal, _ = ParseSignal(*s)
	}
	for _, pat := range p.Markers.Pattern {
		res.Patterns = append(res.Patterns, regexp.MustCompile(pat.Regex)) // validated
	}
	for i := range p.Rules {
		r := &p.Rules[i]
		if r.Kind == nil {
			return nil, &FileError{Field: fmt.Sprintf("rule %q", str(r.Name)),
				Msg: "has no kind: it changes no rule of the mission or an earlier policy file"}
		}
		// Merged layers have no file to point into: the rule is named.
		spec := withStrategy(*r, p.Recovery.Strategy)
		rule, err := spec.build(fmt.Sprintf("rule %q", str(r.Name)))
		if err != nil {
			return nil, err
		}
		if rule != nil {
			res.Rules = append(res.Rules, rule)
		}
	}
	if ce := p.Actions.CheckpointEvery; ce != nil {
		for i, r := range p.Rules {
			if str(r.Name) == PeriodicRuleName {
				return nil, fieldErr(fmt.Sprintf("rule#%d.name", i), "%q is the rule [actions] checkpoint_every makes: give yours another name", PeriodicRuleName)
			}
		}
		r, err := NewPeriodic(Meta{Name: PeriodicRuleName, Severity: SeverityLow, Action: ActionCheckpoint}, ce.D())
		if err != nil {
			return nil, &FileError{Field: "actions.checkpoint_every", Msg: err.Error()}
		}
		res.Rules = append(res.Rules, r)
	}
	if f := needsFallback(p, res.Rules); f != "" {
		return nil, fieldErr(f, "fails over, but [recovery] names no fallback command")
	}
	res.Recovery = p.Recovery.Plan()
	return res, nil
}
