// Command gowrap is the baseline prism-run's start is measured against
// (make bench): the least a Go supervisor does, os/exec's Run of its
// arguments with the same streams and the child's exit code. With
// GOWRAP_TICK=DUR it also wakes on a ticker that does nothing: the floor
// of the CPU any Go process sampling that often costs on this machine.
package main

import (
	"errors"
	"os"
	"os/exec"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		os.Exit(2)
	}
	if d, err := time.ParseDuration(os.Getenv("GOWRAP_TICK")); err == nil && d > 0 {
		go func() {
			for range time.Tick(d) {
			}
		}()
	}
	cmd := exec.Command(os.Args[1], os.Args[2:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		os.Exit(ee.ExitCode())
	case err != nil:
		os.Exit(127)
	}
}
