// Package markers turns the child's output lines into Observations: the
// marker protocol of DESIGN.md (`PRISM k=v ...` and `PRISM {json}`), found
// while the bytes pass through untouched.
package markers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/prism-run/prism-run/policies"
)

// DefaultPrefix starts a marker line unless configured otherwise.
const DefaultPrefix = "PRISM"

// ErrMalformed is wrapped by every error about a marker line that cannot be
// read. Such a line is counted and reported, never fatal.
var ErrMalformed = errors.New("markers: malformed marker")

// MaxKeyLen bounds a metric's name (a JSON marker's dotted name included):
// a longer one makes the line malformed, so a child cannot make
// prism-run keep ever-longer names.
const MaxKeyLen = 128

// Parser reads marker lines, and matches the other lines against the
// policy's patterns. The zero value is not usable: use NewParser. A Parser
// is safe for concurrent use.
type Parser struct {
	prefix   []byte
	patterns []*regexp.Regexp
}

// Names interns observation names, so that a stream of markers does not
// allocate a new string per key per line. Not safe for concurrent use:
// one per goroutine.
type Names map[string]string

func (n Names) intern(b []byte) string {
	if n == nil {
		return string(b)
	}
	if s, ok := n[string(b)]; ok { // no allocation: the compiler's map-key special case
		return s
	}
	if len(n) >= 4096 { // a child printing ever-new keys must not grow this forever
		return string(b)
	}
	s := string(b)
	n[s] = s
	return s
}

// NewParser returns a parser for lines that start with prefix followed by a
// space or a tab. Each pattern's named groups turn the lines it matches
// into observations (for programs that cannot print markers).
func NewParser(prefix string, patterns ...*regexp.Regexp) (*Parser, error) {
	if prefix == "" {
		return nil, fmt.Errorf("%w: empty marker prefix", ErrMalformed)
	}
	if bytes.ContainsAny([]byte(prefix), " \t\r\n") {
		return nil, fmt.Errorf("%w: marker prefix %q contains white space", ErrMalformed, prefix)
	}
	return &Parser{prefix: []byte(prefix), patterns: patterns}, nil
}

// HasPatterns reports whether any line, not only marker lines, may yield
// observations.
func (p *Parser) HasPatterns() bool { return len(p.patterns) > 0 }

// Match appends the observations the patterns find in a line that is not a
// marker: every named group that took part in a match. A group's text that
// is a number is a metric, otherwise text.
func (p *Parser) Match(dst []policies.Observation, line []byte, src policies.Source, at time.Time, names Names) []policies.Observation {
	for _, re := range p.patterns {
		m := re.FindSubmatchIndex(line)
		if m == nil {
			continue
		}
		for g, name := range re.SubexpNames() {
			if name == "" || m[2*g] < 0 {
				continue
			}
			o := obs(names.intern([]byte(name)), src, at)
			setBare(&o, bytes.TrimSpace(line[m[2*g]:m[2*g+1]]))
			dst = append(dst, o)
		}
	}
	return dst
}

// Prefix returns the marker prefix.
func (p *Parser) Prefix() string { return string(p.prefix) }

// IsMarker reports whether line (without its newline) is a marker line:
// the prefix, then a blank. The prefix then a ':' ("PRISM: iter=3") is
// taken for a marker too, a malformed one: it is what a marker written
// by hand often looks like, and it must be counted, not ignored.
func (p *Parser) IsMarker(line []byte) bool {
	line = line[leadLen(line):]
	return len(line) > len(p.prefix) && bytes.HasPrefix(line, p.prefix) && afterPrefix(line[len(p.prefix)])
}

// MaxLead bounds what may come before the prefix of a marker line.
const MaxLead = 64

// leadState is where leadStep is in a marker line's lead: blanks and ANSI
// CSI sequences (ECMA-48: ESC '[', parameter and intermediate bytes
// 0x20-0x3F, a final byte 0x40-0x7E), as a logger that indents or
// colours its lines writes them ("\x1b[32mPRISM iter=3\x1b[0m").
type leadState uint8

const (
	leadPlain leadState = iota // between sequences: the lead may end here
	leadEsc                    // after ESC
	leadCSI                    // inside ESC '[' ...
)

// leadStep takes one more byte of a lead; false: c cannot continue it.
func leadStep(st leadState, c byte) (leadState, bool) {
	switch st {
	case leadPlain:
		if isBlank(c) {
			return leadPlain, true
		}
		return leadEsc, c == 0x1b
	case leadEsc:
		return leadCSI, c == '['
	default:
		if c >= 0x20 && c <= 0x3f {
			return leadCSI, true
		}
		return leadPlain, c >= 0x40 && c <= 0x7e
	}
}

// leadLen is the length of line's lead: the longest run, at most
// MaxLead bytes, that leadStep takes and that ends between sequences.
func leadLen(line []byte) int {
	n, st := 0, leadPlain
	for i := 0; i < len(line) && i < MaxLead; i++ {
		next, ok := leadStep(st, line[i])
		if !ok {
			break
		}
		if st = next; st == leadPlain {
			n = i + 1
		}
	}
	return n
}

// withoutCSI returns b less its ANSI CSI sequences (b itself when it has
// none: no copy on the common path).
func withoutCSI(b []byte) []byte {
	if bytes.IndexByte(b, 0x1b) < 0 {
		return b
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] == 0x1b && i+1 < len(b) && b[i+1] == '[' {
			j := i + 2
			for j < len(b) && b[j] >= 0x20 && b[j] <= 0x3f {
				j++
			}
			if j < len(b) && b[j] >= 0x40 && b[j] <= 0x7e {
				i = j
				continue
			}
		}
		out = append(out, b[i])
	}
	return out
}

// afterPrefix: the bytes that make a line that starts with the prefix a
// marker (a malformed one for ':').
func afterPrefix(c byte) bool { return isBlank(c) || c == ':' }

func isBlank(c byte) bool { return c == ' ' || c == '\t' }

// Parse appends the observations of one marker line (without its newline)
// to dst. A line that is not a marker returns dst unchanged and no error.
// A malformed marker returns dst unchanged and an error wrapping
// ErrMalformed: a line is read whole or not at all, so a half-understood
// line never feeds a rule.
func (p *Parser) Parse(dst []policies.Observation, line []byte, src policies.Source, at time.Time) ([]policies.Observation, error) {
	return p.ParseWith(dst, line, src, at, nil)
}

// ParseWith is Parse with names interned in names.
func (p *Parser) ParseWith(dst []policies.Observation, line []byte, src policies.Source, at time.Time, names Names) ([]policies.Observation, error) {
	if !p.IsMarker(line) {
		return dst, nil
	}
	line = withoutCSI(line[leadLen(line):])
	if line[len(p.prefix)] == ':' {
		return dst, fmt.Errorf("%w: %q is not a marker: write the prefix, a space, then key=value (%s iter=3)", ErrMalformed, line[:len(p.prefix)+1], p.prefix)
	}
	body := trimBlanks(line[len(p.prefix):])
	if len(body) == 0 {
		return dst, fmt.Errorf("%w: nothing after the prefix", ErrMalformed)
	}
	n := len(dst)
	var err error
	if body[0] == '{' {
		dst, err = parseJSON(dst, body, src, at)
	} else {
		dst, err = parseKV(dst, body, src, at, names)
	}
	if err != nil {
		return dst[:n], err
	}
	return dst, nil
}

func obs(name string, src policies.Source, at time.Time) policies.Observation {
	return policies.Observation{Time: at, Source: src, Name: name}
}

// parseKV reads `key=value key2="quoted value" ...`. A bare value that is a
// number (NaN and ±Inf included) or a boolean is a metric; any other bare
// value, and every quoted one, is text.
func parseKV(dst []policies.Observation, b []byte, src policies.Source, at time.Time, names Names) ([]policies.Observation, error) {
	for i := 0; i < len(b); {
		if isBlank(b[i]) {
			i++
			continue
		}
		start := i
		for i < len(b) && isKeyByte(b[i]) {
			i++
		}
		if i == start || i >= len(b) || b[i] != '=' {
			return dst, fmt.Errorf("%w: expected key=value at byte %d", ErrMalformed, start)
		}
		if err := keyHead(b[start:i]); err != nil {
			return dst, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		o := obs(names.intern(b[start:i]), src, at)
		i++ // '='
		if i < len(b) && b[i] == '"' {
			end, text, err := readQuoted(b, i)
			if err != nil {
				return dst, fmt.Errorf("%w: key %s: %v", ErrMalformed, o.Name, err)
			}
			o.Text, i = text, end
			if end < len(b) && !isBlank(b[end]) {
				return dst, fmt.Errorf("%w: key %s: text after the closing quote", ErrMalformed, o.Name)
			}
		} else {
			vs := i
			for i < len(b) && !isBlank(b[i]) {
				i++
			}
			if i == vs {
				return dst, fmt.Errorf("%w: key %s has no value", ErrMalformed, o.Name)
			}
			if b[vs] == '=' {
				return dst, fmt.Errorf("%w: key %s: the value starts with '=' (write %s=VALUE; quote a text that starts with it)", ErrMalformed, o.Name, o.Name)
			}
			setBare(&o, b[vs:i])
		}
		dst = append(dst, o)
	}
	return dst, nil
}

func setBare(o *policies.Observation, v []byte) {
	switch string(v) {
	case "true":
		o.Value = 1
		return
	case "false":
		o.Value = 0
		return
	}
	if f, err := strconv.ParseFloat(string(v), 64); err == nil || errors.Is(err, strconv.ErrRange) {
		o.Value = f // ErrRange still gives ±Inf or 0, the closest value
		return
	}
	o.Text = string(v)
}

// readQuoted reads a Go-style double-quoted string starting at b[i] and
// returns the index after the closing quote.
func readQuoted(b []byte, i int) (int, string, error) {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			s, err := strconv.Unquote(string(b[i : j+1]))
			if err != nil {
				return 0, "", fmt.Errorf("bad quoted value: %v", err)
			}
			return j + 1, s, nil
		}
	}
	return 0, "", errors.New("unterminated quoted value")
}

// keyHead says why key (its bytes already key bytes) cannot be a
// marker key: its first byte, or its length (nil: it can).
func keyHead(key []byte) error {
	if !isKeyStart(key[0]) {
		return fmt.Errorf("key %q must start with a letter or '_'", key)
	}
	if len(key) > MaxKeyLen {
		return fmt.Errorf("a key longer than %d bytes", MaxKeyLen)
	}
	return nil
}

func isKeyStart(c byte) bool {
	return c == '_' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
}

func isKeyByte(c byte) bool {
	return isKeyStart(c) || ('0' <= c && c <= '9') || c == '.' || c == '-' || c == ':' || c == '/'
}

// parseJSON reads one JSON object. Numbers and booleans are metrics, strings
// are text, nested objects are flattened with dotted names; null is
// skipped; arrays make the line malformed (no rule could use them).
func parseJSON(dst []policies.Observation, b []byte, src policies.Source, at time.Time) ([]policies.Observation, error) {
	if !utf8.Valid(b) {
		return dst, fmt.Errorf("%w: JSON marker is not valid UTF-8", ErrMalformed)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return dst, fmt.Errorf("%w: JSON: %v", ErrMalformed, err)
	}
	if dec.More() {
		return dst, fmt.Errorf("%w: text after the JSON object", ErrMalformed)
	}
	return flatten(dst, "", m, src, at)
}

func flatten(dst []policies.Observation, prefix string, m map[string]any, src policies.Source, at time.Time) ([]policies.Observation, error) {
	// Sorted, so that the same line always gives observations in one order.
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if k == "" {
			return dst, fmt.Errorf("%w: empty key", ErrMalformed)
		}
		if strings.ContainsFunc(k, unicode.IsControl) {
			// NUL and friends: malformed, as in a key=value key.
			return dst, fmt.Errorf("%w: key %q has a control character", ErrMalformed, k)
		}
		name := prefix + k
		if len(name) > MaxKeyLen {
			return dst, fmt.Errorf("%w: a key longer than %d bytes", ErrMalformed, MaxKeyLen)
		}
		switch v := m[k].(type) {
		case json.Number:
			f, err := strconv.ParseFloat(v.String(), 64)
			if err != nil && !errors.Is(err, strconv.ErrRange) {
				return dst, fmt.Errorf("%w: key %s: %v", ErrMalformed, name, err)
			}
			o := obs(name, src, at)
			o.Value = f
			dst = append(dst, o)
		case bool:
			o := obs(name, src, at)
			if v {
				o.Value = 1
			}
			dst = append(dst, o)
		case string:
			o := obs(name, src, at)
			o.Text = v
			if name != policies.NameCheckpoint {
				// "NaN" and "Infinity" cannot be JSON numbers; accept them
				// as strings so a diverging loss still reaches the rules.
				if f, ok := specialFloat(v); ok {
					o.Value, o.Text = f, ""
				}
			}
			dst = append(dst, o)
		case nil:
		case map[string]any:
			var err error
			if dst, err = flatten(dst, name+".", v, src, at); err != nil {
				return dst, err
			}
		default:
			return dst, fmt.Errorf("%w: key %s: arrays are not metrics", ErrMalformed, name)
		}
	}
	return dst, nil
}

func specialFloat(s string) (float64, bool) {
	switch s {
	case "NaN", "nan":
		return math.NaN(), true
	case "Infinity", "+Infinity", "inf", "+inf", "Inf", "+Inf":
		return math.Inf(1), true
	case "-Infinity", "-inf", "-Inf":
		return math.Inf(-1), true
	}
	return 0, false
}

// trimBlanks cuts the spaces and tabs around b, and a carriage return at
// its end (bytes.TrimLeft and TrimRight with a cutset cost a marker flood
// a tenth of its parse time).
func trimBlanks(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}
