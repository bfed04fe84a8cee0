// Package telemetry holds prism-run's outputs: the run report and its
// schema, the HTML report, Prometheus metrics, the violations log, the
// recording for replay, alert webhooks and the live status line. Its
// writers never block the supervisor's loop.
package telemetry

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// WriteJSONAtomic writes v as indented JSON to path atomically
// (writeAtomic).
func WriteJSONAtomic(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("telemetry: encode %s: %w", path, err)
	}
	return writeAtomic(path, append(b, '\n'))
}

// writeAtomic writes b to path so that a reader sees either the old file
// or the whole new one, never a part: a temporary file in the same
// folder, fsync, rename(2) over path (atomic within one file system),
// then fsync of the folder so the rename survives a crash. The file is
// 0644 (CreateTemp makes 0600; a report is meant to be read by the
// user's other tools, like any file they create).
func writeAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("telemetry: write %s: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("telemetry: write %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// CheckWritable finds out, by trying, whether a file can be written
// atomically at path: a temporary file is made in its folder and removed.
// An empty path is fine (nothing will be written).
func CheckWritable(path string) error {
	if path == "" {
		return nil
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return fmt.Errorf("%s is a folder", path)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.check")
	if err != nil {
		return fmt.Errorf("cannot write there: %w", err)
	}
	_ = f.Close()
	return os.Remove(f.Name())
}
