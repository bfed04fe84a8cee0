package markers

import (
	"bytes"
	"testing"

	"github.com/prism-run/prism-run/policies"
)

func FuzzParse(f *testing.F) {
	for _, s := range []string{`PRISM iter=1 loss=0.5`, `PRISM {"a":{"b":1}}`, `PRISM x="a\"b"`, `PRISM`, "PRISM \xff=1", `PRISM {"a":[1]}`} {
		f.Add([]byte(s))
	}
	p, _ := NewParser(DefaultPrefix)
	f.Fuzz(func(t *testing.T, line []byte) {
		obs, err := p.Parse(nil, line, policies.SourceStdout, t0)
		if err != nil && len(obs) != 0 {
			t.Fatalf("malformed line kept %d observations", len(obs))
		}
		for _, o := range obs {
			if o.Name == "" {
				t.Fatalf("observation without a name from %q", line)
			}
		}
	})
}

// FuzzStream: whatever the bytes and however they are chunked, output
// without Hide is the input, and with Hide it is the input less whole
// records (a record ends at a newline or a carriage return).
func FuzzStream(f *testing.F) {
	f.Add([]byte("a\nPRISM x=1\nb"), uint8(3))
	f.Add([]byte("PRISM {\"a\":1}\r\nPRI\n\x00"), uint8(1))
	p, _ := NewParser(DefaultPrefix)
	f.Fuzz(func(t *testing.T, in []byte, chunk uint8) {
		n := int(chunk%64) + 1
		for _, hide := range []bool{false, true} {
			var out bytes.Buffer
			s := NewStream(&out, p, policies.SourceStdout, fixedClock{t0}, hide)
			for i := 0; i < len(in); i += n {
				_, _ = s.Write(in[i:min(i+n, len(in))])
			}
			_ = s.Close()
			if !hide && !bytes.Equal(out.Bytes(), in) {
				t.Fatalf("pass-through changed the bytes")
			}
			if hide {
				// Every output record is an input record, in order.
				lines := splitRecords(in)
				rest := out.Bytes()
				for _, l := range lines {
					rest = bytes.TrimPrefix(rest, l)
				}
				if len(rest) != 0 {
					t.Fatalf("hidden output has %q that is no input line", rest)
				}
			}
		}
	})
}

// splitRecords splits b after every newline and carriage return.
func splitRecords(b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		i := bytes.IndexAny(b, "\r\n")
		if i < 0 {
			return append(out, b)
		}
		out, b = append(out, b[:i+1]), b[i+1:]
	}
	return out
}
