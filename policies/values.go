package policies

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Value types of policy files. Each accepts what a person would write
// ("10s", "8GiB", 0.5) and says plainly what it wanted otherwise.

// Duration is a TOML string such as "100ms", "10s", "24h".
type Duration time.Duration

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("bad duration %q: want a number with a unit, such as \"500ms\", \"10s\", \"2h\"", b)
	}
	if v < 0 {
		return fmt.Errorf("bad duration %q: must not be negative", b)
	}
	*d = Duration(v)
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// D returns the time.Duration.
func (d *Duration) D() time.Duration {
	if d == nil {
		return 0
	}
	return time.Duration(*d)
}

var sizeUnits = []struct {
	suffix string
	mult   float64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40}, {"B", 1},
}

// ParseSize reads "8GiB", "7.5GB", "512M", "4096" as bytes.
func ParseSize(s string) (float64, error) {
	t := strings.TrimSpace(s)
	mult := 1.0
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, fmt.Errorf("bad size %q: want bytes or a number with a unit, such as \"8GiB\", \"512MiB\", \"7.5GB\"", s)
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
