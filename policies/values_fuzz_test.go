package policies

import (
	"math"
	"strings"
	"testing"
	"time"
)

// FuzzParseDuration: whatever the text, ParseDuration never panics and
// never reads a negative duration; what it accepts, written back by the
// formatter (Duration.MarshalText, what --dry-run prints), reads back to
// the same nanosecond; and every duration Go's own time.ParseDuration
// reads as at least zero is read the same.
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"10", "1.5", "0", "90s", "1h30m", "2h 30min", "1.5d", "1w", "500ms", " 10s ",
		"128.438µs", "-1s", "-0", "-0s", "+5s", "1e3", "1e30", "NaN", "Inf", "0x1p4", ".5s", "1.s", "0.5ns",
		"2562047h47m16.854775807s", "2562047h47m16.854775808s", "9223372036854775807ns", "106751d23h47m16.854775807s",
		"1.000000000000000000001s", "5 min 3 sec", "1h30", "1d12h", "99999999999999999999s", "9223372036854775808s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err != nil {
			if d != 0 || !strings.Contains(err.Error(), DurationForms) {
				t.Fatalf("ParseDuration(%q) = %v, %v: a refusal reads as 0 and says what it wants", s, d, err)
			}
		} else if d < 0 {
			t.Fatalf("ParseDuration(%q) = %v: negative", s, d)
		} else if strings.HasPrefix(strings.TrimSpace(s), "-") && d != 0 {
			t.Fatalf("ParseDuration(%q) = %v: a negative duration read as positive", s, d)
		}
		// Go reads a non-zero duration below 1ns ("0.5ns") as 0, which
		// ParseDuration refuses: a limit of nothing was not meant.
		subNano := err != nil && strings.ContainsAny(s, "123456789")
		if g, gerr := time.ParseDuration(s); gerr == nil && g >= 0 && (err != nil || g != d) && !(g == 0 && subNano) {
			t.Fatalf("ParseDuration(%q) = %v, %v; time.ParseDuration reads %v", s, d, err, g)
		}
		if err != nil {
			return
		}
		text, _ := Duration(d).MarshalText()
		var back Duration
		if err := back.UnmarshalText(text); err != nil || time.Duration(back) != d {
			t.Fatalf("ParseDuration(%q) = %d; its text %q reads back as %d, %v", s, d, text, back, err)
		}
	})
}

// FuzzParseSize: whatever the text, ParseSize never panics and accepts
// only a finite size of at least zero and below 8 EiB (never a negative
// one); ParseBytes accepts what ParseSize does, as the same number of
// whole bytes, and what it accepts, written back by the formatter
// (Size.MarshalText, what --dry-run prints), reads back to the byte.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"4096", "512m", "512M", "8G", "8GiB", "7.5GB", "1k", "2T", "512Mi", "512mb", "5q",
		"-1M", "-0", "lots", "1.5", "0.5K", "1e3K", "Inf", "NaN", "0x1p10", " 8 GiB ", "9007199254740993",
		"9223372036854775807", "9223372036854775808", "8388607TiB", "8388608TiB", "18446744073709551616"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseSize(s)
		if err == nil && (math.IsNaN(v) || v < 0 || v >= math.MaxInt64) {
			t.Fatalf("ParseSize(%q) = %v: not a size", s, v)
		}
		if err == nil && v != 0 && strings.HasPrefix(strings.TrimSpace(s), "-") {
			t.Fatalf("ParseSize(%q) = %v: a negative size read as positive", s, v)
		}
		b, berr := ParseBytes(s)
		if err == nil && (berr != nil || math.Abs(float64(b)-v) > max(1, v/(1<<52))) {
			t.Fatalf("ParseSize(%q) = %v but ParseBytes = %d, %v", s, v, b, berr)
		}
		if berr != nil {
			if b != 0 {
				t.Fatalf("ParseBytes(%q) = %d with an error", s, b)
			}
			return
		}
		if b < 0 {
			t.Fatalf("ParseBytes(%q) = %d: negative", s, b)
		}
		text, _ := b.MarshalText()
		back, err := ParseBytes(string(text))
		if err != nil || back != b {
			t.Fatalf("ParseBytes(%q) = %d; its text %q reads back as %d, %v", s, b, text, back, err)
		}
	})
}
