package plan

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/prism-run/prism-run/policies"
	"github.com/prism-run/prism-run/supervisor"
	"github.com/prism-run/prism-run/telemetry"
)

// Enforced lists what a run of this plan is held to, item by item: the
// rules, the rlimits, the cgroup files and their values (in the host's
// cgroup mode), the isolation, the user, the GPUs and the timings. A gap
// is not in it. --dry-run prints these lines and the run report carries
// them, so the two cannot differ.
func (p *Plan) Enforced() []telemetry.Enforced {
	var out []telemetry.Enforced
	add := func(what, name, value string) {
		out = append(out, telemetry.Enforced{What: what, Name: name, Value: value})
	}
	for _, r := range p.Policy.Rules {
		m := r.Meta()
		add("rule", m.Name, ruleSummary(m))
	}
	for _, r := range p.Rlimits {
		add("rlimit", r.Name, strconv.FormatUint(r.Cur, 10))
	}
	if !p.HasCgroupGap() {
		for _, f := range p.Cgroup.Files(p.CgroupMode) {
			add("cgroup", f.Name, f.Value)
		}
	}
	if p.NoNewPrivs {
		add("isolation", "no_new_privs", "set, and verified on the running child")
	}
	if p.CleanEnv {
		add("isolation", "clean_env", "PATH, HOME, LANG, TERM, CUDA_VISIBLE_DEVICES, PRISM_* and --env only, verified on the running child")
	}
	if p.IsolateNet && !p.hasGap("isolation.isolate_net") {
		add("isolation", "isolate_net", "a new network namespace with loopback only")
	}
	for _, kv := range p.DefaultEnv {
		k, v, _ := strings.Cut(kv, "=")
		add("env", k, v+" (unless set)")
	}
	if p.UID != nil {
		add("user", "uid:gid", fmt.Sprintf("%d:%d", *p.UID, *p.GID))
	}
	switch {
	case p.GPUs == nil:
	case len(p.GPUs) == 0:
		add("gpus", "sampled", "none")
	default:
		ids := make([]string, len(p.GPUs))
		for i, g := range p.GPUs {
			ids[i] = strconv.Itoa(g)
		}
		add("gpus", "CUDA_VISIBLE_DEVICES", strings.Join(ids, ","))
	}
	add("timing", "kill_after", p.KillAfter.String())
	add("timing", "checkpoint_timeout", p.CheckpointTimeout.String())
	add("timing", "sample_interval", p.SampleInterval.String())
	recovers := slices.ContainsFunc(p.Policy.Rules, func(r policies.Rule) bool {
		m := r.Meta()
		return m.Action.Recovers() || m.Escalate.Recovers()
	})
	for _, kv := range recoveryItems(p.Policy.Recovery, recovers) {
		add("recovery", kv[0], kv[1])
	}
	return out
}

// recoveryItems says what follows a child's end, when anything can: a
// restart mode other than never, a strategy other than checkpoint-stop,
// a rule's recovery action, a fallback, or retention.
func recoveryItems(r policies.RecoveryPlan, recovers bool) [][2]string {
	items := [][2]string{}
	if r.Restart != policies.RestartNever {
		items = append(items, [2]string{"restart", string(r.Restart)})
	}
	if r.Strategy != policies.ActionCheckpointStop {
		items = append(items, [2]string{"strategy", string(r.Strategy) + " (what a high rule without an action does)"})
	}
	if len(r.Fallback) > 0 {
		items = append(items, [2]string{"fallback", strings.Join(quoteArgs(r.Fallback), " ")})
	}
	if r.Keep > 0 {
		items = append(items, [2]string{"keep", strconv.Itoa(r.Keep) + " acknowledged checkpoints"})
	}
	if len(items) == 0 && !recovers {
		return nil
	}
	perHour := "no hourly bound"
	if r.MaxRestartsPerHour > 0 {
		perHour = strconv.Itoa(r.MaxRestartsPerHour) + " per hour"
	}
	return append(items,
		[2]string{"budget", fmt.Sprintf("%d failures in all, %s (preemption-like stops free)", r.MaxRestarts, perHour)},
		[2]string{"backoff", fmt.Sprintf("%s doubling to %s, jitter %g, reset after %s healthy", r.BackoffInitial, r.BackoffMax, r.Jitter, r.HealthyAfter)})
}

func (p *Plan) hasGap(setting string) bool {
	for _, g := range p.Gaps {
		if g.Setting == setting {
			return true
		}
	}
	return false
}

// ruleSummary says what a rule does: "deadline, high -> checkpoint-stop".
func ruleSummary(m policies.Meta) string {
	act := m.Action
	if act == "" {
		act = policies.DefaultAction(m.Severity)
	}
	s := fmt.Sprintf("%s, %s -> %s", m.Kind, m.Severity, act)
	if m.What != "" {
		s += " " + m.What
	}
	if m.Escalate != "" {
		s += fmt.Sprintf(", then %s after %s", m.Escalate, m.EscalateAfter)
	}
	if m.ExitCode != nil {
		s += fmt.Sprintf(", exit %d", *m.ExitCode)
	}
	return s
}

// Describe writes the dry-run: the layers, the resolved policy as TOML,
// the command, every enforced item and every gap.
func (p *Plan) Describe(w io.Writer, layers []string, command []string) error {
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "# prism-run --dry-run: nothing was started.\n# layers, later wins: %s\n\n", strings.Join(layers, ", "))
	if err := toml.NewEncoder(&buf).Encode(p.Policy.Policy); err != nil {
		return err
	}
	fmt.Fprintf(&buf, "\n# would run: %s\n", strings.Join(quoteArgs(command), " "))
	fmt.Fprintf(&buf, "# would enforce (cgroup %s):\n", p.CgroupMode)
	if len(p.Policy.Rules) == 0 {
		fmt.Fprintln(&buf, "#   no rules: the child runs until it exits")
	}
	for _, e := range p.Enforced() {
		fmt.Fprintf(&buf, "#   %s\n", e)
	}
	for _, g := range p.Gaps {
		fmt.Fprintf(&buf, "# NOT enforced: %s: %s\n", g.Setting, g.Why)
	}
	if st := supervisor.DescribeState(p.CheckpointDir, p.StateDir); st != "" {
		fmt.Fprintf(&buf, "# %s\n", st)
	}
	if p.Refusal() != nil {
		fmt.Fprintln(&buf, "# strict: a real run would refuse to start (exit 125)")
	}
	_, err := w.Write(buf.Bytes())
	return err
}

func quoteArgs(args []string) []string {
	if len(args) == 0 {
		return []string{"(no command given)"}
	}
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$`") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out[i] = a
	}
	return out
}
