package supervisor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"

	"golang.org/x/sys/unix"
)

// mkdirAll makes dir (absolute) and its missing parents (0700), and
// returns those it made, the topmost first.
func mkdirAll(dir string) ([]string, error) {
	at, _, _ := nearestExisting(dir)
	var missing []string
	for d := dir; d != at && d != filepath.Dir(d); d = filepath.Dir(d) {
		missing = append([]string{d}, missing...)
	}
	return missing, os.MkdirAll(dir, 0o700)
}

// nearestExisting is dir (absolute), or the nearest folder above it, that
// exists, with its stat(2); ENOTDIR (a file on the way: /etc/passwd/ck)
// counts as missing, so the file itself is found one step up. err: the
// stat of the path returned failed otherwise.
func nearestExisting(dir string) (string, fs.FileInfo, error) {
	at := dir
	fi, err := os.Stat(at)
	for (errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)) && at != filepath.Dir(at) {
		at = filepath.Dir(at)
		fi, err = os.Stat(at)
	}
	return at, fi, err
}

// giveFolders hands what the child must use to the child's user when it
// runs as another one (--user): the run folder (to enter it), the
// control file (to read it), and every folder prism-run made for the
// checkpoints (to write them), parents included. A checkpoint folder the
// caller named and that already existed is left as it is: the caller
// chose it. A folder on the way that the child's user could not pass
// through (a $TMPDIR of root's, 0700) is refused here (125), not found
// when the first checkpoint fails.
func (r *run) giveFolders(ck string) error {
	if r.cfg.UID == nil {
		return nil
	}
	who := ids{uid: *r.cfg.UID, gid: -1, groups: r.cfg.Groups}
	if r.cfg.GID != nil {
		who.gid = *r.cfg.GID
	}
	uid, gid := who.uid, who.gid
	paths := append([]string{r.runDir, r.rep.ControlFile}, r.madeDirs...)
	for _, p := range paths {
		if err := os.Lchown(p, uid, gid); err != nil {
			return fmt.Errorf("%w: give %s to the child's user: %w", ErrSetup, p, err)
		}
	}
	for _, dir := range []string{r.runDir, ck} {
		if err := reachable(dir, who); err != nil {
			return fmt.Errorf("%w: %v: set TMPDIR (or --checkpoint-dir) to a folder the child's user can reach", ErrSetup, err)
		}
	}
	return nil
}

// reachable says whether who may pass through every folder above dir and
// enter dir: the search bit for it (ids.may).
func reachable(dir string, who ids) error {
	for d := dir; ; d = filepath.Dir(d) {
		if !who.may(d, 0o1) {
			mode := "missing"
			if fi, err := os.Stat(d); err == nil {
				mode = fi.Mode().Perm().String()
			}
			return fmt.Errorf("the child's user (uid %d) cannot pass through %s (%s)", who.uid, d, mode)
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// kernelFS names the filesystem of statfs(2) f_type t when only the
// kernel fills it ("" otherwise): a checkpoint written there fails
// (EACCES, EINVAL) or is lost, though access(2) lets root through.
func kernelFS(t int64) string {
	switch t {
	case unix.PROC_SUPER_MAGIC:
		return "proc"
	case unix.SYSFS_MAGIC:
		return "sysfs"
	case unix.CGROUP_SUPER_MAGIC:
		return "cgroup"
	case unix.CGROUP2_SUPER_MAGIC:
		return "cgroup2"
	case unix.DEBUGFS_MAGIC, unix.TRACEFS_MAGIC, unix.SECURITYFS_MAGIC, unix.BPF_FS_MAGIC:
		return "debugfs, tracefs, securityfs or bpf"
	}
	return ""
}

// CheckFolders finds before the start, and without making anything,
// what the run's folders would fail on: a checkpoint folder (ckDir, ""
// = the per-run default) that is a file, sits on a kernel filesystem or
// cannot be written; a --resume checkpoint (a file or a folder, as a
// sharded checkpoint is) that does not exist; "latest" with no
// checkpoint folder to look in; and, for a child of another user (uid,
// gid non-nil, with its supplementary groups), a folder on the way it
// could not pass through ($TMPDIR for the run folder), or a checkpoint
// folder that exists and it could not write in (prism-run leaves one the
// caller named as it is); and the state folder (CheckState). The run
// checks again as it makes them. Errors wrap ErrConfig or ErrSetup (exit
// 125).
func CheckFolders(ckDir, stateDir, resume string, uid, gid *int, groups []int) error {
	if resume == ResumeLatest && ckDir == "" {
		return fmt.Errorf("%w: --resume latest needs --checkpoint-dir: the latest checkpoint is the newest one the child acknowledged, kept in the state of a folder that outlives the run; the default checkpoint folder is new for each run", ErrConfig)
	}
	if resume != "" && resume != ResumeLatest {
		if _, err := os.Stat(resume); err != nil {
			return fmt.Errorf("%w: --resume: %w", ErrConfig, err)
		}
	}
	reach := []string{os.TempDir()}
	var existing string // the checkpoint folder, when it exists
	if ckDir != "" {
		at, err := checkCheckpointDir(ckDir)
		if err != nil {
			return fmt.Errorf("%w: --checkpoint-dir %s: %v", ErrConfig, ckDir, err)
		}
		reach = append(reach, at)
		if abs, _ := filepath.Abs(ckDir); abs == at {
			existing = at
		}
	}
	if err := CheckState(ckDir, stateDir); err != nil {
		return err
	}
	if uid == nil {
		return nil
	}
	who := ids{uid: *uid, gid: -1, groups: groups}
	if gid != nil {
		who.gid = *gid
	}
	for _, dir := range reach {
		if err := reachable(dir, who); err != nil {
			return fmt.Errorf("%w: %v: set TMPDIR (or --checkpoint-dir) to a folder the child's user can reach", ErrConfig, err)
		}
	}
	if existing != "" && !who.may(existing, 0o2) {
		return fmt.Errorf("%w: --checkpoint-dir %s: the child's user (uid %d) cannot write in it", ErrConfig, ckDir, who.uid)
	}
	return nil
}

// ids are who a child runs as: its uid, gid and supplementary groups.
type ids struct {
	uid, gid int
	groups   []int
}

// may says whether the mode bits of path (stat(2)) grant ids the access
// in bits (0o1 search, 0o2 write, 0o4 read), as the kernel checks them
// without ACLs: the owner's bits for the owner, else the group's for a
// member, else the others'; root passes.
func (u ids) may(path string, bits os.FileMode) bool {
	if u.uid == 0 {
		return true
	}
	fi, err := os.Stat(path)
	if err != nil {
		return false
	}
	mode := fi.Mode().Perm()
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case ok && int(st.Uid) == u.uid:
		return mode&(bits<<6) != 0
	case ok && (int(st.Gid) == u.gid || slices.Contains(u.groups, int(st.Gid))):
		return mode&(bits<<3) != 0
	}
	return mode&bits != 0
}

// checkCheckpointDir checks dir, or the nearest folder above it that
// exists (the run makes the rest), and returns the folder it checked.
func checkCheckpointDir(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	at, fi, err := nearestExisting(dir)
	switch {
	case err != nil:
		return "", err
	case !fi.IsDir():
		return "", fmt.Errorf("%s is not a folder", at)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(at, &st); err == nil {
		if name := kernelFS(int64(st.Type)); name != "" {
			return "", fmt.Errorf("%s is on the kernel's %s filesystem, where no checkpoint can be written", at, name)
		}
	}
	// access(2) with the real ids: EROFS on a read-only mount, EACCES
	// where prism-run's user may not write.
	if err := unix.Access(at, unix.W_OK|unix.X_OK); err != nil {
		return "", fmt.Errorf("cannot write in %s: %v", at, err)
	}
	return at, nil
}
