package policies

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// FuzzParse: any input is accepted or refused with a located *FileError
// on one line; nothing panics, what is accepted resolves or is refused
// with ErrInvalid, and encoded as TOML (--dry-run) it parses back to the
// same policy.
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
		merged := Merge(p)
		if _, err := Resolve(merged); err != nil && !errors.Is(err, ErrInvalid) {
			t.Fatalf("resolve: %v", err)
		}
		// What --dry-run prints (the merged policy as TOML) reads back
		// to the same policy.
		var enc, again bytes.Buffer
		if err := toml.NewEncoder(&enc).Encode(merged); err != nil {
			t.Fatalf("encode: %v", err)
		}
		back, err := Parse("encoded.toml", enc.Bytes())
		if err != nil {
			t.Fatalf("the encoded policy does not parse: %v\n%s", err, enc.String())
		}
		_ = toml.NewEncoder(&again).Encode(back)
		if again.String() != enc.String() {
			t.Fatalf("the encoded policy reads back changed:\n%s\n---\n%s", enc.String(), again.String())
		}
	})
}
