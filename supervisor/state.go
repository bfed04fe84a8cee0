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
//
// The folder usually sits in the checkpoint folder, which the child may
// write (and, with --user, owns): it could rename the state folder away
// and put a symlink or a folder of its own there. So the folder is opened
// once, without following a symlink, and must belong to prism-run's user;
// every file in it is then reached through an os.Root of that very
// folder, which follows no symlink out of it.
type stateStore struct {
	dir  string   // as named, for messages
	root *os.Root // the folder itself
	lock *os.File
}

// openState takes the state folder dir (made when missing) and reads its
// state (nil when there is none yet). A folder another prism-run holds
// is refused (ErrSetup, 125): two runs writing one state would lose
// checkpoints and budget; so is one that is not prism-run's user's.
func openState(dir string) (*stateStore, *State, error) {
	root, err := openStateRoot(dir, true)
	if err != nil {
		return nil, nil, err
	}
	f, err := root.OpenFile(lockFileName, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		_ = root.Close()
		return nil, nil, fmt.Errorf("%w: state folder %s: its lock: %v", ErrSetup, dir, plainErr(err))
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		_ = f.Close()
		_ = root.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, nil, inUse(dir)
		}
		return nil, nil, fmt.Errorf("%w: lock the state folder %s: %w", ErrSetup, dir, err)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	s := &stateStore{dir: dir, root: root, lock: f}
	st, err := s.read()
	if err != nil {
		s.close()
		return nil, nil, err
	}
	return s, st, nil
}

// openStateRoot opens the state folder dir without following a symlink
// at dir itself (O_NOFOLLOW), checks it is a folder of prism-run's
// user, and returns an os.Root of that open folder (through
// /proc/self/fd, so a rename after the check changes nothing). With make,
// a missing folder is made.
func openStateRoot(dir string, make bool) (*os.Root, error) {
	if make {
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return nil, fmt.Errorf("%w: state folder: %w", ErrSetup, err)
		}
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("%w: state folder: %w", ErrSetup, err)
		}
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if fi, lerr := os.Lstat(dir); lerr == nil && fi.Mode()&fs.ModeSymlink != 0 {
			return nil, fmt.Errorf("%w: state folder %s is a symlink: refused (the child can write the folder it is in, and could point it anywhere; name the real folder with --state-dir)", ErrSetup, dir)
		}
		return nil, fmt.Errorf("%w: state folder %s: %w", ErrSetup, dir, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("%w: state folder %s: %w", ErrSetup, dir, err)
	}
	if int(st.Uid) != os.Geteuid() {
		return nil, fmt.Errorf("%w: state folder %s belongs to uid %d, not to prism-run's user (uid %d): it was not made by prism-run (a child may have put it there); move it away", ErrSetup, dir, st.Uid, os.Geteuid())
	}
	root, err := os.OpenRoot("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		return nil, fmt.Errorf("%w: state folder %s: %w", ErrSetup, dir, err)
	}
	return root, nil
}

func (s *stateStore) path() string { return filepath.Join(s.dir, stateFileName) }

func (s *stateStore) read() (*State, error) {
	b, err := s.root.ReadFile(stateFileName)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: state %s: %v", ErrSetup, s.path(), plainErr(err))
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

// write replaces the state atomically, inside the folder's root: a
// temporary file written and fsync'd, renamed over state.json, then the
// folder fsync'd, so a crash at any point leaves the old state or the
// new one, whole (rename(2) is atomic within a file system).
func (s *stateStore) write(st *State) error {
	st.Version = stateVersion
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := "." + stateFileName + "." + strconv.Itoa(os.Getpid()) + ".tmp"
	f, err := s.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("state %s: %v", s.path(), plainErr(err))
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = s.root.Rename(tmp, stateFileName)
	}
	if err != nil {
		_ = s.root.Remove(tmp)
		return fmt.Errorf("state %s: %v", s.path(), plainErr(err))
	}
	if d, err := s.root.Open("."); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// close lets the next prism-run have the folder.
func (s *stateStore) close() {
	if s == nil {
		return
	}
	if s.lock != nil {
		_ = s.lock.Truncate(0)
		_ = s.lock.Close()
		s.lock = nil
	}
	if s.root != nil {
		_ = s.root.Close()
		s.root = nil
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
	dir := ResolveStateDir(ckDir, stateDir)
	if dir == "" {
		return nil
	}
	a, _ := filepath.Abs(dir)
	b, _ := filepath.Abs(ckDir)
	if real, err := filepath.EvalSymlinks(b); err == nil {
		b = real
	}
	if a == b {
		return fmt.Errorf("%w: --state-dir %s is the checkpoint folder itself, where the child writes: give the state a folder of its own (the default is %s)", ErrConfig, stateDir, filepath.Join(ckDir, StateFolderName))
	}
	if _, err := os.Lstat(dir); err != nil {
		return nil // no state yet (or the checkpoint folder's own check says why)
	}
	root, err := openStateRoot(dir, false)
	if err != nil {
		return err
	}
	defer root.Close()
	f, err := root.OpenFile(lockFileName, os.O_RDWR, 0)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("%w: state folder %s: its lock: %v", ErrSetup, dir, plainErr(err))
	default:
		defer f.Close()
		// A shared lock, at once released: it fails only while a run
		// holds its exclusive one.
		if err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); errors.Is(err, unix.EWOULDBLOCK) {
			return inUse(dir)
		}
		_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
	}
	_, err = (&stateStore{dir: dir, root: root}).read()
	return err
}

// DescribeState says, for --dry-run, what a run on these folders would
// carry on from: the state folder, its attempts and failures, the seed,
// and what --resume latest would hand over. "" when there is no state
// folder.
func DescribeState(ckDir, stateDir string) string {
	dir := ResolveStateDir(ckDir, stateDir)
	if dir == "" {
		return ""
	}
	var st *State
	root, err := openStateRoot(dir, false)
	if err == nil {
		st, err = (&stateStore{dir: dir, root: root}).read()
		_ = root.Close()
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Sprintf("state %s: none yet (a fresh job; --resume latest starts from the beginning)", dir)
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

// plainErr is err without the path an os.Root puts in it (which is
// /proc/self/fd/N/...: the caller names the file).
func plainErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// ResolveStateDir is the state folder for a checkpoint folder and a
// --state-dir: the one named, resolved once through the symlinks its
// user chose (a scratch path that is a link), or StateFolderName in the
// checkpoint folder, which is never resolved (the child could have
// swapped it); "" for none.
func ResolveStateDir(ckDir, stateDir string) string {
	if stateDir != "" {
		if real, err := filepath.EvalSymlinks(stateDir); err == nil {
			return real
		}
		return stateDir
	}
	if ckDir == "" {
		return ""
	}
	return filepath.Join(ckDir, StateFolderName)
}
