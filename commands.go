package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/urfave/cli/v2"

	"github.com/prism-run/prism-run/markers"
	"github.com/prism-run/prism-run/policies"
	"github.com/prism-run/prism-run/replay"
)

// check validates policy files: exit 0, or 125 with the first mistake.
func checkCommand(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:         "check",
		Usage:        "validate policy files (exit 0, or 125 naming the file, line and field)",
		ArgsUsage:    "FILE...",
		Flags:        []cli.Flag{&cli.StringFlag{Name: "mission", Usage: "also check the files layered over mission `NAME`"}},
		OnUsageError: usageError,
		Action: func(c *cli.Context) error {
			files := c.Args().Slice()
			if len(files) == 0 {
				return fmt.Errorf("%w: check needs at least one policy file", errUsage)
			}
			res, err := resolveLayers(c.String("mission"), files)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "ok: %s (%d rules)\n", strings.Join(files, ", "), len(res.Rules))
			return nil
		},
	}
}

// missions lists the built-in missions, or prints one as TOML.
func missionsCommand(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:         "missions",
		Usage:        "list the built-in missions, or print one as TOML",
		ArgsUsage:    "[NAME]",
		OnUsageError: usageError,
		Action: func(c *cli.Context) error {
			if name := c.Args().First(); name != "" {
				src, err := policies.MissionSource(name)
				if err != nil {
					return fmt.Errorf("%w: %w", errUsage, err)
				}
				_, err = stdout.Write(src)
				return err
			}
			for _, name := range policies.MissionNames() {
				p, err := policies.LoadMission(name)
				if err != nil {
					return err
				}
				fmt.Fprintf(stdout, "%-13s %s\n", name, *p.Description)
			}
			return nil
		},
	}
}

// replay runs the engine over a recorded output.
func replayCommand(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:      "replay",
		Usage:     "run a policy over a recorded output and print its decisions",
		ArgsUsage: "FILE|-",
		Description: `Each line's time is an RFC 3339 timestamp at its start, else the marker's
t=SECONDS key, else one --tick after the previous line. The same input gives
the same output, byte for byte. Replay stops at the first decision that
would have ended the child, unless --keep-going.`,
		OnUsageError: usageError,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "mission", Usage: "built-in mission `NAME`"},
			&cli.StringSliceFlag{Name: "policy", Usage: "policy `FILE` layered over the mission; repeat for more"},
			&cli.StringFlag{Name: "format", Value: "text", Usage: "`FORMAT`: text | json (one decision per line)"},
			&cli.DurationFlag{Name: "tick", Value: 100 * time.Millisecond, Usage: "time one line stands for when lines carry none"},
			&cli.BoolFlag{Name: "keep-going", Usage: "go on after a decision that would have ended the child"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return fmt.Errorf("%w: replay needs one recording (a file, or - for stdin)", errUsage)
			}
			format := c.String("format")
			if format != "text" && format != "json" {
				return fmt.Errorf("%w: --format %q: want text | json", errUsage, format)
			}
			pol, err := resolveLayers(c.String("mission"), c.StringSlice("policy"))
			if err != nil {
				return err
			}
			prefix := pol.MarkerPrefix
			if prefix == "" {
				prefix = markers.DefaultPrefix
			}
			parser, err := markers.NewParser(prefix, pol.Patterns...)
			if err != nil {
				return fmt.Errorf("%w: %w", errUsage, err)
			}
			var in io.Reader = os.Stdin
			if name := c.Args().First(); name != "-" {
				f, err := os.Open(name)
				if err != nil {
					return fmt.Errorf("%w: %w", errUsage, err)
				}
				defer f.Close()
				in = f
			}
			_, err = replay.Run(in, stdout, replay.Options{Rules: pol.Rules, Parser: parser, Tick: c.Duration("tick"),
				JSON: format == "json", KeepGoing: c.Bool("keep-going")})
			return err
		},
	}
}

// dryRun prints the resolved policy and what a run would enforce.
func dryRun(w io.Writer, o options, pol *policies.Resolved, gaps []gap, command []string) error {
	var buf bytes.Buffer
	layers := []string{}
	if o.mission != "" {
		layers = append(layers, "mission "+o.mission)
	}
	for _, p := range o.policies {
		layers = append(layers, "policy "+p)
	}
	layers = append(layers, "flags")
	fmt.Fprintf(&buf, "# prism-run --dry-run: nothing was started.\n# layers, later wins: %s\n\n", strings.Join(layers, ", "))
	if err := toml.NewEncoder(&buf).Encode(pol.Policy); err != nil {
		return err
	}
	fmt.Fprintf(&buf, "\n# would run: %s\n", strings.Join(quoteArgs(command), " "))
	fmt.Fprintf(&buf, "# would enforce:\n")
	for _, r := range pol.Rules {
		m := r.Meta()
		act := m.Action
		if act == "" {
			act = policies.DefaultAction(m.Severity)
		}
		line := fmt.Sprintf("#   rule %s (%s, %s) -> %s", m.Name, m.Kind, m.Severity, act)
		if m.What != "" {
			line += " " + m.What
		}
		if m.Escalate != "" {
			line += fmt.Sprintf(", then %s after %s", m.Escalate, m.EscalateAfter)
		}
		if m.ExitCode != nil {
			line += fmt.Sprintf(", exit %d", *m.ExitCode)
		}
		fmt.Fprintln(&buf, line)
	}
	if len(pol.Rules) == 0 {
		fmt.Fprintln(&buf, "#   no rules: the child runs until it exits")
	}
	if rl, err := rlimitsOf(pol.Policy.Limits); err == nil {
		for _, r := range rl {
			fmt.Fprintf(&buf, "#   rlimit %s = %d\n", r.Name, r.Cur)
		}
	}
	iso := pol.Policy.Isolation
	if isSet(iso.NoNewPrivs) {
		fmt.Fprintln(&buf, "#   no_new_privs, verified on the running child")
	}
	if isSet(iso.CleanEnv) {
		fmt.Fprintln(&buf, "#   a clean environment (PATH, HOME, LANG, TERM, PRISM_*, --env)")
	}
	for _, g := range gaps {
		fmt.Fprintf(&buf, "# NOT enforced: %s: %s\n", g.setting, g.why)
	}
	if pol.Strict && len(gaps) > 0 {
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
