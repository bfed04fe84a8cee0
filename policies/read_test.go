package policies

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A policy file that never ends, one that never comes (a FIFO nobody
// writes to) and one nested so deep the TOML decoder would take minutes
// and gigabytes are refused at once, as *FileErrors (make chaos found
// each one hanging prism-run before the child's start).
func TestLoadFileBounded(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.toml")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.toml")
	if err := os.WriteFile(big, []byte(strings.Repeat("# comment\n", MaxFileSize/10+1)), 0o644); err != nil {
		t.Fatal(err)
	}
	deep := filepath.Join(dir, "deep.toml")
	if err := os.WriteFile(deep, []byte("x = "+strings.Repeat("{a=", 100000)+"1"+strings.Repeat("}", 100000)), 0o644); err != nil {
		t.Fatal(err)
	}
	defer func(d time.Duration) { fifoWait = d }(fifoWait)
	fifoWait = 100 * time.Millisecond
	for _, c := range []struct{ path, want string }{
		{"/dev/zero", "/dev/zero: cannot read the policy file: larger than 4 MiB: not a policy"},
		{big, big + ": cannot read the policy file: larger than 4 MiB: not a policy"},
		{fifo, fifo + ": cannot read the policy file: a FIFO that nobody writes to (waited 100ms)"},
		{deep, deep + ":1:197: arrays and inline tables nested deeper than 64 levels"},
		{dir, dir + ": cannot read the policy file: is a directory"},
	} {
		start := time.Now()
		_, err := LoadFile(c.path)
		if err == nil || err.Error() != c.want || !errors.Is(err, ErrInvalid) {
			t.Errorf("LoadFile(%s) = %v, want %q", c.path, err, c.want)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("LoadFile(%s) took %s", c.path, took)
		}
	}
	// A writer that comes late ends the open left waiting (goleak).
	if fd, err := syscall.Open(fifo, syscall.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
		_ = syscall.Close(fd)
	}
}

// A FIFO with a writer (--policy <(generate)) is read as a file is.
func TestLoadFileFromAPipe(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo.toml")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	go func() {
		if f, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
			_, _ = f.WriteString(good)
			_ = f.Close()
		}
	}()
	if p, err := LoadFile(fifo); err != nil || p.Description == nil || *p.Description != "test" {
		t.Fatalf("LoadFile(fifo) = %+v, %v", p, err)
	}
}

// Brackets in strings and comments do not nest; TOML's own deepest forms
// (a table array of inline tables holding arrays) are far from the bound.
func TestNestingCountsOnlyStructure(t *testing.T) {
	ok := strings.Join([]string{
		`a = "` + strings.Repeat("[{", 100) + `"`,
		`b = '` + strings.Repeat("[", 100) + `'`,
		`c = """` + "\n" + strings.Repeat("{", 100) + "\n" + `"""`,
		`d = '''` + strings.Repeat("[", 100) + `'''`,
		`e = "\"` + strings.Repeat("{", 100) + `"`,
		`# ` + strings.Repeat("[", 100),
		`[[x.y]]`,
		`z = [{a = [[1, 2], [3]]}]`,
	}, "\n")
	if err := nestingError("ok.toml", []byte(ok)); err != nil {
		t.Fatal(err)
	}
	deep := "\n\nv = " + strings.Repeat("[", MaxNesting) + strings.Repeat("]", MaxNesting) + "\nw = " + strings.Repeat("[", MaxNesting+1)
	err := nestingError("d.toml", []byte(deep))
	if err == nil || err.Error() != "d.toml:4:69: arrays and inline tables nested deeper than 64 levels" {
		t.Fatalf("got %v", err)
	}
}
