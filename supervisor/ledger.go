package supervisor

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/prism-run/prism-run/telemetry"
)

// ledger is the job's acknowledged checkpoints, oldest first: a
// checkpoint the child acknowledged (it printed `checkpoint="PATH"`,
// which by the protocol means the checkpoint is whole). Only these are
// ever resumed from, never "the newest file in the folder" (a
// half-written .tmp, a log file).
type ledger struct {
	dir string // the checkpoint folder (absolute): retention deletes only its entries
	// own are prism-run's own paths (the state folder): never deleted,
	// nor anything that holds them.
	own []string
	cps []telemetry.Checkpoint
	// floor: checkpoints acknowledged before it belong to another
	// trajectory (this invocation started fresh, or from a --resume path)
	// and are not resumed from; zero: all are this job's.
	floor time.Time
}

// add records an acknowledgement. A path acknowledged again (a child that
// overwrites one file) moves to the newest place.
func (l *ledger) add(c telemetry.Checkpoint) {
	for i := range l.cps {
		if l.cps[i].Path == c.Path {
			l.cps = append(l.cps[:i], l.cps[i+1:]...)
			break
		}
	}
	l.cps = append(l.cps, c)
	l.trim()
}

// trim bounds the ledger at maxLedger entries: the oldest deleted or
// abandoned ones go first, then the oldest.
func (l *ledger) trim() {
	for len(l.cps) > maxLedger {
		i := slices.IndexFunc(l.cps, func(c telemetry.Checkpoint) bool { return c.Deleted || c.Abandoned })
		if i < 0 {
			i = 0
		}
		l.cps = slices.Delete(l.cps, i, i+1)
	}
}

// usable reports whether c may be handed to a child: acknowledged, not
// abandoned or deleted, and still there. (Retention counts these too,
// floor or not.)
func usable(c telemetry.Checkpoint) bool {
	if c.Abandoned || c.Deleted {
		return false
	}
	_, err := os.Stat(c.Path)
	return err == nil
}

// newest is the newest usable checkpoint ("" when none).
func (l *ledger) newest() string {
	return l.before(time.Time{})
}

// before is the newest usable checkpoint acknowledged before t (any
// time when t is zero), "" when none.
func (l *ledger) before(t time.Time) string {
	for i := len(l.cps) - 1; i >= 0; i-- {
		c := l.cps[i]
		if (t.IsZero() || c.Time.Before(t)) && !c.Time.Before(l.floor) && usable(c) {
			return c.Path
		}
	}
	return ""
}

// abandonAfter marks the checkpoints acknowledged at or after t (all, for
// the zero time) as abandoned: a rollback went back before them, or a
// rerun started over.
func (l *ledger) abandonAfter(t time.Time) {
	for i := range l.cps {
		if !l.cps[i].Time.Before(t) {
			l.cps[i].Abandoned = true
		}
	}
}

// prune deletes the acknowledged checkpoints retention no longer keeps:
// all but the newest keep usable ones, except the newest acknowledged
// before each time in protect (a rollback that may still come needs it).
// Only what the child acknowledged is deleted, and only an entry of the
// checkpoint folder itself that holds none of prism-run's own files,
// through an os.Root of that folder (a path the child names elsewhere, or
// a symlink swapped in, is not followed out of it). It returns what it
// deleted and what it will never delete (each named once).
func (l *ledger) prune(keep int, protect []time.Time) (deleted, refused []string) {
	if keep <= 0 {
		return nil, nil
	}
	kept := l.keptSet(keep, protect)
	holdsKept := func(path string) bool {
		for k := range kept {
			if within(k, path) {
				return true
			}
		}
		return false
	}
	var root *os.Root
	defer func() {
		if root != nil {
			_ = root.Close()
		}
	}()
	// First what may go; what stays is everything else, and nothing
	// that holds what stays is deleted (ck/run holding a kept, or a
	// never-deleted, ck/run/step2).
	var gone []int
	for i := range l.cps {
		c := &l.cps[i]
		if c.Deleted || c.Kept || holdsKept(c.Path) {
			continue
		}
		if _, ok := entryOf(l.dir, c.Path); !ok || l.holdsOwn(c.Path) {
			c.Kept = true // never tried again; still resumable while it is there
			refused = append(refused, c.Path)
			continue
		}
		gone = append(gone, i)
	}
	for i := range l.cps {
		if c := l.cps[i]; !c.Deleted && !slices.Contains(gone, i) {
			kept[c.Path] = true
		}
	}
	for _, i := range gone {
		c := &l.cps[i]
		if holdsKept(c.Path) {
			continue
		}
		name, _ := entryOf(l.dir, c.Path)
		if root == nil {
			var err error
			if root, err = os.OpenRoot(l.dir); err != nil {
				return deleted, refused
			}
		}
		if _, err := root.Lstat(name); errors.Is(err, fs.ErrNotExist) {
			c.Deleted = true // gone already: nothing to delete
			continue
		}
		if err := root.RemoveAll(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			continue // tried again at the next acknowledgement
		}
		c.Deleted = true
		deleted = append(deleted, c.Path)
	}
	return deleted, refused
}

// keptSet is what retention keeps by rule: the newest keep usable
// checkpoints, the newest before each time in protect, and what each of
// those is when it is a symlink (ck/latest -> ck/step-9: deleting the
// target would leave it dangling).
func (l *ledger) keptSet(keep int, protect []time.Time) map[string]bool {
	kept := map[string]bool{}
	n := 0
	for i := len(l.cps) - 1; i >= 0 && n < keep; i-- {
		if c := l.cps[i]; usable(c) {
			kept[c.Path] = true
			n++
		}
	}
	for _, t := range protect {
		if p := l.before(t); p != "" {
			kept[p] = true
		}
	}
	for p := range kept {
		if t, err := filepath.EvalSymlinks(p); err == nil && t != p {
			kept[t] = true
		}
	}
	return kept
}

// holdsOwn reports whether path is one of prism-run's own paths, in one,
// or a folder above one: never deleted.
func (l *ledger) holdsOwn(path string) bool {
	for _, own := range l.own {
		if within(own, path) || within(path, own) {
			return true
		}
	}
	return false
}

// isOwn reports whether path is one of prism-run's own paths or in one:
// never a checkpoint. (A folder above one may be: a child may announce
// its whole checkpoint folder.)
func (l *ledger) isOwn(path string) bool {
	for _, own := range l.own {
		if within(path, own) {
			return true
		}
	}
	return false
}

// within reports whether path a is b or below it.
func within(a, b string) bool {
	rel, err := filepath.Rel(b, a)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// entryOf is path's name in dir when path is an entry of dir itself (not
// dir, not deeper, not a dot name).
func entryOf(dir, path string) (string, bool) {
	rel, err := filepath.Rel(dir, filepath.Clean(path))
	if err != nil || rel == "." || strings.ContainsRune(rel, filepath.Separator) || strings.HasPrefix(rel, ".") {
		return "", false
	}
	return rel, true
}

// handable reports whether path may still be handed to a child: there,
// and not abandoned or deleted if the ledger knows it.
func (l *ledger) handable(path string) bool {
	for _, c := range l.cps {
		if c.Path == path && (c.Abandoned || c.Deleted) {
			return false
		}
	}
	_, err := os.Stat(path)
	return err == nil
}
