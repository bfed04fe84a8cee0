package markers

import (
	"bytes"
	"fmt"
	"io"
	"time"

	"github.com/prism-run/prism-run/policies"
)

// MaxMarkerLine bounds how much of one marker line is held for parsing. A
// longer line still passes through intact (there is no limit on the lines
// that pass); it is only counted as malformed. This keeps a child that
// prints a huge line after the prefix from growing prism-run's memory.
const MaxMarkerLine = 4 << 20

// Stream passes one output stream of the child through to Out byte for byte
// while finding the marker lines in it. Write it chunks as they arrive (line
// boundaries need not match chunk boundaries); Take collects what it found.
//
// Unless Hide is set, every chunk is written to Out before it is looked at,
// so markers never delay the child's output. With Hide, the first bytes of
// each line are held until they show whether it is a marker, and marker
// lines that parse are dropped; malformed ones still pass.
type Stream struct {
	out    io.Writer
	parser *Parser
	src    policies.Source
	clock  policies.Clock
	hide   bool

	state  streamState
	held   []byte    // the line start being matched, or the marker line being read
	lead   int       // atLineStart: how much of held is the lead (leadStep)
	leadSt leadState // atLineStart: where the lead is
	plain  []byte    // with patterns: the plain line being read, up to MaxMarkerLine
	long   bool      // the plain line outgrew MaxMarkerLine: not matched
	dropLF bool      // hide mode: a hidden marker ended by '\r'; a '\n' right after it goes too
	names  Names
	outBuf []byte // hide mode: what this chunk lets through, written once
	obs    []policies.Observation
	bad    []error
	// now is the time of the chunk being scanned (Write, Close): the
	// lines read together arrived together, and a clock read per marker
	// line was 6 % of a marker flood's CPU.
	now   time.Time
	nowOK bool
}

type streamState int

const (
	atLineStart  streamState = iota // held is a prefix of "PREFIX "
	inPlainLine                     // the rest of a line that is no marker
	inMarker                        // held is a marker line being read
	inLongMarker                    // a marker line past MaxMarkerLine
)

// NewStream returns a Stream writing to out; observations are stamped by
// clock and carry src.
func NewStream(out io.Writer, p *Parser, src policies.Source, clock policies.Clock, hide bool) *Stream {
	return &Stream{out: out, parser: p, src: src, clock: clock, hide: hide, names: Names{}}
}

// Write passes p through and scans it. An error is the output's: the
// caller decides what a closed output means for the child.
func (s *Stream) Write(p []byte) (int, error) {
	s.nowOK = false
	if !s.hide {
		if n, err := s.out.Write(p); err != nil {
			return n, err
		}
	}
	s.scan(p)
	return len(p), s.flush()
}

// Close ends the stream: a last line without a newline is still a line.
func (s *Stream) Close() error {
	s.nowOK = false
	switch s.state {
	case atLineStart:
		s.pass(s.held)
		s.collect(s.held)
		s.endPlain()
	case inPlainLine:
		s.endPlain()
	case inMarker:
		s.endMarker(0)
	}
	s.held, s.state, s.lead, s.leadSt = s.held[:0], atLineStart, 0, leadPlain
	return s.flush()
}

// Take returns the observations and the malformed-marker errors found
// since the last call.
func (s *Stream) Take() ([]policies.Observation, []error) {
	o, b := s.obs, s.bad
	s.obs, s.bad = nil, nil
	return o, b
}

// Reuse hands back a slice Take returned, once its observations are used:
// the next ones are appended to it rather than to a new one (a marker
// flood otherwise spends a third of its time growing and clearing
// fresh slices).
func (s *Stream) Reuse(obs []policies.Observation) {
	if s.obs == nil {
		s.obs = obs[:0]
	}
}

// stamp is the time of the chunk being scanned, read once per chunk.
func (s *Stream) stamp() time.Time {
	if !s.nowOK {
		s.now, s.nowOK = s.clock.Now(), true
	}
	return s.now
}

func (s *Stream) scan(p []byte) {
	prefix := s.parser.prefix
	for i := 0; i < len(p); {
		switch s.state {
		case atLineStart:
			c := p[i]
			if s.dropLF && c == '\n' {
				// A hidden marker ended by "\r\n": its "\n" goes with it.
				s.dropLF = false
				i++
				continue
			}
			s.dropLF = false
			if len(s.held) == s.lead && s.lead < MaxLead {
				// Before the prefix: blanks and colour codes.
				if st, ok := leadStep(s.leadSt, c); ok {
					s.held, s.lead, s.leadSt = append(s.held, c), s.lead+1, st
					i++
					continue
				}
			}
			k := len(s.held) - s.lead
			var match bool
			switch {
			case s.leadSt != leadPlain: // a sequence cut short
			case k < len(prefix):
				match = c == prefix[k]
			default:
				match = afterPrefix(c)
			}
			if !match {
				s.pass(s.held)
				s.collect(s.held)
				s.held, s.lead, s.leadSt = s.held[:0], 0, leadPlain
				s.state = inPlainLine
				continue // p[i] belongs to the plain line
			}
			s.held = append(s.held, c)
			i++
			if len(s.held)-s.lead == len(prefix)+1 {
				s.state, s.lead, s.leadSt = inMarker, 0, leadPlain
			}
		case inPlainLine, inLongMarker:
			j := recordEnd(p[i:])
			if j < 0 {
				s.pass(p[i:])
				if s.state == inPlainLine {
					s.collect(p[i:])
				}
				return
			}
			s.pass(p[i : i+j+1])
			if s.state == inLongMarker {
				s.bad = append(s.bad, fmt.Errorf("%w: marker line longer than %d bytes", ErrMalformed, MaxMarkerLine))
			} else {
				s.collect(p[i : i+j])
				s.endPlain()
			}
			i += j + 1
			s.state = atLineStart
		case inMarker:
			j := recordEnd(p[i:])
			if j < 0 {
				s.held = append(s.held, p[i:]...)
				if len(s.held) > MaxMarkerLine {
					s.pass(s.held)
					s.held = s.held[:0]
					s.state = inLongMarker
				}
				return
			}
			s.held = append(s.held, p[i:i+j]...)
			end := p[i+j]
			i += j + 1
			s.endMarker(end)
		}
	}
}

// endMarker parses the held marker record; end is the byte that ended it
// ('\n', '\r', or 0 at the end of the stream), which the hidden-then-passed
// copy must restore.
func (s *Stream) endMarker(end byte) {
	var err error
	s.obs, err = s.parser.ParseWith(s.obs, s.held, s.src, s.stamp(), s.names)
	if err != nil {
		s.bad = append(s.bad, fmt.Errorf("%w, in %q", err, excerpt(s.held)))
	}
	if err != nil || !s.hide {
		s.pass(s.held)
		if end != 0 {
			s.pass([]byte{end})
		}
	} else {
		s.dropLF = end == '\r'
	}
	s.held, s.state = s.held[:0], atLineStart
}

// recordEnd is the index of the first byte that ends a record in b: a
// newline, or a carriage return before it (a progress bar redraws its line
// with "\r"; what it printed before is a record of its own, for markers and
// patterns alike). -1: none. Two byte scans, so plain output keeps the
// speed of bytes.IndexByte.
func recordEnd(b []byte) int {
	j := bytes.IndexByte(b, '\n')
	line := b
	if j >= 0 {
		line = b[:j]
	}
	if k := bytes.IndexByte(line, '\r'); k >= 0 {
		return k
	}
	return j
}

// collect keeps a plain line for the patterns (only when there are any).
func (s *Stream) collect(b []byte) {
	if !s.parser.HasPatterns() || s.long {
		return
	}
	if len(s.plain)+len(b) > MaxMarkerLine {
		s.plain, s.long = s.plain[:0], true
		return
	}
	s.plain = append(s.plain, b...)
}

// endPlain matches a finished plain line against the patterns.
func (s *Stream) endPlain() {
	if s.parser.HasPatterns() && !s.long && len(s.plain) > 0 {
		line := bytes.TrimSuffix(s.plain, []byte{'\r'})
		s.obs = s.parser.Match(s.obs, line, s.src, s.stamp(), s.names)
	}
	s.plain, s.long = s.plain[:0], false
}

// pass lets bytes through in hide mode (without Hide they were written
// already, whole, by Write).
func (s *Stream) pass(b []byte) {
	if s.hide {
		s.outBuf = append(s.outBuf, b...)
	}
}

func (s *Stream) flush() error {
	if len(s.outBuf) == 0 {
		return nil
	}
	_, err := s.out.Write(s.outBuf)
	s.outBuf = s.outBuf[:0]
	return err
}

// excerpt is the start of a line, for a message.
func excerpt(b []byte) []byte {
	if len(b) > 80 {
		return append(b[:77:77], "..."...)
	}
	return b
}
