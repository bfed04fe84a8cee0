package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/prism-run/prism-run/policies"
)

// MaxMetricMarkers bounds the marker names prism_marker keeps a series
// for: a child printing ever-new names must not grow the scrape without
// end (the rest are counted in prism_marker_names_dropped_total).
const MaxMetricMarkers = 1024

// Metrics is the run in Prometheus terms (base units, _total counters,
// _ratio for 0..1), on its own registry (never the package-global one):
// served on --metrics-listen and written as a node_exporter textfile.
// Its methods are a supervisor sink: each updates in-memory metrics
// (atomic adds and sets; a new label set takes the vector's lock for
// the moment it is added) and returns at once, never waiting on a
// scrape or a disk.
type Metrics struct {
	Reg *prometheus.Registry

	up, memory, memoryPeak *prometheus.GaugeVec
	gpuMemory, gpuUtil     *prometheus.GaugeVec
	marker                 *prometheus.GaugeVec
	markersDropped         prometheus.Counter
	latency                prometheus.Histogram
	violations             *prometheus.CounterVec
	restarts, checkpoints  prometheus.Counter

	mu    sync.Mutex // guards names and peak
	names map[string]bool
	peak  float64
}

// MetricsInfo is what labels every series (Labels: --label k=v, the
// Slurm job, the host) and what prism_run_info says.
type MetricsInfo struct {
	Labels           map[string]string
	Mission, Version string
}

// NewMetrics registers the run's metrics, the Go runtime's and the
// process's on a new registry.
func NewMetrics(info MetricsInfo) *Metrics {
	reg := prometheus.NewRegistry()
	f := prometheusFactory{reg: reg, labels: prometheus.Labels(info.Labels)}
	m := &Metrics{Reg: reg, names: map[string]bool{}}
	m.up = f.gauge("prism_child_up", "1 while a child of the run is running, 0 between children and after the end")
	m.memory = f.gauge("prism_child_memory_bytes", "memory of the child's tree (its cgroup, or summed over its processes)")
	m.memoryPeak = f.gauge("prism_child_memory_peak_bytes", "the highest prism_child_memory_bytes sampled in the run")
	m.gpuMemory = f.gauge("prism_gpu_memory_used_bytes", "GPU memory used by the child's processes", "gpu")
	m.gpuUtil = f.gauge("prism_gpu_utilization_ratio", "utilization of the GPU the child uses, 0..1", "gpu")
	m.marker = f.gauge("prism_marker", "the last value of each marker the child printed (the first 1024 names)", "name")
	m.markersDropped = f.counter("prism_marker_names_dropped_total", "marker observations of names past the first 1024, not exported")
	m.latency = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "prism_marker_latency_seconds",
		Help: "latency_ms markers, in seconds", ConstLabels: f.labels,
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)})
	reg.MustRegister(m.latency)
	m.violations = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "prism_violations_total",
		Help: "the rules' decisions", ConstLabels: f.labels}, []string{"rule", "severity"})
	reg.MustRegister(m.violations)
	m.restarts = f.counter("prism_restarts_total", "children started again after the first (restarts and the fallback)")
	m.checkpoints = f.counter("prism_checkpoints_total", "checkpoints the child acknowledged")
	info1 := f.gauge("prism_run_info", "1, labelled with the run's mission and prism-run's version", "mission", "version")
	info1.WithLabelValues(info.Mission, info.Version).Set(1)
	m.up.WithLabelValues().Set(0)
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

type prometheusFactory struct {
	reg    *prometheus.Registry
	labels prometheus.Labels
}

func (f prometheusFactory) gauge(name, help string, labels ...string) *prometheus.GaugeVec {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: f.labels}, labels)
	f.reg.MustRegister(g)
	return g
}

func (f prometheusFactory) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: f.labels})
	f.reg.MustRegister(c)
	return c
}

// Observe updates the metric an observation feeds.
func (m *Metrics) Observe(o policies.Observation) {
	if o.Text != "" {
		return
	}
	gpu := o.Labels["gpu"]
	if gpu == "" {
		gpu = "all"
	}
	switch {
	case o.Source == policies.SourceProbe && o.Name == policies.NameMemory:
		m.memory.WithLabelValues().Set(o.Value)
		m.mu.Lock()
		if o.Value > m.peak {
			m.peak = o.Value
		}
		peak := m.peak
		m.mu.Unlock()
		m.memoryPeak.WithLabelValues().Set(peak)
	case o.Source == policies.SourceProbe && o.Name == policies.NameGPUMemory:
		m.gpuMemory.WithLabelValues(gpu).Set(o.Value)
	case o.Source == policies.SourceProbe && o.Name == policies.NameGPUUtil:
		m.gpuUtil.WithLabelValues(gpu).Set(o.Value)
	case o.Source == policies.SourceStdout || o.Source == policies.SourceStderr:
		if o.Name == policies.NameLatency && o.Value >= 0 { // NaN fails the test too: it would poison the sum for good
			m.latency.Observe(o.Value / 1000)
		}
		m.mu.Lock()
		known := m.names[o.Name]
		if !known && len(m.names) < MaxMetricMarkers {
			m.names[o.Name], known = true, true
		}
		m.mu.Unlock()
		if !known {
			m.markersDropped.Inc()
			return
		}
		m.marker.WithLabelValues(o.Name).Set(o.Value)
	}
}

// Signal does nothing: a signal is no metric.
func (m *Metrics) Signal(time.Time, string) {}

// Violation counts a decision of the rules.
func (m *Metrics) Violation(v Violation) {
	m.violations.WithLabelValues(v.Rule, v.Severity.String()).Inc()
}

// Event follows the children: up, restarts, checkpoints.
func (m *Metrics) Event(e Event) {
	switch e.Kind {
	case EventStarted:
		m.up.WithLabelValues().Set(1)
		if e.Restart {
			m.restarts.Inc()
		}
	case EventEnded:
		m.up.WithLabelValues().Set(0)
	case EventCheckpointed:
		m.checkpoints.Inc()
	}
}

// WriteTextfile writes the prism_* metrics to path in the text format of
// node_exporter's textfile collector, atomically (a temporary file
// renamed over path: prometheus.WriteToTextfile). The Go and process
// series are left out: node_exporter has its own of those names, and
// would refuse the file's as duplicates.
func (m *Metrics) WriteTextfile(path string) error {
	own := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		mfs, err := m.Reg.Gather()
		return slices.DeleteFunc(mfs, func(mf *dto.MetricFamily) bool { return !strings.HasPrefix(mf.GetName(), "prism_") }), err
	})
	return prometheus.WriteToTextfile(path, own)
}

// ReservedLabels are the label names the metrics use themselves (and
// Prometheus' own): --label may not take them.
func ReservedLabels() []string {
	return []string{"name", "gpu", "rule", "severity", "mission", "version", "le", "quantile", "job", "instance"}
}

// ListenAddr reads --metrics-listen: a bare ":PORT" binds the loopback
// interface only (metrics name the job and its host: not for the whole
// network unless asked); any other interface only when written out
// ("0.0.0.0:9100", "[::]:9100", "10.1.2.3:9100").
func ListenAddr(s string) (string, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", fmt.Errorf("want HOST:PORT or :PORT: %v", err)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

// Serve listens on addr (ListenAddr's form) and serves /metrics until
// the returned stop is called. Listening happens now, so a port in use
// is known before the child starts.
func (m *Metrics) Serve(addr string) (bound string, stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.Reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		_, _ = fmt.Fprintln(w, "prism-run: metrics at /metrics")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return ln.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			_ = srv.Close()
		}
	}, nil
}

// ParseLabel reads --label k=v: a Prometheus label name and a value.
func ParseLabel(s string) (string, string, error) {
	k, v, ok := strings.Cut(s, "=")
	switch {
	case !ok || !labelName(k) || strings.HasPrefix(k, "__"):
		return "", "", fmt.Errorf("%q: want NAME=VALUE, NAME as Prometheus takes it ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)", s)
	case slices.Contains(ReservedLabels(), k):
		return "", "", fmt.Errorf("%q: %s is a label prism-run's metrics use (or Prometheus'): pick another name", s, k)
	case !utf8.ValidString(v):
		return "", "", fmt.Errorf("%q: the value is not UTF-8", s)
	}
	return k, v, nil
}

func labelName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
