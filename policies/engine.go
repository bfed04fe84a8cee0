package policies

import (
	"fmt"
	"time"
)

// Repeat says how often a rule that keeps holding produces a decision:
// RepeatOnce (once per run), RepeatEvery (each observation on which it
// holds), or a positive cooldown (at most once per that duration).
type Repeat time.Duration

// Repeat modes.
const (
	RepeatOnce  Repeat = -1
	RepeatEvery Repeat = 0
)

func (r Repeat) String() string {
	switch {
	case r == RepeatOnce:
		return "once"
	case r == RepeatEvery:
		return "every"
	default:
		return time.Duration(r).String()
	}
}

// Meta is what every rule has whatever its kind: the [[rule]] table's
// common fields.
type Meta struct {
	Name     string
	Kind     string
	Severity Severity
	Action   Action // empty: DefaultAction(Severity)
	What     string // the degrade request named in the control line
	ExitCode *int
	Repeat   Repeat
}

// Rule is one condition over the observation stream. Rules keep their own
// state (windows, last values); the engine owns repetition and turns a
// holding rule into a Decision.
type Rule interface {
	Meta() Meta
	// Eval is given every observation in arrival order and the run's start,
	// and says whether the rule's condition holds now, and why. It must
	// judge time only by o.Time and start.
	Eval(start time.Time, o Observation) (reason string, holds bool)
}

type armedRule struct {
	rule     Rule
	meta     Meta
	fired    bool
	lastFire time.Time
}

// Engine evaluates rules over observations. It is not safe for concurrent
// use: the supervisor's event loop owns it.
type Engine struct {
	clock Clock
	start time.Time
	rules []*armedRule
}

// NewEngine arms rules for a run that starts now by clock.
func NewEngine(clock Clock, rules []Rule) (*Engine, error) {
	e := &Engine{clock: clock, start: clock.Now()}
	seen := map[string]bool{}
	for _, r := range rules {
		m := r.Meta()
		if m.Name == "" {
			return nil, fmt.Errorf("%w: a %s rule has no name", ErrInvalid, m.Kind)
		}
		if seen[m.Name] {
			return nil, fmt.Errorf("%w: two rules are named %q", ErrInvalid, m.Name)
		}
		seen[m.Name] = true
		if m.Severity == 0 {
			m.Severity = SeverityMedium
		}
		if m.Action == "" {
			m.Action = DefaultAction(m.Severity)
		}
		if m.Action == ActionDegrade && m.What == "" {
			return nil, fmt.Errorf("%w: rule %q degrades but names no 'what'", ErrInvalid, m.Name)
		}
		e.rules = append(e.rules, &armedRule{rule: r, meta: m})
	}
	return e, nil
}

// Start is the time the run started, by the engine's clock.
func (e *Engine) Start() time.Time { return e.start }

// Observe feeds one observation to every rule and returns the decisions it
// causes, in rule order. An observation without a time is stamped by the
// engine's clock.
func (e *Engine) Observe(o Observation) []Decision {
	if o.Time.IsZero() {
		o.Time = e.clock.Now()
	}
	var out []Decision
	for _, a := range e.rules {
		reason, holds := a.rule.Eval(e.start, o)
		if !holds || !a.due(o.Time) {
			continue
		}
		a.fired, a.lastFire = true, o.Time
		out = append(out, Decision{
			Time:     o.Time,
			Rule:     a.meta.Name,
			Kind:     a.meta.Kind,
			Severity: a.meta.Severity,
			Action:   a.meta.Action,
			What:     a.meta.What,
			Reason:   reason,
			ExitCode: a.meta.ExitCode,
		})
	}
	return out
}

func (a *armedRule) due(now time.Time) bool {
	switch r := a.meta.Repeat; {
	case !a.fired || r == RepeatEvery:
		return true
	case r == RepeatOnce:
		return false
	default:
		return now.Sub(a.lastFire) >= time.Duration(r)
	}
}
