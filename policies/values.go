package policies

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Value types of policy files. Each accepts what a person would write
// ("10s", "8GiB", 0.5) and says plainly what it wanted otherwise.

// Duration is a duration in a policy: a string such as "100ms", "10s",
// "1d", "1h30m", or a bare number of seconds (10, 1.5), as GNU timeout
// reads it (ParseDuration).
type Duration time.Duration

// DurationForms are the forms ParseDuration accepts, for error messages.
const DurationForms = `seconds (10, 1.5) or numbers with units: 500ms, 10s, 30m, 2h, 1d, 1w, 1h30m, "2h 30min"`

// durationUnit is the length of a unit word of systemd.time(7) and Go
// (0: not one). "m" is minutes, as in both (systemd's "M", months, is
// not taken: a month has no fixed length).
func durationUnit(u string) time.Duration {
	switch u {
	case "ns", "nsec":
		return time.Nanosecond
	case "us", "µs", "usec":
		return time.Microsecond
	case "ms", "msec":
		return time.Millisecond
	case "s", "sec", "second", "seconds":
		return time.Second
	case "m", "min", "minute", "minutes":
		return time.Minute
	case "h", "hr", "hour", "hours":
		return time.Hour
	case "d", "day", "days":
		return 24 * time.Hour
	case "w", "week", "weeks":
		return 7 * 24 * time.Hour
	}
	return 0
}

// ParseDuration reads what users of GNU timeout, systemd and Go type: a
// bare number of seconds ("10", "1.5", "1e3"), or numbers each with a
// unit, summed, spaces between them allowed: "500ms", "1.5d", "1h30m",
// "2h 30min", "1w" (units: durationUnit). Every duration Go's
// time.ParseDuration reads as at least zero is read the same, to the
// nanosecond, so what Duration.MarshalText writes reads back exactly.
// Negative durations, more than about 290 years (time.Duration's range)
// and a non-zero duration below 1ns are refused.
func ParseDuration(s string) (time.Duration, error) {
	t := strings.TrimSpace(s)
	if d, ok := sumDuration(t); ok {
		return d, nil
	}
	// A bare number in a form only strconv reads (1e3, 0x1p4): seconds.
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(v) || v < 0 || v*float64(time.Second) >= math.MaxInt64 || v > 0 && v < 1e-9 {
		return 0, fmt.Errorf("bad duration %q: want %s", s, DurationForms)
	}
	return time.Duration(v * float64(time.Second)), nil
}

// sumDuration reads decimal numbers each with a unit (one bare number:
// seconds), summed, in integer nanoseconds as time.ParseDuration does: a
// float64 sum loses nanoseconds ("128.438µs" read as 128.437µs). A sign
// may lead, as in Go; "-" only on a zero duration.
func sumDuration(t string) (time.Duration, bool) {
	neg := strings.HasPrefix(t, "-")
	if neg || strings.HasPrefix(t, "+") {
		t = t[1:]
	}
	var total uint64
	nonzero := false
	for first := true; t != "" || first; first = false {
		v, frac, scale, rest, ok := leadingDecimal(t)
		rest = strings.TrimLeft(rest, " ")
		word := len(rest) - len(strings.TrimLeftFunc(rest, unicode.IsLetter))
		unit := uint64(durationUnit(rest[:word]))
		if first && rest == "" {
			unit = uint64(time.Second) // a bare number
		}
		if !ok || unit == 0 || v > (1<<63-1)/unit {
			return 0, false
		}
		nonzero = nonzero || v > 0 || frac > 0
		v *= unit
		if frac > 0 {
			v += uint64(float64(frac) * (float64(unit) / scale))
		}
		if total += v; total > 1<<63-1 {
			return 0, false
		}
		t = strings.TrimLeft(rest[word:], " ")
	}
	if neg && total != 0 || total == 0 && nonzero {
		return 0, false // negative, or below 1ns: refused, not read as 0
	}
	return time.Duration(total), true
}

// leadingDecimal reads the digits of a decimal number at the start of s:
// the integer part v and the fraction frac/scale (as time.ParseDuration,
// digits past int64's precision are dropped). ok: there was a digit, and
// v fits in an int64.
func leadingDecimal(s string) (v, frac uint64, scale float64, rest string, ok bool) {
	i, scale := 0, 1.0
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		if v > (1<<63-1)/10 {
			return 0, 0, 0, s, false
		}
		v = v*10 + uint64(s[i]-'0')
		if v > 1<<63-1 {
			return 0, 0, 0, s, false
		}
	}
	digits, full := i, false
	if i < len(s) && s[i] == '.' {
		for i++; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			digits++
			y := frac*10 + uint64(s[i]-'0')
			if full = full || frac > (1<<63-1)/10 || y > 1<<63-1; !full {
				frac, scale = y, scale*10
			}
		}
	}
	return v, frac, scale, s[i:], digits > 0
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// UnmarshalTOML implements toml.Unmarshaler: a string, or a number of
// seconds.
func (d *Duration) UnmarshalTOML(v any) error {
	switch x := v.(type) {
	case string:
		return d.UnmarshalText([]byte(x))
	case int64:
		return d.UnmarshalText([]byte(strconv.FormatInt(x, 10)))
	case float64:
		return d.UnmarshalText([]byte(strconv.FormatFloat(x, 'g', -1, 64)))
	}
	return fmt.Errorf("bad duration %v: want %s", v, DurationForms)
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// Ptr returns the time.Duration, nil when unset.
func (d *Duration) Ptr() *time.Duration {
	if d == nil {
		return nil
	}
	v := time.Duration(*d)
	return &v
}

// D returns the time.Duration.
func (d *Duration) D() time.Duration {
	if d == nil {
		return 0
	}
	return time.Duration(*d)
}

// sizeUnits are the size suffixes, longest first. K, M, G, T (and k, m,
// g, t) are 1024-based, as systemd and Docker read them; KiB... and
// Kubernetes' Ki... too; KB,
// MB, GB, TB are 1000-based (SI).
func sizeUnits() []struct {
	suffix string
	mult   float64
} {
	return []struct {
		suffix string
		mult   float64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
		{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40},
		{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"t", 1 << 40}, {"B", 1}, {"b", 1},
	}
}

// SizeForms are the forms ParseSize accepts, for error messages.
const SizeForms = `bytes (4096) or a number with a unit: K/M/G/T, Ki/Mi/Gi/Ti or KiB/MiB/GiB/TiB (1024-based: 512M, 8GiB), KB/MB/GB/TB (1000-based: 7.5GB)`

// ParseSize reads "8GiB", "7.5GB", "512M", "512m", "4096" as bytes: a
// float64, exact up to 2^53 bytes (a bound of a rule; [limits] and the
// size flags read whole bytes with ParseBytes).
func ParseSize(s string) (float64, error) {
	t, mult := sizeNumber(s)
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, fmt.Errorf("bad size %q: want %s", s, SizeForms)
	}
	if v*mult >= math.MaxInt64 {
		return 0, fmt.Errorf("bad size %q: too large (at most 8EiB)", s)
	}
	return v * mult, nil
}

// sizeNumber splits a size into its number and its unit's multiplier.
func sizeNumber(s string) (string, float64) {
	t := strings.TrimSpace(s)
	for _, u := range sizeUnits() {
		if strings.HasSuffix(t, u.suffix) {
			return strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
		}
	}
	return t, 1
}

// ParseBytes reads a size as ParseSize does, as whole bytes: exact for a
// whole number of a unit up to 2^63-1 bytes (what Size.MarshalText
// writes reads back the same), where a float64 is exact only to 2^53; a
// fraction of a byte is dropped ("1.5" is 1, "0.5K" is 512).
func ParseBytes(s string) (Size, error) {
	t, mult := sizeNumber(s)
	if n, err := strconv.ParseUint(t, 10, 64); err == nil {
		if n > math.MaxInt64/uint64(mult) {
			return 0, fmt.Errorf("bad size %q: too large (at most 8EiB)", s)
		}
		return Size(n * uint64(mult)), nil
	}
	f, err := ParseSize(s)
	return Size(f), err
}

// Size is a number of bytes: a TOML integer or a string with a unit.
type Size int64

// UnmarshalTOML implements toml.Unmarshaler.
func (z *Size) UnmarshalTOML(v any) error {
	switch x := v.(type) {
	case int64:
		if x < 0 {
			return fmt.Errorf("bad size %d: must not be negative", x)
		}
		*z = Size(x)
	case string:
		b, err := ParseBytes(x)
		if err != nil {
			return err
		}
		*z = b
	default:
		return fmt.Errorf("bad size %v: want bytes or a string such as \"8GiB\"", v)
	}
	return nil
}

// MarshalText writes the size in the largest binary unit that divides it.
func (z Size) MarshalText() ([]byte, error) {
	for _, u := range []struct {
		s string
		m int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if z != 0 && int64(z)%u.m == 0 {
			return []byte(fmt.Sprintf("%d%s", int64(z)/u.m, u.s)), nil
		}
	}
	return []byte(strconv.FormatInt(int64(z), 10)), nil
}

// Number is a bound: a TOML integer or float, or a size string ("8GiB")
// for metrics in bytes.
type Number float64

// UnmarshalTOML implements toml.Unmarshaler.
func (n *Number) UnmarshalTOML(v any) error {
	switch x := v.(type) {
	case int64:
		*n = Number(x)
	case float64:
		// nan: no value compares with it, so a bound of nan would
		// never be crossed (and a threshold would fire on NaN alone).
		if math.IsNaN(x) {
			return fmt.Errorf("bad number nan: a bound must be a number (a rule fires on a NaN value by itself)")
		}
		*n = Number(x)
	case string:
		f, err := ParseSize(x)
		if err != nil {
			return fmt.Errorf("bad number %q: want a number, or a size such as \"8GiB\"", x)
		}
		*n = Number(f)
	default:
		return fmt.Errorf("bad number %v", v)
	}
	return nil
}

// MarshalTOML writes the number as a TOML float or integer (infinity as
// TOML writes it, inf: strconv's +Inf is no TOML).
func (n Number) MarshalTOML() ([]byte, error) {
	f := float64(n)
	if math.IsInf(f, 0) {
		return []byte(map[bool]string{true: "inf", false: "-inf"}[f > 0]), nil
	}
	if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return []byte(strconv.FormatInt(int64(f), 10)), nil
	}
	return []byte(strconv.FormatFloat(f, 'g', -1, 64)), nil
}

func (n *Number) ptr() *float64 {
	if n == nil {
		return nil
	}
	f := float64(*n)
	return &f
}

// Window is a number of observations (a TOML integer) or a duration (a
// string such as "10s").
type Window struct {
	N int
	D time.Duration
}

// UnmarshalTOML implements toml.Unmarshaler.
func (w *Window) UnmarshalTOML(v any) error {
	switch x := v.(type) {
	case int64:
		if x < 1 || x > MaxWindowCount {
			return fmt.Errorf("bad window %d: want 1..%d observations, or a duration", x, MaxWindowCount)
		}
		*w = Window{N: int(x)}
	case string:
		d, err := time.ParseDuration(x)
		if err != nil || d <= 0 {
			return fmt.Errorf("bad window %q: want a number of observations, or a duration such as \"10s\"", x)
		}
		*w = Window{D: d}
	default:
		return fmt.Errorf("bad window %v: want a number of observations, or a duration such as \"10s\"", v)
	}
	return nil
}

// MarshalTOML writes the window back as it was given.
func (w Window) MarshalTOML() ([]byte, error) {
	if w.D > 0 {
		return []byte(strconv.Quote(w.D.String())), nil
	}
	return []byte(strconv.Itoa(w.N)), nil
}

// Signals a policy may name (without importing any OS package: the
// supervisor turns the name into the signal).
var signalNames = []string{"SIGHUP", "SIGINT", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGTERM", "SIGKILL",
	"SIGCONT", "SIGSTOP", "SIGTSTP", "SIGWINCH", "SIGALRM", "SIGPWR", "SIGURG", "SIGXCPU"}

// ParseSignal reads "SIGUSR1" or "USR1" and returns the canonical name.
func ParseSignal(s string) (string, error) {
	u := strings.ToUpper(strings.TrimSpace(s))
	if !strings.HasPrefix(u, "SIG") {
		u = "SIG" + u
	}
	for _, n := range signalNames {
		if n == u {
			return n, nil
		}
	}
	return "", fmt.Errorf("%w: unknown signal %q", ErrInvalid, s)
}
