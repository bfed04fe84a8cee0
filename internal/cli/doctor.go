package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/prism-run/prism-run/internal/plan"
	"github.com/prism-run/prism-run/limits"
	"github.com/prism-run/prism-run/policies"
	"github.com/prism-run/prism-run/probes/gpu"
	"github.com/prism-run/prism-run/supervisor"
)

// doctor finds out what this host can enforce for this user by trying
// each thing: a short run under a plan that asks for one limit or one
// isolation, made and carried out by the code a real run uses.
func doctorCommand(stdout io.Writer, deps Deps) *cli.Command {
	return &cli.Command{
		Name:         "doctor",
		Usage:        "find out, by trying, what this host can enforce for this user",
		OnUsageError: usageError,
		Action: func(c *cli.Context) error {
			if !runDoctor(c.Context, stdout, deps) {
				return errors.New("doctor: the default mission cannot run here (see above)")
			}
			return nil
		},
	}
}

type check struct {
	name, result, detail string
}

func runDoctor(ctx context.Context, w io.Writer, deps Deps) bool {
	host := plan.ReadHost()
	d := &doctor{ctx: ctx, host: host, deps: deps}
	checks := []check{cgroupMode(host.Cgroups)}
	gib, one, thousand, zero := policies.Size(1<<30), 1.0, int64(1000), policies.Size(0)
	on := true
	checks = append(checks,
		d.try("memory limit", policies.Policy{Limits: policies.Limits{Memory: &gib}}),
		d.try("memory throttle", policies.Policy{Limits: policies.Limits{MemoryHigh: &gib}}),
		d.try("cpu quota", policies.Policy{Limits: policies.Limits{CPUs: &one}}),
		d.try("pids limit", policies.Policy{Limits: policies.Limits{Pids: &thousand}}),
		kernelLog(),
	)
	basic := d.try("run a child", policies.Policy{})
	basic.detail = "process group, Pdeathsig, output pipes"
	sub := check{"subreaper", "ok", "detached descendants stay findable"}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		sub.result, sub.detail = "no", err.Error()
	}
	checks = append(checks, basic, sub,
		d.try("rlimits", policies.Policy{Limits: policies.Limits{Core: &zero}}),
		d.try("no_new_privs", policies.Policy{Isolation: policies.Isolation{NoNewPrivs: &on}}),
		d.try("network namespace", policies.Policy{Isolation: policies.Isolation{IsolateNet: &on}}),
		gpuCheck(deps.NVML),
	)
	fmt.Fprintf(w, "prism-run doctor: what this host can enforce for uid %d\n", host.EUID)
	for _, c := range checks {
		fmt.Fprintf(w, "  %-18s %-4s %s\n", c.name, c.result, c.detail)
	}
	// The default mission confines nothing; it needs to run and watch a
	// child and to find what the child leaves behind. Its plan here says
	// what it would not enforce (its GPU rules without NVML).
	ok := basic.result == "ok" && sub.result == "ok"
	verdict := "ok"
	if !ok {
		verdict = "NOT ok"
	}
	if gaps := d.missionGaps("default"); len(gaps) > 0 && ok {
		verdict += ", but not enforced here: " + strings.Join(gaps, "; ")
	}
	fmt.Fprintf(w, "what the default mission needs: %s\n", verdict)
	return ok
}

// missionGaps plans a mission on this host, as a run would (NVML
// tried), and names what it could not enforce.
func (d *doctor) missionGaps(mission string) []string {
	src, err := policies.LoadMission(mission)
	if err != nil {
		return []string{err.Error()}
	}
	res, err := policies.Resolve(src)
	if err != nil {
		return []string{err.Error()}
	}
	p, err := plan.New(res, plan.Request{}, d.host)
	if err != nil {
		return []string{err.Error()}
	}
	_ = p.ProbeGPU(d.deps.NVML) // no --gpus list: nothing to refuse
	var out []string
	for _, g := range p.Gaps {
		out = append(out, g.Setting+" ("+g.Why+")")
	}
	return out
}

func cgroupMode(h limits.Host) check {
	c := check{"cgroup mode", h.Hierarchy.Mode.String(), ""}
	switch h.Hierarchy.Mode {
	case limits.ModeV1:
		var ctl []string
		for _, name := range limits.Controllers {
			if _, ok := h.Hierarchy.V1[name]; ok {
				ctl = append(ctl, name)
			}
		}
		c.detail = "controllers mounted: " + strings.Join(ctl, ", ")
	case limits.ModeV2:
		c.detail = "unified hierarchy at " + h.Hierarchy.Unified.Point + ", cgroup " + h.OwnV2
	}
	return c
}

func kernelLog() check {
	kl, err := limits.OpenKernelLog("/dev/kmsg")
	if err != nil {
		return check{"OOM victims", "no", err.Error() + " (OOM kills are counted, not named)"}
	}
	_ = kl.Close()
	return check{"OOM victims", "ok", "named from the kernel log (/dev/kmsg)"}
}

func gpuCheck(nvml func() gpu.Library) check {
	probe := gpu.New(nvml(), nil)
	if err := probe.Init(); err != nil {
		return check{"GPU (NVML)", "no", err.Error() + " (GPU rules cannot see anything; --strict refuses them)"}
	}
	defer probe.Close()
	return check{"GPU (NVML)", "ok", fmt.Sprintf("%d GPU(s): %v", len(probe.Devices()), probe.Devices())}
}

// doctor runs its tries.
type doctor struct {
	ctx  context.Context
	host plan.Host
	deps Deps
	n    int
}

// try plans a run of `sleep 0.1` under pol, strict (a gap is a failure), sets
// it up and runs it, as a real run would.
func (d *doctor) try(name string, pol policies.Policy) check {
	d.n++
	c := check{name: name, result: "ok"}
	detail, err := d.run(pol, "doctor-"+strconv.Itoa(os.Getpid())+"-"+strconv.Itoa(d.n))
	if err != nil {
		c.result, c.detail = "no", err.Error()
		return c
	}
	c.detail = detail
	return c
}

func (d *doctor) run(pol policies.Policy, runID string) (string, error) {
	strict := true
	pol.Strict = &strict
	res, err := policies.Resolve(&pol)
	if err != nil {
		return "", err
	}
	p, err := plan.New(res, plan.Request{GPUs: "none"}, d.host)
	if err != nil {
		return "", err
	}
	setup, err := p.Prepare(zerolog.Nop(), runID, plan.Deps{NVML: d.deps.NVML, Host: d.host})
	if err != nil {
		return "", errors.New(strings.TrimPrefix(err.Error(), plan.ErrRefused.Error()+": "))
	}
	defer setup.Close()
	cfg := p.Config(setup)
	// A child that lives a moment: what is verified on the running child
	// (no_new_privs) cannot be read from one that is already gone.
	cfg.Command, cfg.RunID, cfg.Log = []string{"sleep", "0.1"}, runID, zerolog.Nop()
	rep, err := supervisor.Run(d.ctx, cfg)
	if err == nil && rep.Exit != 0 {
		err = fmt.Errorf("the test child exited %d", rep.Exit)
	}
	if err != nil {
		return "", err
	}
	return describeTry(p, setup), nil
}

// describeTry says what a successful try enforced.
func describeTry(p *plan.Plan, setup *plan.Setup) string {
	var items []string
	for _, e := range p.Enforced() {
		switch e.What {
		case "cgroup", "rlimit":
			items = append(items, e.Name+" = "+e.Value)
		case "isolation":
			items = append(items, e.Name)
		}
	}
	switch {
	case len(items) == 0:
		return ""
	case setup.Cgroup != nil && p.Cgroup != (limits.CgroupSpec{}):
		return "made, limited and removed a cgroup (" + strings.Join(items, ", ") + ")"
	case p.NoNewPrivs:
		return "set and verified on a child"
	case p.IsolateNet:
		return "a child with loopback only"
	default:
		return "set in the child before it runs (" + strings.Join(items, ", ") + ")"
	}
}
