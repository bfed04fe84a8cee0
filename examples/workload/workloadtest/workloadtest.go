// Package workloadtest runs an example program in-process the way
// prism-run would: with the PRISM_* environment set, its output read line
// by line, and signals sent to it when chosen lines appear. Tests only.
package workloadtest

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Main is an example's entry point.
type Main func(args []string, stdout, stderr io.Writer) int

// Env prepares a checkpoint folder and a control file for one run and
// sets the protocol's environment (restored when the test ends).
type Env struct {
	Dir     string
	Control string
}

// Setup sets PRISM_SEED, PRISM_CHECKPOINT_DIR and PRISM_CONTROL; resume,
// if not empty, becomes PRISM_RESUME.
func Setup(t *testing.T, seed, resume string) *Env {
	t.Helper()
	e := &Env{Dir: t.TempDir()}
	e.Control = filepath.Join(e.Dir, "control")
	if err := os.WriteFile(e.Control, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PRISM_SEED", seed)
	t.Setenv("PRISM_CHECKPOINT_DIR", e.Dir)
	t.Setenv("PRISM_CONTROL", e.Control)
	t.Setenv("PRISM_RESUME", resume)
	return e
}

// Control appends a control line, as prism-run does before a signal.
func (e *Env) AppendControl(t *testing.T, action, what string) {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"action": action, "what": what, "rule": "test"})
	f, err := os.OpenFile(e.Control, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(append(b, '\n')); err != nil {
		t.Fatal(err)
	}
}

// Run runs main with args and returns its exit code and output lines.
// onLine is called for each line as it appears; a signal it returns is
// sent to this process (where the example's Protocol receives it).
func Run(t *testing.T, main Main, args []string, onLine func(line string) syscall.Signal) (int, []string) {
	t.Helper()
	// Hold the protocol signals here too for the whole run: a signal that
	// lands after the example stopped listening must not kill the test.
	hold := make(chan os.Signal, 8)
	signal.Notify(hold, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGTERM)
	defer signal.Stop(hold)
	r, w := io.Pipe()
	code := make(chan int, 1)
	go func() {
		c := main(args, w, io.Discard)
		_ = w.Close()
		code <- c
	}()
	var lines []string
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		lines = append(lines, line)
		if onLine == nil {
			continue
		}
		if sig := onLine(line); sig != 0 {
			if err := syscall.Kill(os.Getpid(), sig); err != nil {
				t.Fatal(err)
			}
			// The example is blocked writing its next line until this
			// returns (the pipe is synchronous). Wait until os/signal has
			// dispatched the signal (to our channel, and so to the
			// example's), then give the example's signal goroutine time to
			// raise its flag: the example sees the signal at its next step,
			// however loaded the machine.
			select {
			case <-hold:
			case <-time.After(10 * time.Second):
				t.Fatal("signal not delivered")
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	select {
	case c := <-code:
		return c, lines
	case <-time.After(time.Minute):
		t.Fatal("example did not end")
		return 0, nil
	}
}

// Checkpoint returns the path of the last `checkpoint` marker in lines.
func Checkpoint(lines []string) string {
	path := ""
	for _, l := range lines {
		if rest, ok := strings.CutPrefix(l, `PRISM checkpoint="`); ok {
			path = strings.TrimSuffix(rest, `"`)
		}
	}
	return path
}
