// Package cli is prism-run's command line: flags, subcommands and help
// (urfave/cli). A run goes flags -> policy layers -> plan -> supervisor;
// the subcommands check policies, print missions, replay a recording and
// find out what this host can enforce.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
	"k8s.io/utils/clock"

	"github.com/prism-run/prism-run/policies"
	"github.com/prism-run/prism-run/probes/gpu"
	"github.com/prism-run/prism-run/supervisor"
	"github.com/prism-run/prism-run/telemetry"
)

// Build is what the Makefile stamps into the binary.
type Build struct{ Version, Commit, Date string }

// IO are prism-run's standard streams.
type IO struct {
	Stdin          *os.File // handed to the child (nil: /dev/null)
	Stdout, Stderr io.Writer
}

// Deps are the command line's seams to the host.
type Deps struct {
	// NVML returns the NVML library: gpu.System, or a simulated GPU
	// server in tests.
	NVML func() gpu.Library
	// Clock makes the timers of prism-run's own outputs (the metrics
	// textfile's); nil = the system clock.
	Clock clock.WithTicker
}

func (d Deps) clock() clock.WithTicker {
	if d.Clock == nil {
		return clock.RealClock{}
	}
	return d.Clock
}

// errUsage marks a mistake in how prism-run was called.
var errUsage = errors.New("usage")

// errReported wraps an error prism-run's log has already reported.
var errReported = errors.New("reported")

// codeError ends a command with a code that is no failure to report:
// replay's "the run would have been stopped".
type codeError struct{ code int }

func (e codeError) Error() string { return fmt.Sprintf("exit %d", e.code) }

func exitWith(code int) error { return codeError{code} }

// Main runs prism-run's command line (args[0] is the program's name) and
// returns its exit code.
func Main(ctx context.Context, args []string, stdio IO, build Build, deps Deps) int {
	// A closed stdout or stderr (`prism-run ... 2>&1 | head`) must never
	// kill prism-run, losing the report and leaving the run's cgroup: with
	// SIGPIPE caught, a write to a broken pipe on fd 1 or 2 fails with
	// EPIPE instead of ending the program (os/signal). Caught, not
	// ignored: execve(2) resets a caught signal for the child, but would
	// hand it an ignored one.
	pipe := make(chan os.Signal, 1)
	signal.Notify(pipe, unix.SIGPIPE)
	defer signal.Stop(pipe)
	// Everything after the first "--" is the command, never prism-run's:
	// `prism-run -- version` runs a program called version.
	var command []string
	for i, a := range args {
		if a == "--" {
			args, command = args[:i], args[i+1:]
			if command == nil {
				command = []string{}
			}
			break
		}
	}
	if stop := profile(os.Getenv("PRISM_CPUPROFILE"), stdio.Stderr); stop != nil {
		defer stop()
	}
	var rep *telemetry.Report
	app := newApp(stdio, build, deps, command, &rep)
	err := app.RunContext(ctx, args)
	var ce codeError
	if err != nil && !errors.Is(err, errReported) && !errors.As(err, &ce) {
		fmt.Fprintf(stdio.Stderr, "prism-run: %v\n", err)
	}
	return exitCode(rep, err)
}

// exitCode is where the command line's result becomes prism-run's exit
// code: a run's report carries the code of its outcome, and any other
// failure is an outcome of its own; supervisor.ExitCode decides both.
func exitCode(rep *telemetry.Report, err error) int {
	var ce codeError
	switch {
	case rep != nil:
		return rep.Exit
	case err == nil:
		return 0
	case errors.As(err, &ce):
		return ce.code
	default:
		return supervisor.ExitCode(supervisor.Failed(err))
	}
}

// cliExit keeps urfave/cli from calling os.Exit on its own.
func cliExit(*cli.Context, error) {}

// usageError is a flag error of the command line, with the flag the
// user likely meant ("--timout": --timeout).
func usageError(c *cli.Context, err error, _ bool) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		name = strings.TrimLeft(name, "-")
		msg = "unknown flag --" + name
		flags := c.App.Flags
		if c.Command != nil && len(c.Command.Flags) > 0 {
			flags = c.Command.Flags
		}
		var names []string
		for _, f := range flags {
			names = append(names, f.Names()...)
		}
		if near := policies.Closest(name, names); near != "" {
			msg += fmt.Sprintf("; did you mean --%s?", near)
		}
	}
	return fmt.Errorf("%w: %s (see prism-run --help)", errUsage, msg)
}

// profile writes a CPU profile of this prism-run to path (the
// PRISM_CPUPROFILE environment variable; how BENCHMARKS.md's figures were
// profiled: go tool pprof bin/prism-run FILE). It returns the function
// that stops and writes it, or nil when path is empty or cannot be made.
func profile(path string, stderr io.Writer) func() {
	if path == "" {
		return nil
	}
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintf(stderr, "prism-run: PRISM_CPUPROFILE: %v\n", err)
		return nil
	}
	return func() { pprof.StopCPUProfile(); _ = f.Close() }
}
