// Package workload is the control protocol seen from the child's side, as
// the example programs use it: read the PRISM_* environment, print
// markers, answer SIGUSR1 with a checkpoint (written atomically, then
// acknowledged with a `checkpoint` marker), read the control line behind a
// SIGUSR2, resume from PRISM_RESUME, and misbehave on request for tests.
//
// Signals only set flags; the work loop polls them between steps and does
// the checkpoint itself. Doing the work inside a signal handler is what
// makes checkpoints silently never finish in other tools.
package workload

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
)

// Protocol is one example program's side of the control protocol.
type Protocol struct {
	RunID         string
	Seed          uint64
	CheckpointDir string
	Resume        string // checkpoint to resume from ("" = start fresh)
	ControlPath   string

	mu        sync.Mutex // one marker line at a time
	ctlOffset int64      // how much of the control file has been read
	out       *bufio.Writer
	// SeedFrom says where Seed came from: "PRISM_SEED", or "default"
	// when the program ran without prism-run.
	SeedFrom string
	ckpt     atomic.Bool
	degrade  atomic.Bool
	term     atomic.Bool
	sigs     chan os.Signal
	sigsDone chan struct{}
}

// FromEnv reads the protocol's environment. defaultSeed is used when
// PRISM_SEED is unset (the program ran without prism-run).
func FromEnv(out io.Writer, defaultSeed uint64) *Protocol {
	p := &Protocol{
		RunID:         os.Getenv("PRISM_RUN_ID"),
		Seed:          defaultSeed,
		SeedFrom:      "default",
		CheckpointDir: os.Getenv("PRISM_CHECKPOINT_DIR"),
		Resume:        os.Getenv("PRISM_RESUME"),
		ControlPath:   os.Getenv("PRISM_CONTROL"),
		out:           bufio.NewWriter(out),
	}
	if s, err := strconv.ParseUint(os.Getenv("PRISM_SEED"), 10, 64); err == nil {
		p.Seed, p.SeedFrom = s, "PRISM_SEED"
	}
	if p.CheckpointDir == "" {
		p.CheckpointDir = "."
	}
	return p
}

// Listen starts turning SIGUSR1, SIGUSR2 and (unless ignoreTerm) SIGTERM
// into flags. Call Stop when done.
func (p *Protocol) Listen(ignoreTerm bool) {
	p.sigs = make(chan os.Signal, 4)
	p.sigsDone = make(chan struct{})
	signal.Notify(p.sigs, syscall.SIGUSR1, syscall.SIGUSR2)
	if ignoreTerm {
		signal.Ignore(syscall.SIGTERM)
	} else {
		signal.Notify(p.sigs, syscall.SIGTERM)
	}
	go func() {
		defer close(p.sigsDone)
		for s := range p.sigs {
			switch s {
			case syscall.SIGUSR1:
				p.ckpt.Store(true)
			case syscall.SIGUSR2:
				p.degrade.Store(true)
			case syscall.SIGTERM:
				p.term.Store(true)
			}
		}
	}()
}

// Stop ends Listen and flushes the output.
func (p *Protocol) Stop() {
	if p.sigs != nil {
		signal.Stop(p.sigs)
		close(p.sigs)
		<-p.sigsDone
		p.sigs = nil
	}
	p.Flush()
}

// CheckpointRequested reports (once) whether a SIGUSR1 arrived.
func (p *Protocol) CheckpointRequested() bool { return p.ckpt.Swap(false) }

// Terminated reports whether SIGTERM arrived: finish the step and exit.
func (p *Protocol) Terminated() bool { return p.term.Load() }

// DegradeRequested reports (once) whether a SIGUSR2 arrived, and what
// each degrade line added to the control file since the last call asks
// for: two requests that arrive close together are both seen, in order.
func (p *Protocol) DegradeRequested() ([]string, bool) {
	if !p.degrade.Swap(false) {
		return nil, false
	}
	lines, err := p.newControlLines()
	if err != nil {
		return nil, true
	}
	var whats []string
	for _, l := range lines {
		if l.Action == "degrade" {
			whats = append(whats, l.What)
		}
	}
	return whats, true
}

// newControlLines reads the control lines appended since the last read.
func (p *Protocol) newControlLines() ([]ControlLine, error) {
	if p.ControlPath == "" {
		return nil, errors.New("no control file (not run under prism-run)")
	}
	f, err := os.Open(p.ControlPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.Seek(p.ctlOffset, io.SeekStart); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, err
	}
	// Only whole lines: prism-run writes each in one write(2), but read
	// what is complete and leave a partial tail for next time.
	end := bytes.LastIndexByte(b, '\n') + 1
	p.ctlOffset += int64(end)
	var out []ControlLine
	for _, line := range bytes.Split(b[:end], []byte("\n")) {
		var l ControlLine
		if len(line) > 0 && json.Unmarshal(line, &l) == nil {
			out = append(out, l)
		}
	}
	return out, nil
}

// Marker prints one `PRISM k=v ...` line from alternating keys and values.
// Strings are quoted; numbers and booleans are bare.
func (p *Protocol) Marker(kv ...any) {
	var b strings.Builder
	b.WriteString("PRISM")
	for i := 0; i+1 < len(kv); i += 2 {
		fmt.Fprintf(&b, " %v=", kv[i])
		switch v := kv[i+1].(type) {
		case string:
			b.WriteString(strconv.Quote(v))
		case float64:
			b.WriteString(strconv.FormatFloat(v, 'g', 6, 64))
		default:
			fmt.Fprint(&b, v)
		}
	}
	b.WriteByte('\n')
	p.mu.Lock()
	defer p.mu.Unlock()
	_, _ = p.out.WriteString(b.String())
	// Markers are flushed at once: prism-run acts on them.
	_ = p.out.Flush()
}

// Printf prints a plain line (buffered; flushed by markers and Flush).
func (p *Protocol) Printf(format string, a ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.out, format, a...)
}

// Flush writes buffered output.
func (p *Protocol) Flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	_ = p.out.Flush()
}

// SaveCheckpoint writes state as JSON into the checkpoint folder under
// name, atomically (temporary file, fsync, rename), and acknowledges it
// with a `checkpoint` marker. It returns the path.
func (p *Protocol) SaveCheckpoint(name string, state any) (string, error) {
	b, err := json.Marshal(state)
	if err != nil {
		return "", err
	}
	path, err := filepath.Abs(filepath.Join(p.CheckpointDir, name))
	if err != nil {
		return "", err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+name+".*")
	if err != nil {
		return "", err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return "", err
	}
	p.Marker("checkpoint", path)
	return path, nil
}

// LoadResume reads the checkpoint named by PRISM_RESUME into state. It
// reports false when there is none to resume from.
func (p *Protocol) LoadResume(state any) (bool, error) {
	if p.Resume == "" {
		return false, nil
	}
	b, err := os.ReadFile(p.Resume)
	if err != nil {
		return false, fmt.Errorf("resume: %w", err)
	}
	if err := json.Unmarshal(b, state); err != nil {
		return false, fmt.Errorf("resume %s: %w", p.Resume, err)
	}
	return true, nil
}

// ControlLine is the part of a $PRISM_CONTROL line a child acts on.
type ControlLine struct {
	Action string `json:"action"`
	Rule   string `json:"rule"`
	What   string `json:"what"`
	Reason string `json:"reason"`
}
