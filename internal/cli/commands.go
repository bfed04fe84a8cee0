package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/prism-run/prism-run/markers"
	"github.com/prism-run/prism-run/policies"
	"github.com/prism-run/prism-run/replay"
	"github.com/prism-run/prism-run/supervisor"
	"github.com/prism-run/prism-run/telemetry"
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
would have ended the child, unless --keep-going, and exits with the code
the run would have had (75 when the recording acknowledges the checkpoint a
checkpoint-stop asked for within the checkpoint timeout, 124 otherwise, or
the rule's exit_code), so a CI job can gate on a recorded log. It ends, as a
run does, with the rules that never saw their metric and the malformed
marker lines (with --format json: on stderr).`,
		OnUsageError: usageError,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "mission", Usage: "built-in mission `NAME`"},
			&cli.StringSliceFlag{Name: "policy", Usage: "policy `FILE` layered over the mission; repeat for more"},
			&cli.StringFlag{Name: "format", Value: "text", Usage: "`FORMAT`: text | json (one decision per line)"},
			&cli.StringFlag{Name: "tick", Value: "100ms", Usage: "`DUR` one line stands for when lines carry none"},
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
			tick, err := policies.ParseDuration(c.String("tick"))
			if err != nil || tick <= 0 {
				return fmt.Errorf("%w: --tick %q: want a positive %s", errUsage, c.String("tick"), policies.DurationForms)
			}
			sum, err := replay.Run(in, stdout, replay.Options{Rules: pol.Rules, Parser: parser, Tick: tick,
				JSON: format == "json", KeepGoing: c.Bool("keep-going"),
				CheckpointTimeout: checkpointTimeout(pol), Notes: c.App.ErrWriter})
			if err != nil || sum.EndedBy == nil {
				return err
			}
			// A gate for CI: the code the run would have had.
			return exitWith(supervisor.ExitCode(supervisor.Outcome{Reason: telemetry.ReasonPolicy,
				Acked: sum.Acked, RuleExit: sum.EndedBy.ExitCode}))
		},
	}
}

// checkpointTimeout is the run's checkpoint_timeout under pol: the
// policy's, or the supervisor's default.
func checkpointTimeout(pol *policies.Resolved) time.Duration {
	if pol.CheckpointTimeout != nil {
		return *pol.CheckpointTimeout
	}
	return supervisor.DefaultCheckpointTimeout
}
