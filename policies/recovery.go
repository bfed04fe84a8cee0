package policies

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// RestartMode is what a child's own end does (systemd's Restart=).
type RestartMode string

// Restart modes.
const (
	// RestartNever: a child's own end ends the run (rules' recovery
	// actions still restart).
	RestartNever RestartMode = "never"
	// RestartOnFailure: a non-zero exit, a signal no one outside sent, an
	// OOM kill start the child again.
	RestartOnFailure RestartMode = "on-failure"
	// RestartAlways: an exit 0 too (a service that must keep running).
	RestartAlways RestartMode = "always"
)

// RestartModes lists the modes, for messages and flags.
func RestartModes() []string {
	return []string{string(RestartNever), string(RestartOnFailure), string(RestartAlways)}
}

// Strategies are the actions [recovery] strategy may name.
func Strategies() []string {
	return []string{string(ActionCheckpointStop), string(ActionRestart), string(ActionRollback), string(ActionFailover)}
}

// Defaults of [recovery] (docs/DESIGN.md). The backoff is Kubernetes'
// CrashLoopBackOff (10 s doubling to 5 min, reset after 10 min of
// running), made tunable.
const (
	DefaultMaxRestarts    = 3
	DefaultBackoffInitial = 10 * time.Second
	DefaultBackoffMax     = 5 * time.Minute
	DefaultJitter         = 0.2
	DefaultHealthyAfter   = 10 * time.Minute
)

// RecoveryPlan is [recovery] resolved: every field has its value.
type RecoveryPlan struct {
	Strategy Action // what a high rule without an action does
	Restart  RestartMode
	// MaxRestarts bounds the restarts after failures over the whole run,
	// across invocations that share a state (preemption-like restarts
	// are not counted). 0: a failure is never restarted.
	MaxRestarts int
	// MaxRestartsPerHour bounds the failures within any hour: one more is
	// a crash loop, which ends the run. 0: no hourly bound.
	MaxRestartsPerHour int
	BackoffInitial     time.Duration
	BackoffMax         time.Duration
	Jitter             float64 // the delay is drawn from [1-Jitter, 1+Jitter] x the interval
	HealthyAfter       time.Duration
	Fallback           []string // the failover command; nil: none
	Keep               int      // acknowledged checkpoints kept; 0: all
}

// Plan resolves [recovery] over its defaults.
func (r Recovery) Plan() RecoveryPlan {
	p := RecoveryPlan{Strategy: ActionCheckpointStop, Restart: RestartNever, MaxRestarts: DefaultMaxRestarts,
		BackoffInitial: DefaultBackoffInitial, BackoffMax: DefaultBackoffMax, Jitter: DefaultJitter,
		HealthyAfter: DefaultHealthyAfter, Fallback: slices.Clone(r.Fallback)}
	if r.Strategy != nil {
		p.Strategy = Action(*r.Strategy)
	}
	if r.Restart != nil {
		p.Restart = RestartMode(*r.Restart)
	}
	if r.MaxRestarts != nil {
		p.MaxRestarts = int(*r.MaxRestarts)
	}
	if r.MaxRestartsPerHour != nil {
		p.MaxRestartsPerHour = int(*r.MaxRestartsPerHour)
	}
	if r.BackoffInitial != nil {
		p.BackoffInitial = r.BackoffInitial.D()
	}
	if r.BackoffMax != nil {
		p.BackoffMax = r.BackoffMax.D()
	} else if p.BackoffInitial > p.BackoffMax {
		p.BackoffMax = p.BackoffInitial
	}
	if r.Jitter != nil {
		p.Jitter = *r.Jitter
	}
	if r.HealthyAfter != nil {
		p.HealthyAfter = r.HealthyAfter.D()
	}
	if r.Keep != nil {
		p.Keep = int(*r.Keep)
	}
	return p
}

// check refuses what cannot work, naming the field.
func (r Recovery) check() error {
	if r.Strategy != nil && !slices.Contains(Strategies(), *r.Strategy) {
		return fieldErr("recovery.strategy", "unknown strategy %q (%s)", *r.Strategy, strings.Join(Strategies(), " | "))
	}
	if r.Restart != nil && !slices.Contains(RestartModes(), *r.Restart) {
		return fieldErr("recovery.restart", "unknown restart mode %q (%s)", *r.Restart, strings.Join(RestartModes(), " | "))
	}
	for _, n := range []struct {
		f string
		v *int64
	}{{"recovery.max_restarts", r.MaxRestarts}, {"recovery.max_restarts_per_hour", r.MaxRestartsPerHour}, {"recovery.keep", r.Keep}} {
		if n.v != nil && (*n.v < 0 || *n.v > 1_000_000) {
			return fieldErr(n.f, "must be 0..1000000")
		}
	}
	for _, d := range []struct {
		f string
		v *Duration
	}{{"recovery.backoff_initial", r.BackoffInitial}, {"recovery.backoff_max", r.BackoffMax}, {"recovery.healthy_after", r.HealthyAfter}} {
		if d.v != nil && d.v.D() < 0 {
			return fieldErr(d.f, "must not be negative")
		}
	}
	if r.BackoffInitial != nil && r.BackoffMax != nil && r.BackoffMax.D() < r.BackoffInitial.D() {
		return fieldErr("recovery.backoff_max", "is below backoff_initial (%s)", r.BackoffInitial.D())
	}
	if j := r.Jitter; j != nil && !(*j >= 0 && *j < 1) {
		return fieldErr("recovery.jitter", "must be at least 0 and below 1 (a fraction of the delay)")
	}
	if r.Fallback != nil && (len(r.Fallback) == 0 || r.Fallback[0] == "") {
		return fieldErr("recovery.fallback", "must name a command: [\"./backup-solver\", \"--safe\"]")
	}
	return nil
}

// needsFallback names the first place of a resolved policy that fails
// over without a fallback command ("" when none does).
func needsFallback(p *Policy, rules []Rule) string {
	if len(p.Recovery.Fallback) > 0 {
		return ""
	}
	if p.Recovery.Strategy != nil && Action(*p.Recovery.Strategy) == ActionFailover {
		return "recovery.strategy"
	}
	for _, r := range rules {
		if m := r.Meta(); m.Action == ActionFailover || m.Escalate == ActionFailover {
			return fmt.Sprintf("rule %q.action", m.Name)
		}
	}
	return ""
}

// withStrategy gives a rule table that names no action, and whose
// severity is high, the strategy's action (seed 2.1: high -> the recovery
// strategy). The table itself is left alone: what a layer said stays
// what it said.
func withStrategy(r RuleSpec, strategy *string) RuleSpec {
	if strategy == nil || r.Action != nil || Action(*strategy) == ActionCheckpointStop {
		return r
	}
	sev := SeverityMedium
	if k, ok := kindNamed(str(r.Kind)); ok {
		sev = k.Severity
	}
	if r.Severity != nil {
		if s, err := ParseSeverity(*r.Severity); err == nil {
			sev = s
		}
	}
	if sev == SeverityHigh {
		r.Action = strategy
	}
	return r
}
