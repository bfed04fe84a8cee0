package policies

import (
	"fmt"
	"slices"
	"time"
)

// Repeat says how often a rule that keeps holding produces a decision.
// An episode is a stretch of observations during which the rule holds
// without a break.
type Repeat time.Duration

// Repeat modes; a positive Repeat is a cooldown: at most one decision per
// that duration while the rule holds.
const (
	RepeatEpisode Repeat = 0  // once per episode (the default)
	RepeatOnce    Repeat = -1 // once per run
	RepeatEvery   Repeat = -2 // on every observation of its metric while it holds
)

// String is the repeat mode as a policy writes it (ParseRepeat reads it).
func (r Repeat) String() string {
	switch r {
	case RepeatOnce:
		return "once"
	case RepeatEvery:
		return "every"
	case RepeatEpisode:
		return "episode"
	default:
		return time.Duration(r).String()
	}
}

// ParseRepeat reads "once", "every", "episode" or a cooldown duration.
func ParseRepeat(s string) (Repeat, error) {
	switch s {
	case "once":
		return RepeatOnce, nil
	case "every":
		return RepeatEvery, nil
	case "episode", "":
		return RepeatEpisode, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%w: repeat %q: want once | every | episode | a positive duration", ErrInvalid, s)
	}
	return Repeat(d), nil
}

// Meta is what every rule has whatever its kind: the [[rule]] table's
// common fields.
type Meta struct {
	Name string
	Kind string
	// Metric is the observation the rule watches, as its table names it
	// ("" for kinds that watch no one metric: deadline, health, a
	// heartbeat on any marker).
	Metric   string
	Severity Severity
	Action   Action // empty: DefaultAction(Severity)
	What     string // the degrade request named in the control line
	Signal   string // overrides the action's signal ("" = the policy's)
	ExitCode *int
	Repeat   Repeat
	// For: the condition must hold this long before the rule fires.
	For time.Duration
	// Escalate is the next action when the rule still holds EscalateAfter
	// after it first fired (the seed's "reduce precision, then abort").
	Escalate      Action
	EscalateAfter time.Duration
}

// Verdict is a rule's view after one observation. Holds says whether its
// condition holds now; Fresh says the rule judged this very observation
// (one of its metric), rather than carrying an earlier verdict over a
// clock tick or another metric's observation.
type Verdict struct {
	Holds bool
	Fresh bool
}

// Rule is one condition over the observation stream. Rules keep their own
// state (windows, last values); the engine owns repetition and turns a
// holding rule into a Decision.
type Rule interface {
	Meta() Meta
	// Eval is given every observation in arrival order and the run's start,
	// and says whether the rule's condition holds now. It must judge time
	// only by o.Time and start.
	Eval(start time.Time, o Observation) Verdict
	// Reason says why the rule holds, as of its last Eval. The engine asks
	// only when it makes a decision: formatting is kept off the hot path.
	Reason() string
}

// armedRule is a rule and its firing state. An episode is a stretch of
// observations during which the rule holds without a break.
type armedRule struct {
	rule      Rule
	meta      Meta
	everFired bool
	holdSince time.Time // start of the current episode; zero when not holding
	firstFire time.Time // first decision of the current episode; zero if none
	lastFire  time.Time
	escalated bool
	fed       bool // it has judged an observation of its own (a Fresh verdict)
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
		if (m.Action == ActionDegrade || m.Escalate == ActionDegrade) && m.What == "" {
			return nil, fmt.Errorf("%w: rule %q degrades but names no 'what'", ErrInvalid, m.Name)
		}
		if (m.Escalate == "") != (m.EscalateAfter == 0) {
			return nil, fmt.Errorf("%w: rule %q: escalate and escalate_after go together", ErrInvalid, m.Name)
		}
		if m.For < 0 || m.EscalateAfter < 0 {
			return nil, fmt.Errorf("%w: rule %q: durations must not be negative", ErrInvalid, m.Name)
		}
		e.rules = append(e.rules, &armedRule{rule: r, meta: m})
	}
	return e, nil
}

// Idle lists the rules that never judged an observation of their own: a
// metric that never appeared (a typo such as "los", or a child that
// never printed it), so the rule could never fire.
func (e *Engine) Idle() []Meta {
	var out []Meta
	for _, a := range e.rules {
		// Only a rule that names a metric can starve of it: a deadline, a
		// periodic request or a heartbeat on any marker watch time, and a
		// health rule waits for events (none is no news).
		if !a.fed && a.meta.Metric != "" && a.meta.Kind != KindHealth {
			out = append(out, a.meta)
		}
	}
	return out
}

// IdleReason says why an idle rule matters, for a log line or a report;
// seen are the names the run did see, one of which may be the metric
// mistyped (in the policy or by the child).
func IdleReason(m Meta, seen []string) string {
	if near := Closest(m.Metric, seen); near != "" {
		return fmt.Sprintf("rule %s never saw its metric %s, but saw %s: a typo?", m.Name, m.Metric, near)
	}
	switch {
	case slices.ContainsFunc(Names(), func(n NameInfo) bool { return n.Name == m.Metric }):
		return fmt.Sprintf("rule %s never saw its metric %s", m.Name, m.Metric)
	default:
		return fmt.Sprintf("rule %s never saw its metric %s (not a name prism-run knows: a typo, or a marker the child never printed?)", m.Name, m.Metric)
	}
}

// Start is the time the run started, by the engine's clock.
func (e *Engine) Start() time.Time { return e.start }

// Observe feeds one observation to every rule and returns the decisions it
// causes, in rule order. An observation without a time is stamped by the
// engine's clock.
func (e *Engine) Observe(o Observation) []Decision { return e.observe(o, nil) }

// ObserveKinds is Observe for the rules of the given kinds alone: between
// two children, the clock still runs for a deadline, while a heartbeat
// or a stall must not judge the silence of a child that does not exist.
func (e *Engine) ObserveKinds(o Observation, kinds ...string) []Decision {
	if kinds == nil {
		kinds = []string{}
	}
	return e.observe(o, kinds)
}

// observe feeds o to the rules of kinds (nil: every rule).
func (e *Engine) observe(o Observation, kinds []string) []Decision {
	if o.Time.IsZero() {
		o.Time = e.clock.Now()
	}
	var out []Decision
	for _, a := range e.rules {
		if kinds != nil && !slices.Contains(kinds, a.meta.Kind) {
			continue
		}
		v := a.rule.Eval(e.start, o)
		a.fed = a.fed || v.Fresh
		if fire, escalated := a.step(v, o.Time); fire {
			out = append(out, a.decision(o.Time, escalated))
		}
	}
	return out
}

// step advances one rule's firing state by a verdict at time now, and
// says whether it fires, and whether that is its escalation.
func (a *armedRule) step(v Verdict, now time.Time) (fire, escalated bool) {
	if !v.Holds {
		a.holdSince, a.firstFire, a.escalated = time.Time{}, time.Time{}, false
		return false, false
	}
	if a.holdSince.IsZero() {
		a.holdSince = now
	}
	if now.Sub(a.holdSince) < a.meta.For {
		return false, false
	}
	m := &a.meta
	if !a.firstFire.IsZero() && m.Escalate != "" && !a.escalated && now.Sub(a.firstFire) >= m.EscalateAfter {
		a.escalated, a.lastFire = true, now
		return true, true
	}
	if !a.due(v, now) {
		return false, false
	}
	if a.firstFire.IsZero() {
		a.firstFire = now
	}
	a.everFired, a.lastFire = true, now
	return true, false
}

func (a *armedRule) decision(now time.Time, escalated bool) Decision {
	m := &a.meta
	// The reason is one line whatever a child printed (a health event's
	// text with a newline would forge a line of replay's output or a log).
	d := Decision{Time: now, Rule: m.Name, Kind: m.Kind, Severity: m.Severity, Action: m.Action,
		What: m.What, Signal: m.Signal, Reason: oneLine(a.rule.Reason()), ExitCode: m.ExitCode, Since: a.holdSince}
	if m.For > 0 {
		d.Reason += fmt.Sprintf(" (held %s)", now.Sub(a.holdSince).Round(time.Millisecond))
	}
	if escalated {
		d.Action = m.Escalate
		d.Reason = fmt.Sprintf("still holding %s after %s: %s", now.Sub(a.firstFire).Round(time.Millisecond), m.Action, d.Reason)
	}
	return d
}

func (a *armedRule) due(v Verdict, now time.Time) bool {
	r := a.meta.Repeat
	switch {
	case !a.everFired:
		return true
	case r == RepeatOnce:
		return false
	case a.firstFire.IsZero(): // a new episode
		return true
	case r == RepeatEpisode:
		return false
	case r == RepeatEvery:
		return v.Fresh
	default:
		return now.Sub(a.lastFire) >= time.Duration(r)
	}
}

// attemptScoped is a rule whose state belongs to one child: its window,
// trend, best value, counter or heartbeat. A new attempt (a restart)
// starts it afresh at start, so the new child is not judged on the old
// one's last values (a stall's best loss, a trend across a rollback that
// went back in time).
type attemptScoped interface{ rearm(start time.Time) }

// NewAttempt tells the engine that a new child starts at now (a restart):
// every rule's episode ends, and the attempt-scoped rules (threshold,
// monotonic, stall, converge-by, heartbeat, the periodic checkpoint)
// start afresh. The run-wide rules keep what they hold: a deadline counts
// from the run's start, a budget adds up over the whole run, a ratio
// judges its window of time, max and health judge each observation.
// A "once" rule that fired stays fired.
func (e *Engine) NewAttempt(now time.Time) {
	for _, a := range e.rules {
		a.holdSince, a.firstFire, a.escalated = time.Time{}, time.Time{}, false
		if r, ok := a.rule.(attemptScoped); ok {
			r.rearm(now)
		}
	}
}

// Holding returns when each rule that acts by a (its action or its
// escalation) and holds now began to hold: a rollback that may still
// come needs a checkpoint from before each.
func (e *Engine) Holding(a Action) []time.Time {
	var out []time.Time
	for _, r := range e.rules {
		if !r.holdSince.IsZero() && (r.meta.Action == a || r.meta.Escalate == a) {
			out = append(out, r.holdSince)
		}
	}
	return out
}

// runScoped is a rule whose state belongs to the whole run (a budget's
// total, a ratio's window): only a new run starts it afresh.
type runScoped interface{ restart(start time.Time) }

// NewRun starts the engine over for a new run at now, on the same rules:
// the run's start (deadlines count from it), every rule's state, and
// "once" rules may fire again. --verify-repro's second run is judged as
// the first was, not on the first's clock or totals.
func (e *Engine) NewRun(now time.Time) {
	e.start = now
	for _, a := range e.rules {
		a.everFired, a.lastFire = false, time.Time{}
		if r, ok := a.rule.(runScoped); ok {
			r.restart(now)
		}
	}
	e.NewAttempt(now)
}
