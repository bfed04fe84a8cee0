package policies

import (
	"testing"
	"time"
)

// What users of GNU timeout, systemd, Docker and Go type.
func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"10", 10 * time.Second, true}, // GNU timeout: bare seconds
		{"1.5", 1500 * time.Millisecond, true},
		{"0", 0, true},
		{"90s", 90 * time.Second, true},
		{"30m", 30 * time.Minute, true},
		{"2h", 2 * time.Hour, true},
		{"1d", 24 * time.Hour, true},
		{"1.5d", 36 * time.Hour, true},
		{"1d12h", 36 * time.Hour, true},
		{"1h30m", 90 * time.Minute, true},
		{"500ms", 500 * time.Millisecond, true},
		{" 10s ", 10 * time.Second, true},
		{"2h 30min", 150 * time.Minute, true}, // systemd.time(7)
		{"5min", 5 * time.Minute, true},
		{"30sec", 30 * time.Second, true},
		{"1w", 7 * 24 * time.Hour, true},
		{"2 hours", 2 * time.Hour, true},
		{"100msec", 100 * time.Millisecond, true},
		{"1h30", 0, false}, // a number without a unit after the first
		{"1M", 0, false},   // systemd's months: no fixed length
		{"infinity", 0, false},
		{"1e3s", 0, false},
		{"-1s", 0, false},
		{"-5", 0, false},
		{"10x", 0, false},
		{"d", 0, false},
		{"", 0, false},
		{"NaN", 0, false},
		{"1e30", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want float64
		ok   bool
	}{
		{"4096", 4096, true},
		{"512m", 512 << 20, true}, // Docker
		{"512M", 512 << 20, true}, // systemd
		{"8G", 8 << 30, true},
		{"8GiB", 8 << 30, true},
		{"7.5GB", 7.5e9, true}, // SI
		{"1k", 1024, true},
		{"2T", 2 << 40, true},
		{"512Mi", 512 << 20, true}, // Kubernetes
		{"2Gi", 2 << 30, true},
		{"512mb", 0, false}, // Docker reads it 1024-based, SI 1000-based: not guessed
		{"5q", 0, false},
		{"-1M", 0, false},
		{"lots", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseSize(%q) = %v, %v; want %v ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

// Policy files take the same forms, numbers of seconds included, and zero
// means zero.
func TestDurationsInPolicies(t *testing.T) {
	p, err := Parse("p.toml", []byte("[actions]\nkill_after = 0\ncheckpoint_every = \"1d\"\n[sampling]\ninterval = 0.05\n"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := Resolve(p)
	if err != nil {
		t.Fatal(err)
	}
	if r.KillAfter == nil || *r.KillAfter != 0 || *r.SampleInterval != 50*time.Millisecond {
		t.Errorf("kill_after %v interval %v", r.KillAfter, r.SampleInterval)
	}
	if _, err := Parse("p.toml", []byte("[actions]\ncheckpoint_timeout = \"0s\"\n")); err == nil {
		t.Error("checkpoint_timeout 0 accepted")
	}
}
