package policies

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// A layered policy's mistake that only the merge shows is named by the
// layer that brought it in, over the layers below it.
func TestResolveLayersNamesTheCulprit(t *testing.T) {
	pwsa, err := LoadMission("pwsa")
	if err != nil {
		t.Fatal(err)
	}
	fine := mustParse(t, "[[rule]]\nname = \"late\"\nkind = \"deadline\"\nafter = \"1h\"\n")
	patience := mustParse(t, "[[rule]]\nname = \"latency-hard\"\npatience = 3\n")
	tests := []struct {
		name   string
		names  []string
		layers []*Policy
		want   string
	}{
		{"a field of another kind, over the mission", []string{"mission pwsa", "mine.toml"}, []*Policy{pwsa, patience},
			`mine.toml (over mission pwsa): rule "latency-hard".patience: does not apply to a threshold rule`},
		{"found under a later, innocent layer", []string{"mission pwsa", "mine.toml", "fine.toml"}, []*Policy{pwsa, patience, fine},
			`mine.toml (over mission pwsa): rule "latency-hard".patience`},
		{"an override before its rule", []string{"mine.toml", "mission pwsa"}, []*Policy{patience, pwsa},
			`mine.toml: rule "latency-hard": has no kind`},
		{"an override of nothing, over layers", []string{"mission pwsa", "fine.toml", "mine.toml"},
			[]*Policy{pwsa, fine, mustParse(t, "[[rule]]\nname = \"nope\"\nabove = 1\n")},
			`mine.toml (over mission pwsa, fine.toml): rule "nope": has no kind`},
		{"the first layer alone", []string{"flags", "fine.toml"},
			[]*Policy{{Rules: []RuleSpec{{Name: ptrTo("m"), Kind: ptrTo(KindMax), Metric: ptrTo("iter")}}}, fine},
			`flags: rule "m".max: a max rule needs max`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ResolveLayers(tt.names, tt.layers)
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("error %v, want one starting %q", err, tt.want)
			}
		})
	}
}

// Layers that agree resolve as their merge: a later layer's number wins,
// a missing layer (nil) is skipped.
func TestResolveLayersMerges(t *testing.T) {
	pwsa, err := LoadMission("pwsa")
	if err != nil {
		t.Fatal(err)
	}
	looser := mustParse(t, "[[rule]]\nname = \"latency-hard\"\nabove = 9\n")
	res, err := ResolveLayers([]string{"mission pwsa", "absent", "mine.toml"}, []*Policy{pwsa, nil, looser})
	if err != nil {
		t.Fatal(err)
	}
	e := mustEngine(t, res.Rules...)
	if ds := e.Observe(metric(time.Second, NameLatency, 7)); len(ds) != 0 {
		t.Errorf("latency 7 ms under a bound raised to 9: %+v", ds)
	}
	if ds := e.Observe(metric(2*time.Second, NameLatency, 9.5)); len(ds) != 1 || ds[0].Rule != "latency-hard" || ds[0].Action != ActionStop {
		t.Errorf("latency 9.5 ms: %+v, want latency-hard's stop", ds)
	}
}

func ptrTo[T any](v T) *T { return &v }

// Resolve names a merged rule by its name (a merge has no file to point
// into), a nameless one by its place; a rule with no kind in the merge is
// refused.
func TestResolveNamesRules(t *testing.T) {
	tests := []struct {
		p    *Policy
		want string
	}{
		{&Policy{Rules: []RuleSpec{{Name: ptrTo("m"), Kind: ptrTo(KindMax), Metric: ptrTo("iter")}}}, `policy: rule "m".max: a max rule needs max`},
		{&Policy{Rules: []RuleSpec{{Kind: ptrTo(KindMax)}}}, "policy: rule#0: a rule needs a name"},
		{&Policy{Rules: []RuleSpec{{Name: ptrTo("o"), Above: ptrTo(Number(1))}}}, `policy: rule "o": has no kind`},
		{&Policy{Recovery: Recovery{BackoffInitial: ptrTo(Duration(-time.Second))}}, "policy: recovery.backoff_initial: must not be negative"},
	}
	for _, tt := range tests {
		if _, err := Resolve(tt.p); err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("Resolve = %v, want %q", err, tt.want)
		}
	}
}

// The signals a policy names resolve to their canonical names, the
// defaults otherwise.
func TestResolveSignals(t *testing.T) {
	res, err := resolveSrc(t, "[actions]\ncheckpoint_signal = \"hup\"\ndegrade_signal = \"USR1\"\nsend_unhandled = true\n")
	if err != nil {
		t.Fatal(err)
	}
	if res.CheckpointSignal != "SIGHUP" || res.DegradeSignal != "SIGUSR1" || !res.SendUnhandled {
		t.Errorf("signals %s %s, send_unhandled %v", res.CheckpointSignal, res.DegradeSignal, res.SendUnhandled)
	}
	if res, _ = resolveSrc(t, ""); res.CheckpointSignal != "SIGUSR1" || res.DegradeSignal != "SIGUSR2" || res.SendUnhandled {
		t.Errorf("default signals %s %s, send_unhandled %v", res.CheckpointSignal, res.DegradeSignal, res.SendUnhandled)
	}
}

// [actions] checkpoint_every adds the periodic rule, under a name a
// policy's own rule may not take.
func TestCheckpointEveryRule(t *testing.T) {
	res, err := resolveSrc(t, "[actions]\ncheckpoint_every = \"30m\"\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rules) != 1 || res.Rules[0].Meta().Name != PeriodicRuleName || res.Rules[0].(*Periodic).Interval != 30*time.Minute {
		t.Fatalf("rules %+v, want the periodic checkpoint every 30m", res.Rules)
	}
	for src, want := range map[string]string{
		"[actions]\ncheckpoint_every = \"1h\"\n[[rule]]\nname = \"checkpoint-every\"\nkind = \"deadline\"\nafter = \"2h\"\n": `p.toml:4: rule[0].name: "checkpoint-every" is the rule [actions] checkpoint_every makes`,
		"[actions]\ncheckpoint_every = \"0s\"\n": "p.toml:2: actions.checkpoint_every: must be positive",
	} {
		if _, err := resolveSrc(t, src); err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%q: %v, want %q", src, err, want)
		}
	}
}
