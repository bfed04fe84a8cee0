package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/prism-run/prism-run/limits"
	"github.com/prism-run/prism-run/probes/gpu"
	"github.com/prism-run/prism-run/supervisor"
)

// doctor finds out what this host can enforce for this user by trying
// each thing (a nested cgroup per limit, a child per isolation), not by
// reading configuration.
func doctorCommand(stdout io.Writer, nvml func() gpu.Library) *cli.Command {
	return &cli.Command{
		Name:         "doctor",
		Usage:        "find out, by trying, what this host can enforce for this user",
		OnUsageError: usageError,
		Action: func(c *cli.Context) error {
			ok := runDoctor(c.Context, stdout, nvml)
			if !ok {
				return fmt.Errorf("%w: the default mission cannot run here (see above)", errDoctor)
			}
			return nil
		},
	}
}

var errDoctor = fmt.Errorf("doctor")

type check struct {
	name, result, detail string
}

func runDoctor(ctx context.Context, w io.Writer, nvml func() gpu.Library) bool {
	var checks []check
	add := func(name string, err error, okDetail string) bool {
		c := check{name: name, result: "ok", detail: okDetail}
		if err != nil {
			c.result, c.detail = "no", err.Error()
		}
		checks = append(checks, c)
		return err == nil
	}

	host, err := limits.ReadHost()
	mode := "none"
	if err == nil {
		mode = host.Hierarchy.Mode.String()
	}
	var ctl []string
	for _, c := range limits.Controllers {
		if _, ok := host.Hierarchy.V1[c]; ok {
			ctl = append(ctl, c)
		}
	}
	detail := ""
	switch host.Hierarchy.Mode {
	case limits.ModeV1:
		detail = "controllers mounted: " + strings.Join(ctl, ", ")
	case limits.ModeV2:
		detail = "unified hierarchy at " + host.Hierarchy.Unified.Point + ", cgroup " + host.OwnV2
	}
	checks = append(checks, check{"cgroup mode", mode, detail})
	for _, l := range []struct {
		name string
		spec limits.CgroupSpec
	}{
		{"memory limit", limits.CgroupSpec{Memory: 1 << 30}},
		{"memory throttle", limits.CgroupSpec{MemoryHigh: 1 << 30}},
		{"cpu quota", limits.CgroupSpec{CPUs: 1}},
		{"pids limit", limits.CgroupSpec{Pids: 1000}},
	} {
		cg, err := limits.NewCgroup(host, limits.RunCgroupName(os.Getpid(), "doctor"), l.spec)
		d := ""
		if err == nil {
			d = "made, limited and removed " + cg.Path()
			err = cg.Delete()
		}
		add(l.name, err, d)
	}

	if kl, err := limits.OpenKernelLog("/dev/kmsg"); err != nil {
		checks = append(checks, check{"OOM victims", "no", err.Error() + " (OOM kills are counted, not named)"})
	} else {
		_ = kl.Close()
		checks = append(checks, check{"OOM victims", "ok", "named from the kernel log (/dev/kmsg)"})
	}

	// The rest is tried on real children, through the same code a run uses.
	try := func(cfg supervisor.Config) error {
		cfg.Command = []string{"true"}
		cfg.RunID = "doctor-" + strconv.Itoa(os.Getpid())
		cfg.Log = zerolog.Nop()
		res, err := supervisor.Run(ctx, cfg)
		if err == nil && res.Exit != 0 {
			err = fmt.Errorf("the test child exited %d", res.Exit)
		}
		return err
	}
	basic := add("run a child", try(supervisor.Config{}), "process group, Pdeathsig, output pipes")
	sub := add("subreaper", unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "detached descendants stay findable")
	add("rlimits", try(supervisor.Config{Rlimits: mustRlimit("core", 0)}), "set in the child before it runs")
	add("no_new_privs", try(supervisor.Config{NoNewPrivs: true}), "set and verified on a child")
	add("network namespace", try(supervisor.Config{IsolateNet: true}), "a child with loopback only")
	probe := gpu.New(nvml(), nil)
	if err := probe.Init(); err != nil {
		checks = append(checks, check{"GPU (NVML)", "no", err.Error() + " (GPU rules cannot see anything; --strict refuses them)"})
	} else {
		checks = append(checks, check{"GPU (NVML)", "ok", fmt.Sprintf("%d GPU(s): %v", len(probe.Devices()), probe.Devices())})
		probe.Close()
	}

	fmt.Fprintf(w, "prism-run doctor: what this host can enforce for uid %d\n", os.Geteuid())
	for _, c := range checks {
		fmt.Fprintf(w, "  %-18s %-4s %s\n", c.name, c.result, c.detail)
	}
	// The default mission confines nothing; it needs to run and watch a
	// child and to find what the child leaves behind.
	ok := basic && sub
	verdict := "ok"
	if !ok {
		verdict = "NOT ok"
	}
	fmt.Fprintf(w, "what the default mission needs: %s\n", verdict)
	return ok
}

func mustRlimit(name string, v uint64) []limits.Rlimit {
	r, err := limits.NewRlimit(name, v)
	if err != nil {
		panic(err)
	}
	return []limits.Rlimit{r}
}
