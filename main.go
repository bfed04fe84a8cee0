// Command prism-run supervises a long GPU computation: it starts the
// command as a child, watches it and acts on policy (DESIGN.md).
//
//	prism-run [flags] -- COMMAND [ARGS...]
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/prism-run/prism-run/limits"
	"github.com/prism-run/prism-run/probes/gpu"
	"github.com/prism-run/prism-run/supervisor"
)

// Stamped by the Makefile with -ldflags "-X main.version=...".
var (
	version = "dev"
	commit  = "unknown"
	date    = "unknown"
)

func main() {
	os.Exit(run(context.Background(), os.Args, os.Stdout, os.Stderr))
}

// errUsage marks a mistake in how prism-run was called.
var errUsage = errors.New("usage")

// errStrict: strict mode refused a run it could not confine as asked.
var errStrict = errors.New("strict mode")

// exitCode is the one place errors become exit codes (DESIGN.md's table).
// A run that got as far as a Result carries its own code.
func exitCode(res *supervisor.Result, err error) int {
	switch {
	case res != nil:
		return res.Exit
	case err == nil:
		return 0
	case errors.Is(err, supervisor.ErrNotFound):
		return supervisor.ExitNotFound
	case errors.Is(err, supervisor.ErrCannotRun):
		return supervisor.ExitCannotRun
	default: // errUsage, errStrict, supervisor.ErrConfig, ErrSetup, a bad flag value...
		return supervisor.ExitInternal
	}
}

// run is prism-run without the process around it: arguments in, exit code
// out.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runWith(ctx, args, stdout, stderr, gpu.System)
}

// runWith is run with the NVML library injected (tests pass a simulated
// GPU server).
func runWith(ctx context.Context, args []string, stdout, stderr io.Writer, nvml func() gpu.Library) int {
	limits.QuietLibraryLog()
	if len(args) > 1 && args[1] == limits.ShimArg {
		// prism-run re-executed as the shim that confines the child.
		return limits.ShimMain(args[2:])
	}
	if len(args) > 1 && args[1] == limits.WatchArg {
		// prism-run re-executed as the watchdog of a run's cgroup.
		return limits.WatchMain(args[2:], stderr)
	}
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
	var res *supervisor.Result
	app := newApp(stdout, stderr, command, &res, nvml)
	err := app.RunContext(ctx, args)
	if err != nil && !errors.Is(err, errReported) {
		fmt.Fprintf(stderr, "prism-run: %v\n", err)
	}
	return exitCode(res, err)
}

// errReported wraps an error prism-run's log has already reported.
var errReported = errors.New("reported")

// cliExit keeps urfave/cli from calling os.Exit on its own.
func cliExit(*cli.Context, error) {}
