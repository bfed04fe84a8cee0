package policies

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Kinds lists the rule kinds of DESIGN.md.
var Kinds = []string{"threshold", "monotonic", "stall", "converge-by", "max", "deadline", "budget", "ratio", "heartbeat", "health"}

// Degrade requests a rule may name in `what`.
var DegradeRequests = []string{"reduce-precision", "reduce-ensemble", "increase-temperature", "increase-effort", "free-memory"}

// Fields every rule may have; the rest belong to kinds.
var commonFields = []string{"name", "kind", "enabled", "metric", "severity", "action", "signal", "exit_code",
	"what", "repeat", "for", "escalate", "escalate_after"}

var kindFields = map[string][]string{
	"threshold":   {"above", "below", "aggregate", "window"},
	"monotonic":   {"tolerance", "direction"},
	"stall":       {"patience", "min_delta", "goal"},
	"converge-by": {"within", "counter", "converged"},
	"max":         {"max"},
	"deadline":    {"after"},
	"budget":      {"budget", "running_total"},
	"ratio":       {"above", "below", "at_least", "over"},
	"heartbeat":   {"timeout"},
	"health":      {"events"},
}

// recoveryActions are DESIGN.md's actions that need restarts.
var recoveryActions = []string{"restart", "rollback", "failover", "rerun-seed"}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// build turns a rule table into a Rule; f names it in errors ("rule#2").
// A disabled rule builds to nil.
func (r *RuleSpec) build(f string) (Rule, error) {
	kind := str(r.Kind)
	if !slices.Contains(Kinds, kind) {
		return nil, fieldErr(f+".kind", "unknown rule kind %q (%s)", kind, strings.Join(Kinds, " | "))
	}
	if err := r.checkFields(f, kind); err != nil {
		return nil, err
	}
	if r.Enabled != nil && !*r.Enabled {
		return nil, nil
	}
	m := Meta{Name: str(r.Name), Severity: SeverityMedium}
	if kind == "deadline" {
		m.Severity = SeverityHigh
	}
	var err error
	if r.Severity != nil {
		if m.Severity, err = ParseSeverity(*r.Severity); err != nil {
			return nil, fieldErr(f+".severity", "unknown severity %q (low | medium | high | critical)", *r.Severity)
		}
	}
	parseAct := func(field, s string) (Action, error) {
		if slices.Contains(recoveryActions, s) {
			return "", fieldErr(field, "action %q needs restarts, which prism-run does not do yet", s)
		}
		a, err := ParseAction(s)
		if err != nil {
			return "", fieldErr(field, "unknown action %q (log | alert | checkpoint | degrade | checkpoint-stop | stop | kill)", s)
		}
		return a, nil
	}
	if r.Action != nil {
		if m.Action, err = parseAct(f+".action", *r.Action); err != nil {
			return nil, err
		}
	}
	if r.Escalate != nil {
		if m.Escalate, err = parseAct(f+".escalate", *r.Escalate); err != nil {
			return nil, err
		}
		if r.EscalateAfter == nil {
			return nil, fieldErr(f+".escalate", "needs escalate_after")
		}
		m.EscalateAfter = r.EscalateAfter.D()
	} else if r.EscalateAfter != nil {
		return nil, fieldErr(f+".escalate_after", "needs escalate (the action to escalate to)")
	}
	if r.Signal != nil {
		if m.Signal, err = ParseSignal(*r.Signal); err != nil {
			return nil, fieldErr(f+".signal", "unknown signal %q", *r.Signal)
		}
	}
	if r.ExitCode != nil {
		if *r.ExitCode < 0 || *r.ExitCode > 255 {
			return nil, fieldErr(f+".exit_code", "must be 0..255")
		}
		m.ExitCode = r.ExitCode
	}
	if r.What != nil {
		if !slices.Contains(DegradeRequests, *r.What) {
			return nil, fieldErr(f+".what", "unknown degrade request %q (%s)", *r.What, strings.Join(DegradeRequests, " | "))
		}
		m.What = *r.What
	}
	eff := m.Action
	if eff == "" {
		eff = DefaultAction(m.Severity)
	}
	if (eff == ActionDegrade || m.Escalate == ActionDegrade) && m.What == "" {
		return nil, fieldErr(f+".what", "a degrade action needs 'what' (%s)", strings.Join(DegradeRequests, " | "))
	}
	if r.Repeat != nil {
		if m.Repeat, err = ParseRepeat(*r.Repeat); err != nil {
			return nil, fieldErr(f+".repeat", "want once | every | episode | a cooldown such as \"10m\"")
		}
	}
	m.For = r.For.D()

	metric := str(r.Metric)
	need := func(field string, ok bool) error {
		if !ok {
			return fieldErr(f+"."+field, "a %s rule needs %s", kind, field)
		}
		return nil
	}
	var rule Rule
	switch kind {
	case "threshold":
		agg := AggLast
		if r.Aggregate != nil {
			if agg, err = ParseAggregate(*r.Aggregate); err != nil {
				return nil, fieldErr(f+".aggregate", "unknown aggregate %q (last | mean | max | min | p50 | p90 | p99)", *r.Aggregate)
			}
		}
		var w Window
		if r.Window != nil {
			w = *r.Window
		}
		if err := need("metric", metric != ""); err != nil {
			return nil, err
		}
		if err := need("above", r.Above != nil || r.Below != nil); err != nil {
			return nil, fieldErr(f, "a threshold rule needs above or below")
		}
		rule, err = NewThreshold(m, metric, r.Above.ptr(), r.Below.ptr(), agg, w.N, w.D)
	case "monotonic":
		tol := 0.0
		if r.Tolerance != nil {
			tol = *r.Tolerance
		}
		inc := true
		switch str(r.Direction) {
		case "", "increasing":
		case "decreasing":
			inc = false
		default:
			return nil, fieldErr(f+".direction", "want increasing (must not decrease) or decreasing (must not increase)")
		}
		rule, err = NewMonotonic(m, metric, tol, inc)
	case "stall":
		if err := need("patience", r.Patience != nil); err != nil {
			return nil, err
		}
		md := 0.0
		if r.MinDelta != nil {
			md = *r.MinDelta
		}
		maximize := false
		switch str(r.Goal) {
		case "", "min":
		case "max":
			maximize = true
		default:
			return nil, fieldErr(f+".goal", "want min (lower is better) or max")
		}
		rule, err = NewStall(m, metric, *r.Patience, md, maximize)
	case "converge-by":
		if err := need("within", r.Within != nil); err != nil {
			return nil, err
		}
		counter, conv := "iter", "converged"
		if r.Counter != nil {
			counter = *r.Counter
		}
		if r.Converged != nil {
			conv = *r.Converged
		}
		rule, err = NewConvergeBy(m, counter, conv, float64(*r.Within))
	case "max":
		if err := need("max", r.Max != nil); err != nil {
			return nil, err
		}
		rule, err = NewMax(m, metric, float64(*r.Max))
	case "deadline":
		if err := need("after", r.After != nil); err != nil {
			return nil, err
		}
		rule, err = NewDeadline(m, r.After.D())
	case "budget":
		if err := need("budget", r.Budget != nil); err != nil {
			return nil, err
		}
		rule, err = NewBudget(m, metric, float64(*r.Budget), r.RunningTotal != nil && *r.RunningTotal)
	case "ratio":
		if err := need("at_least", r.AtLeast != nil); err != nil {
			return nil, err
		}
		rule, err = NewRatio(m, metric, r.Above.ptr(), r.Below.ptr(), *r.AtLeast, r.Over.D())
	case "heartbeat":
		rule, err = NewHeartbeat(m, metric, r.Timeout.D())
	case "health":
		rule, err = NewHealth(m, r.Events)
	}
	if err != nil {
		return nil, fieldErr(f, "%s", strings.TrimPrefix(err.Error(), ErrInvalid.Error()+": "))
	}
	return rule, nil
}

// checkFields refuses a field that does not apply to the rule's kind: a
// 'patience' on a threshold rule is a mistake, not something to ignore.
func (r *RuleSpec) checkFields(f, kind string) error {
	v := reflect.ValueOf(r).Elem()
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		fv := v.Field(i)
		if (fv.Kind() == reflect.Pointer || fv.Kind() == reflect.Slice) && fv.IsNil() {
			continue
		}
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("toml"), ",")
		if !slices.Contains(commonFields, name) && !slices.Contains(kindFields[kind], name) {
			return fieldErr(f+"."+name, "does not apply to a %s rule (its fields: %s)", kind, strings.Join(kindFields[kind], ", "))
		}
	}
	return nil
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
	SampleInterval    time.Duration
	MarkerPrefix      string
	Patterns          []*regexp.Regexp
	CheckpointSignal  string
	DegradeSignal     string
	CheckpointTimeout time.Duration
	KillAfter         time.Duration
}

// Resolve builds the rules of a merged policy.
func Resolve(p *Policy) (*Resolved, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	res := &Resolved{Policy: p, Strict: p.Strict != nil && *p.Strict,
		SampleInterval: p.Sampling.Interval.D(), MarkerPrefix: str(p.Markers.Prefix),
		CheckpointSignal: "SIGUSR1", DegradeSignal: "SIGUSR2",
		CheckpointTimeout: p.Actions.CheckpointTimeout.D(), KillAfter: p.Actions.KillAfter.D()}
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
		rule, err := r.build(fmt.Sprintf("rule#%d", i))
		if err != nil {
			return nil, err
		}
		if rule != nil {
			res.Rules = append(res.Rules, rule)
		}
	}
	if ce := p.Actions.CheckpointEvery; ce != nil {
		r, err := NewPeriodic(Meta{Name: "checkpoint-every", Severity: SeverityLow, Action: ActionCheckpoint}, ce.D())
		if err != nil {
			return nil, &FileError{Field: "actions.checkpoint_every", Msg: err.Error()}
		}
		res.Rules = append(res.Rules, r)
	}
	return res, nil
}
