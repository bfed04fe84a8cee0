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
	// Attempts are the job's last attempts (at most 1000), oldest first;
	// AttemptCount counts them all.
	Attempts     []telemetry.Attempt `json:"attempts"`
	AttemptCount int                 `json:"attempt_count"`
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
		_ = f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, nil, inUse(dir)
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

// inUse is the error for a state folder another prism-run holds, naming
// it by the pid it wrote into the lock file.
func inUse(dir string) error {
	holder := "another prism-run"
	if b, err := os.ReadFile(filepath.Join(dir, lockFileName)); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		holder += " (pid " + strings.TrimSpace(string(b)) + ")"
	}
	return fmt.Errorf("%w: state folder %s is in use by %s: two runs on one state would corrupt it (give each its own --state-dir or --checkpoint-dir)", ErrSetup, dir, holder)
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

// CheckState finds before the start what taking the state folder would
// fail on, for --dry-run and the start alike: --state-dir without
// --checkpoint-dir (the default checkpoint folder is new for each run, so
// the state would point into folders no later run looks after), the
// checkpoint folder itself as the state folder (the child writes there),
// a folder another prism-run holds, a state that cannot be read. It holds
// nothing: the run takes the lock when it starts.
func CheckState(ckDir, stateDir string) error {
	if stateDir != "" && ckDir == "" {
		return fmt.Errorf("%w: --state-dir needs --checkpoint-dir: the default checkpoint folder is new for each run, so the state would point into folders no later run looks after", ErrConfig)
	}
	dir := stateDir
	if dir == "" {
		if ckDir == "" {
			return nil
		}
		dir = filepath.Join(ckDir, StateFolderName)
	}
	a, _ := filepath.Abs(dir)
	if b, _ := filepath.Abs(ckDir); a == b {
		return fmt.Errorf("%w: --state-dir %s is the checkpoint folder itself, where the child writes: give the state a folder of its own (the default is %s)", ErrConfig, stateDir, filepath.Join(ckDir, StateFolderName))
	}
	f, err := os.Open(filepath.Join(dir, lockFileName))
	if err != nil {
		return nil // no state yet (or the run says why it cannot make one)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); errors.Is(err, unix.EWOULDBLOCK) {
		return inUse(dir)
	}
	_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
	_, err = (&stateStore{dir: dir}).read()
	return err
}

// DescribeState says, for --dry-run, what a run on these folders would
// carry on from: the state folder, its attempts and failures, the seed,
// and what --resume latest would hand over. "" when there is no state
// folder.
func DescribeState(ckDir, stateDir string) string {
	dir := stateDir
	if dir == "" {
		if ckDir == "" {
			return ""
		}
		dir = filepath.Join(ckDir, StateFolderName)
	}
	st, err := (&stateStore{dir: dir}).read()
	switch {
	case err != nil:
		return fmt.Sprintf("state %s: %v", dir, err)
	case st == nil:
		return fmt.Sprintf("state %s: none yet (a fresh job; --resume latest starts from the beginning)", dir)
	}
	l := ledger{cps: st.Checkpoints}
	latest := l.newest()
	if latest == "" {
		latest = "none (start from the beginning)"
	}
	return fmt.Sprintf("state %s: %d attempt(s), %d failure(s), %d preemption(s), seed %d; --resume latest -> %s",
		dir, max(st.AttemptCount, len(st.Attempts)), len(st.Failures), st.Preemptions, st.Seed, latest)
}
