package telemetry

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteJSONAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "run.json")
	for _, v := range []map[string]int{{"exit_code": 1}, {"exit_code": 75}} {
		if err := WriteJSONAtomic(path, v); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]int
		if err := json.Unmarshal(b, &got); err != nil || got["exit_code"] != v["exit_code"] {
			t.Fatalf("read back %s (%v), want %v", b, err, v)
		}
	}
	// No temporary file is left behind.
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("folder holds %d entries, want only run.json", len(entries))
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", fi.Mode().Perm())
	}
}

func TestWriteJSONAtomicErrors(t *testing.T) {
	if err := WriteJSONAtomic(filepath.Join(t.TempDir(), "missing", "run.json"), 1); err == nil {
		t.Error("writing into a missing folder succeeded")
	}
	if err := WriteJSONAtomic(filepath.Join(t.TempDir(), "x.json"), func() {}); err == nil {
		t.Error("encoding a func succeeded")
	}
}
