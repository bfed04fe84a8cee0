package logging

import (
	"bytes"
	"testing"
)

// The child's bytes pass unchanged; a log line always starts a line.
func TestSharedStderr(t *testing.T) {
	type write struct {
		log  bool
		data string
	}
	tests := []struct {
		name   string
		writes []write
		want   string
	}{
		{"child lines, then a log line", []write{{false, "a\nb\n"}, {true, "LOG\n"}}, "a\nb\nLOG\n"},
		{"an unfinished child line", []write{{false, "50%"}, {true, "LOG\n"}, {false, " 60%\n"}}, "50%\nLOG\n 60%\n"},
		{"a progress bar redrawn with CR", []write{{false, "\r10%"}, {false, "\r20%"}, {true, "LOG\n"}}, "\r10%\r20%\nLOG\n"},
		{"log lines in a row", []write{{true, "A\n"}, {true, "B\n"}}, "A\nB\n"},
		{"the child finishes its line first", []write{{false, "x"}, {false, "y\n"}, {true, "LOG\n"}}, "xy\nLOG\n"},
		{"binary without a newline", []write{{false, "\x00\xff"}, {true, "LOG\n"}}, "\x00\xff\nLOG\n"},
		{"nothing from the child", []write{{true, "LOG\n"}}, "LOG\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			s := NewSharedStderr(&out)
			for _, w := range tt.writes {
				dst := s.Child()
				if w.log {
					dst = s.Log()
				}
				if n, err := dst.Write([]byte(w.data)); err != nil || n != len(w.data) {
					t.Fatalf("Write(%q) = %d, %v", w.data, n, err)
				}
			}
			if out.String() != tt.want {
				t.Errorf("got %q, want %q", out.String(), tt.want)
			}
		})
	}
}
