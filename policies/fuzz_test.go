package policies

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse: any input is accepted or refused with a located *FileError
// on one line; nothing panics, and what is accepted resolves.
func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	for _, name := range MissionNames() {
		src, _ := MissionSource(name)
		f.Add(src)
	}
	seeds, _ := filepath.Glob("testdata/policies/*.toml")
	for _, s := range seeds {
		b, _ := os.ReadFile(s)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		p, err := Parse("f.toml", src)
		if err != nil {
			var fe *FileError
			if !errors.As(err, &fe) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v (%T) is not a *FileError", err, err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
			return
		}
		if _, err := Resolve(Merge(p)); err != nil && !errors.Is(err, ErrInvalid) {
			t.Fatalf("resolve: %v", err)
		}
	})
}
