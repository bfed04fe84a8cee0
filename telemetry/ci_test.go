package telemetry

import (
	"encoding/xml"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prism-run/prism-run/policies"
)

// hostileReport is a run whose child wrote everything a page or an XML
// file could trip on, and whose rules did each thing: one violated twice,
// one idle, one passed.
func hostileReport() (*Report, []RuleInfo) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	rep := NewReport("r1", now)
	rep.End, rep.DurationSeconds = now.Add(90*time.Second), 90
	rep.Command = []string{"./solver", "--x=`rm -rf`|<script>"}
	rep.Exit, rep.Reason, rep.Rule, rep.Mission = 75, ReasonPolicy, "lat", "pwsa"
	rep.Message = "stopped by rule lat: latency_ms = 9 <b>bold</b>\nPRISM injected=1 \x00\x1b[31m"
	rep.Checkpoints = []Checkpoint{{Path: "/ck/1", Time: now}, {Path: "/ck/2", Time: now}}
	rep.Peaks["memory_bytes"] = 1 << 30
	rep.IdleRules = []string{"rule loss never saw its metric loss"}
	for i := range 2 {
		rep.AddDecision(policies.Decision{Time: now.Add(time.Duration(i) * time.Second), Rule: "lat", Kind: "threshold",
			Severity: policies.SeverityHigh, Action: policies.ActionCheckpointStop, Reason: "latency_ms = 9 ]]> & \x01 <x>"})
	}
	// checkpoint_every's requests are a schedule, not violations.
	rep.AddDecision(policies.Decision{Time: now, Rule: "every", Kind: policies.KindPeriodic, Severity: policies.SeverityLow,
		Action: policies.ActionCheckpoint, Reason: "periodic request every 10m"})
	rep.Checkpoints = append(rep.Checkpoints, Checkpoint{Path: "/ck/3", Time: now, Rule: "every"})
	// A mission's progress note: low severity, log only.
	rep.AddDecision(policies.Decision{Time: now, Rule: "progress", Kind: "threshold", Severity: policies.SeverityLow,
		Action: policies.ActionLog, Reason: "colors = 115, above 82"})
	rules := []RuleInfo{{Name: "lat", Kind: "threshold"}, {Name: "loss", Kind: "max"}, {Name: "ok", Kind: "heartbeat"},
		{Name: "every", Kind: policies.KindPeriodic}, {Name: "progress", Kind: "threshold"}}
	return rep, rules
}

func TestEndLineIsOneLine(t *testing.T) {
	rep, _ := hostileReport()
	l := EndLine(rep)
	if strings.ContainsAny(l, "\n\r\x00\x1b") {
		t.Fatalf("end line has control characters: %q", l)
	}
	for _, want := range []string{"exit 75 (policy, rule lat)", "latency_ms = 9", "last checkpoint /ck/3"} {
		if !strings.Contains(l, want) {
			t.Errorf("end line %q lacks %q", l, want)
		}
	}
}

func TestJUnit(t *testing.T) {
	rep, rules := hostileReport()
	b, err := JUnit(rep, rules)
	if err != nil {
		t.Fatal(err)
	}
	var got junitSuites
	if err := xml.Unmarshal(b, &got); err != nil {
		t.Fatalf("not XML a CI system can read: %v\n%s", err, b)
	}
	if got.Tests != 6 || got.Failures != 1 || got.Errors != 1 || got.Skipped != 1 {
		t.Fatalf("counts tests=%d failures=%d errors=%d skipped=%d, want 6 1 1 1", got.Tests, got.Failures, got.Errors, got.Skipped)
	}
	cases := map[string]junitCase{}
	for _, c := range got.Suites[0].Cases {
		cases[c.Name] = c
	}
	if f := cases["lat"].Failure; f == nil || !strings.HasPrefix(f.Message, "2 violation(s); first: latency_ms = 9") || strings.Count(f.Text, "\n") != 2 {
		t.Errorf("rule lat's failure: %+v", f)
	}
	if cases["loss"].Skipped == nil || cases["ok"].Failure != nil || cases["ok"].Skipped != nil {
		t.Errorf("idle rule not skipped, or passing rule not a pass: %+v", cases)
	}
	if c := cases["every"]; c.Failure != nil || !strings.Contains(c.SystemOut, "1 scheduled request(s), 1 acknowledged") {
		t.Errorf("a periodic checkpoint request, answered, failed its case: %+v", c)
	}
	if c := cases["progress"]; c.Failure != nil || !strings.Contains(c.SystemOut, "1 note(s)") {
		t.Errorf("a low, log-only decision (progress) failed its case: %+v", c)
	}
	if e := cases["exit"].Error; e == nil || !strings.Contains(e.Message, "exit 75") {
		t.Errorf("the exit case: %+v", e)
	}
	if got.Suites[0].Name != "prism-run.pwsa" {
		t.Errorf("suite %q", got.Suites[0].Name)
	}

	// A run that exited 0 with no rule: one passing case.
	ok := NewReport("r2", time.Now())
	ok.Reason = ReasonExited
	b, _ = JUnit(ok, nil)
	got = junitSuites{}
	if err := xml.Unmarshal(b, &got); err != nil || got.Tests != 1 || got.Failures+got.Errors != 0 {
		t.Fatalf("a clean run: %v %+v", err, got)
	}
}

func TestJUnitListsAtMost20Decisions(t *testing.T) {
	rep, rules := hostileReport()
	for range 30 {
		rep.AddDecision(policies.Decision{Rule: "lat", Reason: "again"})
	}
	b, _ := JUnit(rep, rules)
	if !strings.Contains(string(b), "... and 12 more") {
		t.Fatalf("32 decisions not cut at 20:\n%s", b)
	}
}

func TestGitHubSummaryEscapes(t *testing.T) {
	rep, rules := hostileReport()
	s := string(GitHubSummary(rep, rules))
	for _, bad := range []string{"<b>", "<x>", "\x00", "\x1b", "\nPRISM injected"} {
		if strings.Contains(s, bad) {
			t.Errorf("summary carries %q unescaped:\n%s", bad, s)
		}
	}
	for _, want := range []string{"exit 75 (policy)", "| lat | threshold | **fail** (high/checkpoint\\-stop) | 2 violation\\(s\\); first: latency\\_ms = 9",
		"| loss | max | idle |", "| ok | heartbeat | pass |", "| every | periodic | pass | 1 scheduled request\\(s\\), 1 acknowledged |", "last `/ck/3`", "Command: \\./solver '\\-\\-x=\\`rm \\-rf\\`\\|&lt;script&gt;'", "| memory\\_bytes | 1073741824 |"} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q:\n%s", want, s)
		}
	}
	// Every table row has as many cells as its header: no | of the
	// child's split a cell.
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, "| lat ") && strings.Count(strings.ReplaceAll(l, `\|`, ""), "|") != 5 {
			t.Errorf("row split by the child's text: %s", l)
		}
	}
}

func TestGitHubSummaryBounded(t *testing.T) {
	rep, _ := hostileReport()
	var rules []RuleInfo
	for i := range 3000 {
		n := strings.Repeat("r", 40) + string(rune('a'+i%26))
		rules = append(rules, RuleInfo{Name: n, Kind: "max"})
	}
	s := GitHubSummary(rep, rules)
	if len(s) > maxSummary || !utf8.Valid(s) || !strings.Contains(string(s), "... and 2800 more rules.") {
		t.Fatalf("summary of %d bytes, valid %v", len(s), utf8.Valid(s))
	}
}

func TestWriteTerminationLog(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "termination-log")
	// The default path where Kubernetes gave none: nothing made.
	if err := WriteTerminationLog(p, "x", true); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("made %s though it did not exist: %v", p, err)
	}
	// A path given is made; what was there is replaced.
	if err := os.WriteFile(p, []byte(strings.Repeat("old ", 2000)), 0o644); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("é", 3000) // 6000 bytes, cut inside no rune
	if err := WriteTerminationLog(p, long, true); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	if len(b) > MaxTerminationMessage || !utf8.Valid(b) || strings.Contains(string(b), "old") || !strings.HasSuffix(string(b), "é\n") {
		t.Fatalf("termination message of %d bytes: %q...", len(b), b[:20])
	}
	q := filepath.Join(dir, "made")
	if err := WriteTerminationLog(q, "end", false); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(q); string(b) != "end\n" {
		t.Fatalf("got %q", b)
	}
	if err := WriteTerminationLog(filepath.Join(dir, "no", "such"), "end", false); err == nil {
		t.Fatal("no error for a folder that does not exist")
	}
}

// A checkpoint_every that the child never answered within the checkpoint
// timeout fails its case: a run that saved nothing must not read like one
// that did. A request the run's end came first to was still in time.
func TestJUnitUnansweredSchedule(t *testing.T) {
	t0 := time.Now()
	rep := NewReport("r", t0)
	rep.End = t0.Add(10 * time.Second)
	rep.Enforced = []Enforced{{What: "timing", Name: "checkpoint_timeout", Value: "2s"}}
	for _, at := range []time.Duration{time.Second, 5 * time.Second, 9 * time.Second} {
		rep.AddDecision(policies.Decision{Time: t0.Add(at), Rule: "every", Kind: policies.KindPeriodic, Severity: policies.SeverityLow, Action: policies.ActionCheckpoint})
	}
	ri := RuleInfo{Name: "every", Kind: policies.KindPeriodic}
	f, _, _ := judgeRule(rep, ri, []int{0, 1, 2})
	if f == nil || f.Message != "2 scheduled checkpoint request(s), none acknowledged within the checkpoint timeout" {
		t.Fatalf("got %+v", f)
	}
	// Only the last, 1 s before the end: in time.
	f, _, note := judgeRule(rep, ri, []int{2})
	if f != nil || !strings.Contains(note, "none acknowledged yet") {
		t.Fatalf("got %+v %q", f, note)
	}
}

func TestTerminationMessageKeepsItsEnd(t *testing.T) {
	p := filepath.Join(t.TempDir(), "tl")
	line := "prism-run: exit 75 (policy): " + strings.Repeat("é", 3000) + "; last checkpoint /ck/the-one.pt"
	if err := WriteTerminationLog(p, line, false); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	if len(b) > MaxTerminationMessage || !utf8.Valid(b) || !strings.HasSuffix(string(b), "; last checkpoint /ck/the-one.pt\n") || !strings.Contains(string(b), "…") {
		t.Fatalf("%d bytes, ends %q", len(b), b[len(b)-60:])
	}
}

func TestShellWords(t *testing.T) {
	if got := shellWords([]string{"sh", "-c", "exit 2", "it's", "", "a=b"}); got != `sh -c 'exit 2' 'it'\''s' '' a=b` {
		t.Fatalf("got %s", got)
	}
}

// A reason of the child's that is itself huge is cut with the page.
func TestGitHubSummaryCutsAHugeReason(t *testing.T) {
	rep, rules := hostileReport()
	rep.AddDecision(policies.Decision{Rule: "loss", Kind: "max", Severity: policies.SeverityHigh, Action: policies.ActionStop,
		Reason: strings.Repeat("é", 100<<10)})
	s := GitHubSummary(rep, rules)
	if len(s) > maxSummary || !utf8.Valid(s) || !strings.HasSuffix(string(s), "(summary cut)\n\n") {
		t.Fatalf("summary of %d bytes, valid %v", len(s), utf8.Valid(s))
	}
}
