package supervisor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// mkdirAll makes dir and its missing parents (0700), and returns those it
// made, the topmost first.
func mkdirAll(dir string) ([]string, error) {
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); !errors.Is(err, fs.ErrNotExist) || d == filepath.Dir(d) {
			break
		}
		missing = append([]string{d}, missing...)
	}
	return missing, os.MkdirAll(dir, 0o700)
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
	uid, gid := *r.cfg.UID, -1
	if r.cfg.GID != nil {
		gid = *r.cfg.GID
	}
	paths := append([]string{r.runDir, r.rep.ControlFile}, r.madeDirs...)
	for _, p := range paths {
		if err := os.Lchown(p, uid, gid); err != nil {
			return fmt.Errorf("%w: give %s to the child's user: %w", ErrSetup, p, err)
		}
	}
	for _, dir := range []string{r.runDir, ck} {
		if err := reachable(dir, uid, gid); err != nil {
			return fmt.Errorf("%w: %v: set TMPDIR (or --checkpoint-dir) to a folder the child's user can reach", ErrSetup, err)
		}
	}
	return nil
}

// reachable says whether uid (of group gid) may pass through every folder
// above dir and enter dir: the search bit for it (stat(2) modes; root
// passes anywhere).
func reachable(dir string, uid, gid int) error {
	if uid == 0 {
		return nil
	}
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		mode := fi.Mode().Perm()
		pass := mode&0o001 != 0 || (ok && int(st.Uid) == uid && mode&0o100 != 0) || (ok && int(st.Gid) == gid && mode&0o010 != 0)
		if !pass {
			return fmt.Errorf("the child's user (uid %d) cannot pass through %s (%v)", uid, d, mode)
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}
