package telemetry

import (
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"testing"

	"github.com/prism-run/prism-run/policies"
)

// exportedNames are the metric families a run exports once it has seen a
// child start, a checkpoint, a violation, markers and probe samples.
func exportedNames(t *testing.T) []string {
	t.Helper()
	m := NewMetrics(MetricsInfo{Mission: "pwsa", Version: "dev"})
	m.Event(Event{Kind: EventStarted, Restart: true})
	m.Event(Event{Kind: EventCheckpointed})
	m.Violation(Violation{Decision: policies.Decision{Rule: "r", Severity: policies.SeverityHigh}})
	for _, o := range []policies.Observation{
		{Source: policies.SourceStdout, Name: policies.NameLatency, Value: 3},
		{Source: policies.SourceProbe, Name: policies.NameMemory, Value: 1},
		{Source: policies.SourceProbe, Name: policies.NameGPUMemory, Value: 1, Labels: map[string]string{"gpu": "0"}},
		{Source: policies.SourceProbe, Name: policies.NameGPUUtil, Value: 0.5, Labels: map[string]string{"gpu": "0"}},
	} {
		m.Observe(o)
	}
	mfs, err := m.Reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
		if mf.GetType().String() == "HISTOGRAM" {
			names = append(names, mf.GetName()+"_bucket", mf.GetName()+"_sum", mf.GetName()+"_count")
		}
	}
	return names
}

// The Grafana dashboard queries only metrics prism-run exports, and
// every prism_* family of the metrics is on it.
func TestGrafanaDashboardMatchesTheMetrics(t *testing.T) {
	b, err := os.ReadFile("../examples/grafana/prism-run.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash map[string]any
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	names := exportedNames(t)
	used := map[string]bool{}
	for _, m := range regexp.MustCompile(`\bprism_[a-z_]+`).FindAllString(string(b), -1) {
		if !slices.Contains(names, m) {
			t.Errorf("the dashboard queries %s, which prism-run does not export", m)
		}
		used[m] = true
	}
	for _, n := range names {
		base := regexp.MustCompile(`_(bucket|sum|count)$`).ReplaceAllString(n, "")
		if regexp.MustCompile(`^prism_`).MatchString(n) && !used[n] && !used[base] && !used[base+"_bucket"] && n != "prism_marker_names_dropped_total" {
			t.Errorf("prism-run exports %s, which the dashboard does not show", n)
		}
	}
}

// The example Prometheus configuration is one Prometheus accepts.
func TestPrometheusExampleConfig(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("needs promtool (Debian's prometheus package; .ci/run installs it)")
	}
	out, err := exec.Command(promtool, "check", "config", "../examples/prometheus/prometheus.yml").CombinedOutput()
	if err != nil {
		t.Fatalf("promtool: %v\n%s", err, out)
	}
}
