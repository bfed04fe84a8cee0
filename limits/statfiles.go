package limits

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"sync"
)

// statFiles keeps a cgroup's counter files open and re-reads each with
// one pread(2) at offset 0, where os.ReadFile costs an open, a read and a
// close: a sampling tick reads five of them, twice (the OOM watch and the
// host probe). Reading a cgroup file from offset 0 makes kernfs generate
// its text afresh (fs/seq_file.c, seq_read_iter restarts when the offset
// is not where the last read ended), so every read is current. An open
// descriptor does not keep the cgroup from being removed; a read after
// that fails (ENODEV) and the file is dropped. Safe for concurrent use.
type statFiles struct {
	mu    sync.Mutex
	files map[string]*os.File
	buf   [4096]byte // the longest file read is a few "key value" lines
}

// read reads path into the shared buffer; the caller holds mu. A missing
// file reads as nil, nil (a kernel without it, or a cgroup being removed).
func (s *statFiles) read(path string) ([]byte, error) {
	f, ok := s.files[path]
	if !ok {
		var err error
		if f, err = os.Open(path); errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		} else if err != nil {
			return nil, err
		}
		if s.files == nil {
			s.files = map[string]*os.File{}
		}
		s.files[path] = f
	}
	n, err := f.ReadAt(s.buf[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		_ = f.Close()
		delete(s.files, path)
		return nil, err
	}
	return s.buf[:n], nil
}

// uint reads a file that holds one number into dst. Missing reads as zero.
func (s *statFiles) uint(path string, dst *uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.read(path)
	if err != nil || b == nil {
		return err
	}
	v, err := strconv.ParseUint(string(bytes.TrimSpace(b)), 10, 64)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	*dst = v
	return nil
}

// key reads the value of key from a file of "key value" lines
// (memory.events, memory.oom_control, cpu.stat) into dst. Missing reads
// as zero.
func (s *statFiles) key(path, key string, dst *uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := s.read(path)
	if err != nil || b == nil {
		return err
	}
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		k, v, ok := bytes.Cut(line, []byte{' '})
		if !ok || string(k) != key {
			continue
		}
		n, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 64)
		if err != nil {
			return fmt.Errorf("%s: %s: %w", path, key, err)
		}
		*dst = n
		return nil
	}
	return nil
}

// close closes every file kept open.
func (s *statFiles) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for p, f := range s.files {
		_ = f.Close()
		delete(s.files, p)
	}
}
