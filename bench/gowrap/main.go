// Command gowrap is the baseline prism-run's start is measured against
// (make bench): the least a Go supervisor does, os/exec's Run of its
// arguments with the same streams and the child's exit code. With
// GOWRAP_TICK=DUR it also wakes on a ticker that does nothing: the floor
// of the CPU any Go process sampling that often costs on this machine.
// With GOWRAP_REACT=LINE it reads the child's stdout line by line and
// sends it SIGUSR1 for each line equal to LINE: the least a Go supervisor
// does to react to a marker, the reaction figure's baseline.
package main

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"syscall"
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
	var err error
	if line := os.Getenv("GOWRAP_REACT"); line != "" {
		err = react(cmd, line)
	} else {
		err = cmd.Run()
	}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		os.Exit(ee.ExitCode())
	case err != nil:
		os.Exit(127)
	}
}

// react runs cmd with its stdout read here, signalling it at each line.
func react(cmd *exec.Cmd, line string) error {
	cmd.Stdout = nil
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if sc.Text() == line {
			_ = cmd.Process.Signal(syscall.SIGUSR1)
		}
	}
	return cmd.Wait()
}
