package telemetry

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prism-run/prism-run/policies"
)

// Status keeps what the live status line shows: elapsed time, the
// iteration, the main metric (loss, else the first other marker the
// child printed), the latency p99 over the last 1000 latency_ms markers,
// memory, GPU memory and restarts. As a sink it takes the run's
// observations and events (each under a short lock, no I/O); Line
// formats them, for the terminal writer's ticker.
type Status struct {
	Nop
	mu       sync.Mutex
	start    time.Time
	iter     string
	main     string
	mainVal  string
	lat      []float64 // ring of the last latencies, ms
	latNext  int
	memory   float64
	gpu      float64
	restarts int
	running  bool
}

// statusLatencies is how many latency_ms values the p99 is over.
const statusLatencies = 1000

// NewStatus starts the elapsed time at start.
func NewStatus(start time.Time) *Status { return &Status{start: start} }

// Observe keeps what the line shows of o.
func (s *Status) Observe(o policies.Observation) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case o.Source == policies.SourceProbe && o.Name == policies.NameMemory:
		s.memory = o.Value
	case o.Source == policies.SourceProbe && o.Name == policies.NameGPUMemory:
		s.gpu = o.Value
	case o.Source == policies.SourceProbe || o.Text != "":
	case o.Name == policies.NameIter:
		s.iter = strconv.FormatFloat(o.Value, 'f', -1, 64)
	case o.Name == policies.NameLatency:
		if len(s.lat) < statusLatencies {
			s.lat = append(s.lat, o.Value)
		} else {
			s.lat[s.latNext] = o.Value
			s.latNext = (s.latNext + 1) % statusLatencies
		}
	default: // the main metric: loss once seen, else the first other marker
		if s.main == "" || o.Name == policies.NameLoss {
			s.main = o.Name
		}
		if o.Name == s.main {
			s.mainVal = strconv.FormatFloat(o.Value, 'g', 4, 64)
		}
	}
}

// Event counts restarts and follows whether a child runs.
func (s *Status) Event(e Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch e.Kind {
	case EventStarted:
		s.running = true
		if e.Restart {
			s.restarts++
		}
	case EventEnded:
		s.running = false
	}
}

// Line is the status line at now, one terminal line of at most width
// columns (0: no limit).
func (s *Status) Line(now time.Time, width int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	el := now.Sub(s.start).Round(time.Second)
	line := fmt.Sprintf("prism-run %02d:%02d:%02d", int(el.Hours()), int(el.Minutes())%60, int(el.Seconds())%60)
	if !s.running {
		line += " (between children)"
	}
	if s.iter != "" {
		line += " iter=" + s.iter
	}
	if s.main != "" {
		line += " " + s.main + "=" + s.mainVal
	}
	if len(s.lat) > 0 {
		line += fmt.Sprintf(" p99=%.3gms", p99(s.lat))
	}
	if s.memory > 0 {
		line += " mem=" + bytesIEC(s.memory)
	}
	if s.gpu > 0 {
		line += " gpu=" + bytesIEC(s.gpu)
	}
	if s.restarts > 0 {
		line += fmt.Sprintf(" restarts=%d", s.restarts)
	}
	if r := []rune(line); width > 1 && len(r) >= width {
		line = string(r[:width-1]) // never wrap: a wrapped line cannot be erased with one ESC[K
	}
	return line
}

func p99(v []float64) float64 {
	c := slices.Clone(v)
	slices.Sort(c)
	return c[int(math.Ceil(0.99*float64(len(c))))-1]
}

func bytesIEC(b float64) string {
	const unit = 1024
	if b < unit {
		return fmt.Sprintf("%.0fB", b)
	}
	exp, v := 0, b/unit
	for v >= unit && exp < 4 {
		v /= unit
		exp++
	}
	return fmt.Sprintf("%.1f%ciB", v, "KMGTP"[exp])
}
