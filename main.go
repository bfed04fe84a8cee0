// Command prism-run supervises a long GPU computation: it starts the
// command as a child, confines it, watches it and acts on policy
// (docs/DESIGN.md).
//
//	prism-run [flags] -- COMMAND [ARGS...]
//
// This is the entry point only: the same binary is also the shim that
// confines the child before it execs the command, and the watchdog of a
// run's cgroup; everything else is in internal/cli.
//
// The runtime's periodic re-read of the cgroup's CPU limit (Go 1.25's
// updatemaxprocs) is off: it wakes an idle prism-run to re-read files a
// supervisor of a few goroutines has no use for (BENCHMARKS.md measures
// prism-run's own CPU while its child runs).
//
//go:debug updatemaxprocs=0
package main

import (
	"context"
	"os"

	"github.com/prism-run/prism-run/internal/cli"
	"github.com/prism-run/prism-run/limits"
	"github.com/prism-run/prism-run/probes/gpu"
)

// Stamped by the Makefile with -ldflags "-X main.version=...".
var (
	version = "dev"
	commit  = "unknown"
	date    = "unknown"
)

func main() {
	os.Exit(run(os.Args, cli.Deps{NVML: gpu.System}))
}

// run is prism-run without the process around it: arguments in, exit
// code out. Tests pass a simulated GPU server as deps.NVML.
func run(args []string, deps cli.Deps) int {
	limits.QuietLibraryLog()
	if len(args) > 1 {
		switch args[1] {
		case limits.ShimArg: // re-executed as the shim that confines the child
			return limits.ShimMain(args[2:])
		case limits.WatchArg: // re-executed as the watchdog of a run's cgroup
			return limits.WatchMain(args[2:], os.Stderr)
		}
	}
	stdio := cli.IO{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}
	return cli.Main(context.Background(), args, stdio, cli.Build{Version: version, Commit: commit, Date: date}, deps)
}
