package markers

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prism-run/prism-run/policies"
)

func TestParseNotify(t *testing.T) {
	at := time.Unix(100, 0)
	o := func(name string, v float64, text string) policies.Observation {
		return policies.Observation{Time: at, Source: policies.SourceNotify, Name: name, Value: v, Text: text}
	}
	cases := []struct {
		name, msg string
		want      []policies.Observation
		bad       int
	}{
		{"systemd-notify --ready --status", "READY=1\nSTATUS=loading the graph", []policies.Observation{o("ready", 1, ""), o("status", 0, "loading the graph")}, 0},
		{"a keep-alive", "WATCHDOG=1", []policies.Observation{o("watchdog", 1, "")}, 0},
		{"CRLF line ends", "PRISM_z=1\r\nSTATUS=up\r\n", []policies.Observation{o("z", 1, ""), o("status", 0, "up")}, 0},
		{"metrics and a checkpoint acknowledgement", "PRISM_loss=0.25\nPRISM_iter=12\nPRISM_checkpoint=/ck/my run 7.pt\n",
			[]policies.Observation{o("loss", 0.25, ""), o("iter", 12, ""), o("checkpoint", 0, "/ck/my run 7.pt")}, 0},
		{"stopping, reloading, errno", "STOPPING=1\nRELOADING=1\nERRNO=5", []policies.Observation{o("stopping", 1, ""), o("reloading", 1, ""), o("errno", 5, "")}, 0},
		{"what prism-run does not use is skipped", "MAINPID=7\nFDSTORE=1\nBARRIER=1\nWATCHDOG=trigger\nREADY=0\nEXTEND_TIMEOUT_USEC=5\nOTHER_x=1", nil, 0},
		{"one bad assignment leaves the rest", "garbage\nPRISM_loss=1\nPRISM_9x=1\nPRISM_y=\nERRNO=x",
			[]policies.Observation{o("loss", 1, "")}, 4},
		{"a name over the bound", "PRISM_" + strings.Repeat("k", MaxKeyLen+1) + "=1", nil, 1},
		{"the prefix alone is no name", "PRISM_=1\nPRISM=1", nil, 0},
	}
	p, _ := NewParser("PRISM")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, bad := p.ParseNotify(nil, []byte(c.msg), at, Names{})
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got %+v\nwant %+v", got, c.want)
			}
			if len(bad) != c.bad {
				t.Errorf("%d errors, want %d: %v", len(bad), c.bad, bad)
			}
			for _, err := range bad {
				if !errors.Is(err, ErrMalformed) {
					t.Errorf("%v does not wrap ErrMalformed", err)
				}
			}
		})
	}
}

// The marker prefix is the parser's: --marker-prefix X reads X_name=.
func TestParseNotifyPrefix(t *testing.T) {
	p, _ := NewParser("JOB")
	got, _ := p.ParseNotify(nil, []byte("JOB_loss=3\nPRISM_loss=4"), time.Time{}, nil)
	if len(got) != 1 || got[0].Value != 3 {
		t.Fatalf("got %+v", got)
	}
}

func FuzzParseNotify(f *testing.F) {
	for _, s := range []string{"READY=1\nSTATUS=x", "PRISM_loss=NaN", "PRISM_c=\xff\x00", "=\n=="} {
		f.Add([]byte(s))
	}
	p, _ := NewParser("PRISM")
	f.Fuzz(func(t *testing.T, msg []byte) {
		got, _ := p.ParseNotify(nil, msg, time.Time{}, Names{})
		for _, o := range got {
			if o.Name == "" || o.Source != policies.SourceNotify || len(o.Name) > MaxKeyLen {
				t.Fatalf("observation %+v from %q", o, msg)
			}
		}
	})
}
