package supervisor

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/prism-run/prism-run/telemetry"
)

// StateFolderName is the default state folder inside the checkpoint
// folder: a dot name, so that it is never taken for a checkpoint and
// retention never touches it.
const StateFolderName = ".prism-run"

const (
	stateFileName = "state.json"
	lockFileName  = "lock"
	stateVersion  = 1
)

// State is what one prism-run leaves for the next on the same state
// folder (a Slurm requeue, a shell loop after exit 75): the acknowledged
// checkpoints, the seed, every attempt so far and the failure budget
// used. It is JSON, written atomically (temp file, fsync, rename, fsync
// of the folder: telemetry.WriteJSONAtomic) after every change, so a
// prism-run SIGKILLed at any point leaves the previous or the next
// version, whole.
type State struct {
	Version     int                    `json:"version"`
	Command     []string               `json:"command"`
	Seed        uint64                 `json:"seed"`
	Checkpoints []telemetry.Checkpoint `json:"checkpoints"`
	Attempts    []telemetry.Attempt    `json:"attempts"`
	// Failures are the times of the failures that used the budget
	// (max_restarts, max_restarts_per_hour), oldest first.
	Failures []time.Time `json:"failures"`
	// Preemptions counts the ends that did not use the budget.
	Preemptions int       `json:"preemptions"`
	Updated     time.Time `json:"updated"`
}

// stateStore is a state folder held by this prism-run: an exclusive
// flock(2) on its lock file for as long as the run lasts. The lock goes
// with the open file description: the kernel drops it when prism-run
// ends, however it ends, so a SIGKILLed prism-run never leaves a stale
// lock behind. The descriptor is close-on-exec (os.OpenFile), so no
// child inherits it.
type stateStore struct {
	dir  string
	lock *os.File
}

// openState takes the state folder dir (made when missing) and reads its
// state (nil when there is none yet). A folder another prism-run holds
// is refused (ErrSetup, 125): two runs writing one state would lose
// checkpoints and budget.
func openState(dir string) (*stateStore, *State, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("%w: state folder: %w", ErrSetup, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, lockFileName), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: state folder: %w", ErrSetup, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		holder := "another prism-run"
		if b, rerr := os.ReadFile(f.Name()); rerr == nil && len(strings.TrimSpace(string(b))) > 0 {
			holder += " (pid " + strings.TrimSpace(string(b)) + ")"
		}
		_ = f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, nil, fmt.Errorf("%w: state folder %s is in use by %s: two runs on one state would corrupt it (give each its own --state-dir or --checkpoint-dir)", ErrSetup, dir, holder)
		}
		return nil, nil, fmt.Errorf("%w: lock the state folder %s: %w", ErrSetup, dir, err)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	s := &stateStore{dir: dir, lock: f}
	st, err := s.read()
	if err != nil {
		s.close()
		return nil, nil, err
	}
	return s, st, nil
}

func (s *stateStore) path() string { return filepath.Join(s.dir, stateFileName) }

func (s *stateStore) read() (*State, error) {
	b, err := os.ReadFile(s.path())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: state: %w", ErrSetup, err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%w: state %s cannot be read (%v): move it away to start afresh", ErrSetup, s.path(), err)
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("%w: state %s is version %d; this prism-run reads version %d", ErrSetup, s.path(), st.Version, stateVersion)
	}
	return &st, nil
}

// write replaces the state, atomically.
func (s *stateStore) write(st *State) error {
	st.Version = stateVersion
	return telemetry.WriteJSONAtomic(s.path(), st)
}

// close lets the next prism-run have the folder.
func (s *stateStore) close() {
	if s != nil && s.lock != nil {
		_ = s.lock.Truncate(0)
		_ = s.lock.Close()
		s.lock = nil
	}
}
