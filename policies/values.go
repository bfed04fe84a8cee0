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
// bare number of seconds ("10", "1.5"), or numbers each with a unit,
// summed, spaces between them allowed: "500ms", "1.5d", "1h30m",
// "2h 30min", "1w" (units: durationUnit). Negative durations, and more
// than about 290 years (time.Duration's range), are refused.
func ParseDuration(s string) (time.Duration, error) {
	t := strings.TrimSpace(s)
	bad := fmt.Errorf("bad duration %q: want %s", s, DurationForms)
	if v, err := strconv.ParseFloat(t, 64); err == nil {
		if math.IsNaN(v) || v < 0 || v*float64(time.Second) >= math.MaxInt64 || v > 0 && v < 1e-9 {
			return 0, bad // below 1ns is not zero: refused, not read as 0
		}
		return time.Duration(v * float64(time.Second)), nil
	}
	var total float64
	for t != "" {
		num := len(t) - len(strings.TrimLeft(t, "0123456789."))
		rest := strings.TrimLeft(t[num:], " ")
		word := len(rest) - len(strings.TrimLeftFunc(rest, unicode.IsLetter))
		v, err := strconv.ParseFloat(t[:num], 64)
		unit := durationUnit(rest[:word])
		if num == 0 || err != nil || unit == 0 {
			return 0, bad
		}
		total += v * float64(unit)
		t = strings.TrimLeft(rest[word:], " ")
	}
	if strings.TrimSpace(s) == "" || total >= math.MaxInt64 || total > 0 && total < 1 {
		return 0, bad
	}
	return time.Duration(total), nil
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

// ParseSize reads "8GiB", "7.5GB", "512M", "512m", "4096" as bytes.
func ParseSize(s string) (float64, error) {
	t := strings.TrimSpace(s)
	mult := 1.0
	for _, u := range sizeUnits() {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, fmt.Errorf("bad size %q: want %s", s, SizeForms)
	}
	if v*mult >= math.MaxInt64 {
		return 0, fmt.Errorf("bad size %q: too large (at most 8EiB)", s)
	}
	return v * mult, nil
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
		f, err := ParseSize(x)
		if err != nil {
			return err
		}
		*z = Size(f)
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

// MarshalTOML writes the number as a TOML float or integer.
func (n Number) MarshalTOML() ([]byte, error) {
	f := float64(n)
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
