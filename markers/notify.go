package markers

import (
	"bytes"
	"fmt"
	"time"

	"github.com/prism-run/prism-run/policies"
)

// Names the sd_notify protocol's messages become (Source notify).
// (policies' canonical names).
const (
	NotifyReady     = policies.NameReady     // READY=1: the service finished starting (value 1)
	NotifyStatus    = policies.NameStatus    // STATUS=...: free text
	NotifyWatchdog  = policies.NameWatchdog  // WATCHDOG=1: a keep-alive (value 1); feeds heartbeat rules
	NotifyStopping  = policies.NameStopping  // STOPPING=1
	NotifyReloading = policies.NameReloading // RELOADING=1
	NotifyErrno     = policies.NameErrno     // ERRNO=N: the error the service failed with
)

// MaxNotifyMessage is the largest sd_notify datagram read whole; a
// longer one is cut by the socket and counted malformed.
const MaxNotifyMessage = 64 << 10

// ParseNotify appends the observations of one sd_notify datagram
// (sd_notify(3): newline-separated VARIABLE=VALUE assignments) to dst,
// all with Source notify and time at:
//
//	READY=1, STOPPING=1, RELOADING=1 -> ready, stopping, reloading = 1
//	WATCHDOG=1                       -> watchdog = 1 (a heartbeat)
//	STATUS=text                      -> status, text
//	ERRNO=N                          -> errno = N
//	PREFIX_name=value                -> name = value, as a marker reads a
//	                                   bare value (a number or true/false
//	                                   is a metric, anything else text,
//	                                   spaces included): PRISM_loss=0.3,
//	                                   PRISM_checkpoint=/ck/7
//
// Other assignments (MAINPID, FDSTORE, BARRIER, EXTEND_TIMEOUT_USEC,
// WATCHDOG_USEC, WATCHDOG=trigger, ...) mean nothing to prism-run and
// are skipped, as systemd skips what it does not know. An assignment
// that cannot be read (no '=', a PREFIX_ name that is no marker key, an
// empty value where one is needed) is one error wrapping ErrMalformed;
// the message's other assignments still count, since each is separate.
func (p *Parser) ParseNotify(dst []policies.Observation, msg []byte, at time.Time, names Names) ([]policies.Observation, []error) {
	var bad []error
	for line := range bytes.SplitSeq(msg, []byte{'\n'}) {
		line = bytes.TrimSuffix(line, []byte{'\r'}) // a CRLF sender's line ends as a newline's
		if len(line) == 0 {
			continue
		}
		k, v, ok := bytes.Cut(line, []byte{'='})
		if !ok {
			bad = append(bad, fmt.Errorf("%w: sd_notify %q: not VARIABLE=VALUE", ErrMalformed, clip(line)))
			continue
		}
		o := obs("", policies.SourceNotify, at)
		switch string(k) {
		case "READY", "STOPPING", "RELOADING":
			if string(v) != "1" {
				continue // only "1" is defined
			}
			o.Name, o.Value = notifyFlag(string(k)), 1
		case "WATCHDOG":
			if string(v) != "1" {
				continue // WATCHDOG=trigger asks systemd to act; prism-run's rules decide
			}
			o.Name, o.Value = NotifyWatchdog, 1
		case "STATUS":
			o.Name, o.Text = NotifyStatus, string(v)
		case "ERRNO":
			o.Name = NotifyErrno
			setBare(&o, v)
			if o.Text != "" {
				bad = append(bad, fmt.Errorf("%w: sd_notify ERRNO=%q: not a number", ErrMalformed, clip(v)))
				continue
			}
		default:
			name, mine := bytes.CutPrefix(k, p.prefix)
			if !mine || len(name) < 2 || name[0] != '_' {
				continue
			}
			name = name[1:]
			if err := checkKey(name); err != nil {
				bad = append(bad, fmt.Errorf("%w: sd_notify %s: %v", ErrMalformed, clip(k), err))
				continue
			}
			if len(v) == 0 {
				bad = append(bad, fmt.Errorf("%w: sd_notify %s has no value", ErrMalformed, clip(k)))
				continue
			}
			o.Name = names.intern(name)
			setBare(&o, v)
		}
		dst = append(dst, o)
	}
	return dst, bad
}

func notifyFlag(k string) string {
	switch k {
	case "READY":
		return NotifyReady
	case "STOPPING":
		return NotifyStopping
	}
	return NotifyReloading
}

// checkKey says why name cannot be a marker key (nil: it can): the
// stream's rules (keyHead), and key bytes only.
func checkKey(name []byte) error {
	if i := bytes.IndexFunc(name, func(r rune) bool { return r > 0x7f || !isKeyByte(byte(r)) }); i >= 0 {
		return fmt.Errorf("key %q: %q cannot be in a key", name, name[i])
	}
	return keyHead(name)
}

// clip bounds what an error quotes of the child's bytes.
func clip(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}
