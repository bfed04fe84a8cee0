package supervisor

import (
	"encoding/json"
	"fmt"
	"os"
	"time"
)

// ControlLine is one line of $PRISM_CONTROL: written before every signal
// prism-run sends on purpose, so the child can tell why it was signalled
// (a SIGUSR2 means "degrade", and What says how).
type ControlLine struct {
	Seq    int       `json:"seq"`
	Action string    `json:"action"` // checkpoint | degrade | stop | kill | forward
	Signal string    `json:"signal"`
	Rule   string    `json:"rule,omitempty"`
	What   string    `json:"what,omitempty"`
	Reason string    `json:"reason,omitempty"`
	Time   time.Time `json:"time"`
}

// controlFile appends control lines. Each line goes out in one write(2) on
// an O_APPEND descriptor, so a child reading concurrently never sees half a
// line followed by another's start.
type controlFile struct {
	f   *os.File
	seq int
}

func openControl(path string) (*controlFile, error) {
	// 0600: the reasons may name paths and rules the child's user alone
	// should read.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%w: control file: %w", ErrSetup, err)
	}
	return &controlFile{f: f}, nil
}

func (c *controlFile) append(l ControlLine) error {
	c.seq++
	l.Seq = c.seq
	b, err := json.Marshal(l)
	if err != nil {
		return err
	}
	_, err = c.f.Write(append(b, '\n'))
	return err
}

func (c *controlFile) close() error { return c.f.Close() }
