package telemetry

import (
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"golang.org/x/sys/unix"

	"github.com/prism-run/prism-run/policies"
)

// RuleInfo is one rule of the run's policy, as the CI outputs name it.
type RuleInfo struct {
	Name, Kind, Metric, Severity string
}

// scheduled: the rule's decisions are a schedule (checkpoint_every's
// periodic requests), not violations: they never fail a CI run.
func (ri RuleInfo) scheduled() bool { return ri.Kind == policies.KindPeriodic }

// EndLine is the run's end in one line, as the termination message and
// the summaries give it: "exit 75 (policy, rule timeout): stopped by rule
// timeout: ...; last checkpoint /ck/7". Control characters become
// spaces, so it stays one line whatever the child printed.
func EndLine(rep *Report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "prism-run: exit %d (%s", rep.Exit, rep.Reason)
	if rep.Rule != "" {
		fmt.Fprintf(&b, ", rule %s", rep.Rule)
	}
	if rep.Signal != "" {
		fmt.Fprintf(&b, ", %s", rep.Signal)
	}
	b.WriteString("): ")
	b.WriteString(rep.Message)
	if ck := lastCheckpoint(rep); ck != "" {
		b.WriteString("; last checkpoint ")
		b.WriteString(ck)
	}
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, b.String())
}

func lastCheckpoint(rep *Report) string {
	for i := len(rep.Checkpoints) - 1; i >= 0; i-- {
		if c := rep.Checkpoints[i]; !c.Abandoned && !c.Deleted {
			return c.Path
		}
	}
	return ""
}

// MaxTerminationMessage is what the kubelet reads of a container's
// termination-message file: 4096 bytes (k8s.io/api core/v1
// TerminationMessagePath: "Message written is intended to be brief final
// status... will be truncated by the node if greater than 4096 bytes").
const MaxTerminationMessage = 4096

// terminationTail is how much of a line too long for the termination
// message is kept from its end.
const terminationTail = 512

// DefaultTerminationLog is Kubernetes' default terminationMessagePath.
const DefaultTerminationLog = "/dev/termination-log"

// WriteTerminationLog writes line (cut to MaxTerminationMessage bytes at
// a rune boundary) and a newline to path, truncating what was there: the
// kubelet bind-mounts the file into the container, so it is written in
// place (a rename over a mount point fails with EBUSY). With onlyIfExists
// a path that does not exist is not made and nil is returned: the default
// path is written only where Kubernetes provides it.
func WriteTerminationLog(path, line string, onlyIfExists bool) error {
	if path == "" {
		return nil
	}
	flags := unix.O_WRONLY | unix.O_TRUNC | unix.O_NONBLOCK | unix.O_CLOEXEC | unix.O_NOCTTY
	if !onlyIfExists {
		flags |= unix.O_CREAT
	}
	fd, err := unix.Open(path, flags, 0o644)
	if onlyIfExists && errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("termination log %s: %w", path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	if len(line) > MaxTerminationMessage-1 {
		// Cut in the middle: the end holds the last checkpoint, what a
		// person resuming the job needs.
		tail := line[len(line)-terminationTail:]
		if i := strings.LastIndex(line, "; last checkpoint "); i >= 0 && len(line)-i <= MaxTerminationMessage/2 {
			tail = line[i:] // the whole path, however long
		}
		for len(tail) > 0 && !isRuneStart(tail[0]) {
			tail = tail[1:]
		}
		line = cutRunes(line, MaxTerminationMessage-1-len(tail)-len("…")) + "…" + tail
	}
	if _, err := f.WriteString(line + "\n"); err != nil {
		return fmt.Errorf("termination log %s: %w", path, err)
	}
	return nil
}

// cutRunes cuts s to at most n bytes without splitting a UTF-8 sequence.
func cutRunes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && n < len(s) && !isRuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// ruleDecisions groups the report's decisions by rule, in order.
func ruleDecisions(rep *Report) map[string][]int {
	by := map[string][]int{}
	for i, d := range rep.Decisions {
		by[d.Rule] = append(by[d.Rule], i)
	}
	return by
}

// idleReason is the report's idle line of rule name ("" when it saw its
// metric).
func idleReason(rep *Report, name string) string {
	for _, l := range rep.IdleRules {
		if strings.HasPrefix(l, "rule "+name+" ") {
			return l
		}
	}
	return ""
}

// --- JUnit XML ---

// The JUnit XML shapes CI systems read (the Ant/Surefire schema that
// Jenkins, GitLab's junit report and GitHub test-report actions accept):
// one testsuite, a testcase per rule, failure/skipped children.
type junitSuites struct {
	XMLName xml.Name `xml:"testsuites"`
	Name    string   `xml:"name,attr"`
	junitCounts
	Suites []junitSuite `xml:"testsuite"`
}

// junitCounts are the counts both levels carry (seconds in Time).
type junitCounts struct {
	Tests    int    `xml:"tests,attr"`
	Failures int    `xml:"failures,attr"`
	Errors   int    `xml:"errors,attr"`
	Skipped  int    `xml:"skipped,attr"`
	Time     string `xml:"time,attr"`
}

type junitSuite struct {
	Name string `xml:"name,attr"`
	junitCounts
	Timestamp  string          `xml:"timestamp,attr"`
	Hostname   string          `xml:"hostname,attr,omitempty"`
	Properties []junitProperty `xml:"properties>property,omitempty"`
	Cases      []junitCase     `xml:"testcase"`
	SystemOut  string          `xml:"system-out,omitempty"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitProblem `xml:"failure,omitempty"`
	Error     *junitProblem `xml:"error,omitempty"`
	Skipped   *junitProblem `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitProblem struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Text    string `xml:",chardata"`
}

// maxJUnitDecisions bounds the decisions listed in one failure's text.
const maxJUnitDecisions = 20

// JUnit renders the run as JUnit XML: a testsuite named after the
// mission ("prism-run" without one) with one testcase per rule (a
// failure when the rule made any decision, the first one's reason its
// message and up to 20 decisions listed; skipped when it never saw its
// metric) and a testcase "exit" for the run's end (an error unless the
// exit code is 0). Times are seconds; XML-invalid characters in the
// child's text are replaced (encoding/xml escapes the rest).
func JUnit(rep *Report, rules []RuleInfo) ([]byte, error) {
	suite := junitSuite{Name: "prism-run", Timestamp: rep.Start.UTC().Format(time.RFC3339)}
	suite.Time = seconds(rep.DurationSeconds)
	if rep.Mission != "" {
		suite.Name = "prism-run." + rep.Mission
	}
	if rep.Host != nil {
		suite.Hostname = rep.Host.Name
	}
	suite.Properties = []junitProperty{{"run_id", rep.RunID}, {"command", shellWords(rep.Command)},
		{"seed", strconv.FormatUint(rep.Seed, 10)}, {"exit_code", strconv.Itoa(rep.Exit)}, {"reason", string(rep.Reason)}}
	if rep.Slurm != nil {
		suite.Properties = append(suite.Properties, junitProperty{"slurm_job_id", rep.Slurm.JobID})
	}
	for i, v := range judgeRules(rep, rules) {
		ri := rules[i]
		c := junitCase{Name: ri.Name, Classname: suite.Name + "." + ri.Kind, Time: suite.Time}
		c.Failure, c.Skipped, c.SystemOut = v.failure, v.skipped, v.note
		suite.add(c)
	}
	end := junitCase{Name: "exit", Classname: suite.Name, Time: suite.Time}
	if rep.Exit != 0 {
		end.Error = &junitProblem{Message: EndLine(rep), Type: string(rep.Reason)}
	}
	suite.add(end)
	suite.SystemOut = EndLine(rep) + "\n"
	all := junitSuites{Name: "prism-run", junitCounts: suite.junitCounts, Suites: []junitSuite{suite}}
	out, err := xml.MarshalIndent(all, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(append([]byte(xml.Header), xmlSafe(out)...), '\n'), nil
}

// verdict is judgeRule's answer for one rule.
type verdict struct {
	failure, skipped *junitProblem
	note             string
}

// judgeRules judges each rule once, in order (JUnit and the summary
// both show these).
func judgeRules(rep *Report, rules []RuleInfo) []verdict {
	by := ruleDecisions(rep)
	out := make([]verdict, len(rules))
	for i, ri := range rules {
		out[i].failure, out[i].skipped, out[i].note = judgeRule(rep, ri, by[ri.Name])
	}
	return out
}

// judgeRule is a rule's test case: a failure for its violations (the
// count, the first reason, up to 20 listed); a pass with a note when its
// decisions are informational (low severity, action log: progress, not
// a violation) or a schedule that the child answered (checkpoint_every's
// requests, some acknowledged); a failure for a schedule never answered;
// skipped when the rule never saw its metric.
func judgeRule(rep *Report, ri RuleInfo, idx []int) (failure, skipped *junitProblem, note string) {
	var viol, notes []int
	for _, i := range idx {
		if informational(rep.Decisions[i]) {
			notes = append(notes, i)
		} else {
			viol = append(viol, i)
		}
	}
	switch {
	case ri.scheduled() && len(idx) > 0:
		acked := acknowledgedFor(rep, ri.Name)
		if acked > 0 {
			return nil, nil, fmt.Sprintf("%d scheduled request(s), %d acknowledged", len(idx), acked)
		}
		// Unanswered: its checkpoint timeout ran out before the run
		// ended; a request the end came first to was still in time.
		timeout := enforcedDuration(rep, "checkpoint_timeout")
		late := 0
		for _, i := range idx {
			if rep.End.Sub(rep.Decisions[i].Time) > timeout {
				late++
			}
		}
		if late == 0 {
			return nil, nil, fmt.Sprintf("%d scheduled request(s), none acknowledged yet: the run ended within the checkpoint timeout", len(idx))
		}
		return &junitProblem{Message: fmt.Sprintf("%d scheduled checkpoint request(s), none acknowledged within the checkpoint timeout", late), Type: "unanswered"}, nil, ""
	case len(viol) > 0:
		first := rep.Decisions[viol[0]]
		var t strings.Builder
		for n, i := range viol {
			if n == maxJUnitDecisions {
				fmt.Fprintf(&t, "... and %d more\n", len(viol)-n)
				break
			}
			d := rep.Decisions[i]
			fmt.Fprintf(&t, "%s %s %s: %s\n", d.Time.UTC().Format(time.RFC3339Nano), d.Severity, d.Action, d.Reason)
		}
		return &junitProblem{Message: fmt.Sprintf("%d violation(s); first: %s", len(viol), first.Reason),
			Type: first.Severity.String() + "/" + string(first.Action), Text: t.String()}, nil, ""
	case len(notes) > 0:
		return nil, nil, fmt.Sprintf("%d note(s) (low severity, log only; not violations); first: %s", len(notes), rep.Decisions[notes[0]].Reason)
	}
	if why := idleReason(rep, ri.Name); why != "" {
		return nil, &junitProblem{Message: why}, ""
	}
	return nil, nil, ""
}

// informational: a decision that only logs at low severity (a mission's
// progress notes) is not a violation.
func informational(d policies.Decision) bool {
	return d.Severity == policies.SeverityLow && d.Action == policies.ActionLog
}

// enforcedDuration is the plan's timing item name as the report has it
// (0 when absent or unreadable).
func enforcedDuration(rep *Report, name string) time.Duration {
	for _, e := range rep.Enforced {
		if e.What == "timing" && e.Name == name {
			d, _ := time.ParseDuration(e.Value)
			return d
		}
	}
	return 0
}

// acknowledgedFor counts the checkpoints acknowledged in answer to rule.
func acknowledgedFor(rep *Report, rule string) int {
	n := 0
	for _, c := range rep.Checkpoints {
		if c.Rule == rule {
			n++
		}
	}
	return n
}

func (s *junitSuite) add(c junitCase) {
	s.Tests++
	switch {
	case c.Failure != nil:
		s.Failures++
	case c.Error != nil:
		s.Errors++
	case c.Skipped != nil:
		s.Skipped++
	}
	s.Cases = append(s.Cases, c)
}

// xmlSafe replaces what XML 1.0 cannot hold even escaped (encoding/xml
// writes U+FFFD for invalid characters of text, but a marker's text
// passes through attributes too): control characters other than tab,
// newline and carriage return.
func xmlSafe(b []byte) []byte {
	for i, c := range b {
		if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
			b[i] = ' '
		}
	}
	return b
}

func seconds(s float64) string { return strconv.FormatFloat(max(s, 0), 'f', 3, 64) }

// WriteJUnit writes JUnit(rep, rules) to path atomically.
func WriteJUnit(path string, rep *Report, rules []RuleInfo) error {
	b, err := JUnit(rep, rules)
	if err != nil {
		return fmt.Errorf("junit %s: %w", path, err)
	}
	return writeAtomic(path, b)
}

// --- GitHub step summary ---

// maxSummaryRules bounds the rules the summary's table lists.
const maxSummaryRules = 200

// maxSummary bounds one run's Markdown summary: GitHub takes at most
// 1 MiB of step summary per step, and several runs may share a step.
const maxSummary = 64 << 10

// GitHubSummary renders the run as GitHub-flavoured Markdown for
// $GITHUB_STEP_SUMMARY: the end line, the violations by rule, the peaks,
// the checkpoints and restarts. Everything the child wrote is escaped
// (no Markdown or HTML of its own reaches the page).
func GitHubSummary(rep *Report, rules []RuleInfo) []byte {
	var b strings.Builder
	icon := ":white_check_mark:"
	verdicts := judgeRules(rep, rules)
	if slices.ContainsFunc(verdicts, func(v verdict) bool { return v.failure != nil }) {
		icon = ":warning:" // exit 0, but a rule failed (as JUnit says)
	}
	if rep.Exit != 0 {
		icon = ":x:"
	}
	fmt.Fprintf(&b, "### %s prism-run: exit %d (%s)\n\n", icon, rep.Exit, rep.Reason)
	fmt.Fprintf(&b, "Command: %s\n\n", mdText(shellWords(rep.Command)))
	fmt.Fprintf(&b, "%s\n\n", mdText(EndLine(rep)))
	fmt.Fprintf(&b, "Run `%s`, seed %d, %s", mdSpan(rep.RunID), rep.Seed, time.Duration(rep.DurationSeconds*float64(time.Second)).Round(time.Millisecond))
	if rep.Mission != "" {
		fmt.Fprintf(&b, ", mission %s", mdText(rep.Mission))
	}
	if rep.Slurm != nil {
		fmt.Fprintf(&b, ", Slurm job %s", mdText(rep.Slurm.JobID))
	}
	b.WriteString(".\n\n")

	summaryRules(&b, rep, rules, verdicts)
	if len(rep.Peaks) > 0 {
		names := make([]string, 0, len(rep.Peaks))
		for n := range rep.Peaks {
			names = append(names, n)
		}
		slices.Sort(names)
		b.WriteString("| peak | value |\n|---|---|\n")
		for _, n := range names {
			v, _ := rep.Peaks[n].MarshalJSON()
			fmt.Fprintf(&b, "| %s | %s |\n", mdText(n), mdText(string(v)))
		}
		b.WriteString("\n")
	}
	if len(rep.Checkpoints) > 0 {
		fmt.Fprintf(&b, "Checkpoints: %d", len(rep.Checkpoints))
		if ck := lastCheckpoint(rep); ck != "" {
			fmt.Fprintf(&b, ", last `%s`", mdSpan(ck))
		}
		b.WriteString(".\n\n")
	}
	if rc := rep.Recovery; rc != nil && (rc.Restarts > 0 || rc.Verdict != "" || rc.Failover) {
		fmt.Fprintf(&b, "Restarts: %d, failures %d, preemptions %d", rc.Restarts, rc.Failures, rc.Preemptions)
		if rc.Verdict != "" {
			fmt.Fprintf(&b, " (%s)", mdText(rc.Verdict))
		}
		b.WriteString(".\n\n")
	}
	s := b.String()
	if len(s) > maxSummary {
		s = cutRunes(s, maxSummary-32) + "\n\n(summary cut)\n\n"
	}
	return []byte(s)
}

// summaryRules writes the summary's table of rules: each one's result as
// JUnit judges it (verdicts, judgeRules'), at most maxSummaryRules of them.
func summaryRules(b *strings.Builder, rep *Report, rules []RuleInfo, verdicts []verdict) {
	if len(rules) > 0 || len(rep.Decisions) > 0 {
		b.WriteString("| rule | kind | result | first reason |\n|---|---|---|---|\n")
		for n, ri := range rules {
			if n == maxSummaryRules {
				fmt.Fprintf(b, "\n... and %d more rules.\n", len(rules)-n)
				break
			}
			res, why := "pass", ""
			switch v := verdicts[n]; {
			case v.failure != nil:
				res, why = "**fail** ("+mdText(v.failure.Type)+")", v.failure.Message
			case v.skipped != nil:
				res, why = "idle", v.skipped.Message
			default:
				why = v.note
			}
			fmt.Fprintf(b, "| %s | %s | %s | %s |\n", mdText(ri.Name), mdText(ri.Kind), res, mdText(why))
		}
		if rep.DecisionsDropped > 0 {
			fmt.Fprintf(b, "\n%d more decisions were not kept in the report.\n", rep.DecisionsDropped)
		}
		b.WriteString("\n")
	}
}

// AppendGitHubSummary appends GitHubSummary(rep, rules) to path (the
// file named by $GITHUB_STEP_SUMMARY; the runner shows it on the job's
// page), in one write(2) of an O_APPEND file.
func AppendGitHubSummary(path string, rep *Report, rules []RuleInfo) error {
	fd, err := openAppend(path)
	if err != nil {
		return fmt.Errorf("step summary: %w", err)
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	if _, err := f.Write(GitHubSummary(rep, rules)); err != nil {
		return fmt.Errorf("step summary %s: %w", path, err)
	}
	return nil
}

// mdText escapes s for a Markdown table cell or paragraph: one line,
// Markdown's punctuation backslash-escaped (CommonMark: any ASCII
// punctuation may be), and <, >, & as HTML entities, so no Markdown or
// HTML of the child's acts on the page.
func mdText(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case unicode.IsControl(r):
			b.WriteByte(' ')
		case r == '<':
			b.WriteString("&lt;")
		case r == '>':
			b.WriteString("&gt;")
		case r == '&':
			b.WriteString("&amp;")
		case strings.ContainsRune("\\`*_{}[]()#+-.!|~", r):
			b.WriteByte('\\')
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// mdSpan makes s safe inside a `code span` outside a table: one line,
// no backtick (a span cannot escape one).
func mdSpan(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '`' {
			return ' '
		}
		return r
	}, s)
}

// shellWords writes argv as a shell would read it back: a word with
// anything but letters, digits and -_./=:,+@% single-quoted.
func shellWords(argv []string) string {
	out := make([]string, len(argv))
	for i, a := range argv {
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%") == "" {
			out[i] = a
		} else {
			out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(out, " ")
}
