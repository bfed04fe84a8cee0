package telemetry

import (
	"bytes"
	"fmt"
	"html/template"
	"math"
	"strings"
	"sync"
)

// chart is one series drawn as an SVG polyline, with the run's events as
// vertical lines on the same time axis.
type chart struct {
	Title          string
	Points         string // SVG polyline points
	Marks          []mark
	YMin, YMax     string
	TMax           string
	Width, Height  int
	PlotX, PlotW   int
	PlotY, PlotH   int
	Count, Dropped int
}

type mark struct {
	X     float64
	Class string
	Title string
}

// WriteHTML writes the run's HTML report to path, atomically: one file
// with no outside reference (inline CSS and SVG, no script, no network),
// charts of every series of tl over time with violations, checkpoints
// and restarts marked, then the report's facts. tl may be nil (a run
// that never started a child): the facts alone.
func WriteHTML(path string, rep *Report, tl *Timeline) error {
	data := struct {
		R      *Report
		Charts []chart
		Events []TimelineEvent
		Lost   int
		JSON   string
	}{R: rep}
	if tl != nil {
		tl.mu.Lock()
		data.Charts = charts(tl, rep)
		data.Events = append([]TimelineEvent(nil), tl.Events...)
		data.Lost = tl.Dropped
		tl.mu.Unlock()
	}
	var buf bytes.Buffer
	if err := htmlPage().Execute(&buf, data); err != nil {
		return fmt.Errorf("telemetry: html report: %w", err)
	}
	return writeAtomic(path, buf.Bytes())
}

func charts(tl *Timeline, rep *Report) []chart {
	end := rep.End.Sub(tl.Start).Seconds()
	for _, e := range tl.Events {
		end = math.Max(end, e.T)
	}
	var out []chart
	for _, s := range tl.ordered() {
		if len(s.T) == 0 {
			continue
		}
		tmax := math.Max(end, s.T[len(s.T)-1])
		if tmax <= 0 {
			tmax = 1
		}
		lo, hi := s.V[0], s.V[0]
		for _, v := range s.V {
			if !math.IsInf(v, 0) {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
		if hi == lo {
			hi, lo = hi+1, lo-1
		}
		c := chart{Title: s.Name, Width: 900, Height: 180, PlotX: 70, PlotW: 810, PlotY: 10, PlotH: 140, Count: len(s.T),
			YMin: fmtUnit(lo, s.Unit), YMax: fmtUnit(hi, s.Unit), TMax: fmt.Sprintf("%.1fs", tmax)}
		var pts strings.Builder
		for i := range s.T {
			v := math.Max(lo, math.Min(hi, s.V[i]))
			x := float64(c.PlotX) + s.T[i]/tmax*float64(c.PlotW)
			// Halves first: hi-lo of ±1e308 would overflow to Inf.
			y := float64(c.PlotY) + (1-(v/2-lo/2)/(hi/2-lo/2))*float64(c.PlotH)
			fmt.Fprintf(&pts, "%.1f,%.1f ", x, y)
			if len(s.T) == 1 { // one point: a short dash, so it shows
				fmt.Fprintf(&pts, "%.1f,%.1f ", x+4, y)
			}
		}
		c.Points = pts.String()
		for _, e := range tl.Events {
			c.Marks = append(c.Marks, mark{X: float64(c.PlotX) + e.T/tmax*float64(c.PlotW), Class: e.Kind + " " + e.Sev,
				Title: fmt.Sprintf("%.1fs %s", e.T, e.Text)})
		}
		out = append(out, c)
	}
	return out
}

func fmtUnit(v float64, unit string) string {
	switch unit {
	case "bytes":
		return bytesIEC(v)
	case "ratio":
		return fmt.Sprintf("%.0f%%", v*100)
	}
	return fmt.Sprintf("%.4g", v)
}

var htmlPage = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>prism-run {{.R.RunID}}: {{.R.Reason}}, exit {{.R.Exit}}</title>
<style>
body{font:14px system-ui,sans-serif;margin:24px;color:#222;background:#fff}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}
.verdict{padding:10px 14px;border-left:6px solid #888;background:#f4f4f4}
.verdict.ok{border-color:#2a7}.verdict.failed{border-color:#c33}
table{border-collapse:collapse}td,th{padding:3px 10px;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}
svg.chart{display:block;margin:6px 0 18px;background:#fafafa;border:1px solid #ddd}
svg.chart polyline{fill:none;stroke:#2563eb;stroke-width:1.5}
svg.chart line.violation{stroke:#dc2626}svg.chart line.checkpoint{stroke:#16a34a}svg.chart line.restart{stroke:#ea580c;stroke-dasharray:4 3}
svg.chart text{font-size:11px;fill:#555}
.legend span{margin-right:16px}.legend i{display:inline-block;width:14px;height:3px;vertical-align:middle;margin-right:4px}
</style></head><body>
<h1>prism-run {{.R.RunID}}</h1>
<p class="verdict {{if eq .R.Exit 0}}ok{{else}}failed{{end}}"><b>exit {{.R.Exit}}</b> ({{.R.Reason}}{{if .R.Rule}}, rule {{.R.Rule}}{{end}}): {{.R.Message}}</p>
<h2>Over time</h2>
<p class="legend"><span><i style="background:#2563eb"></i>value</span><span><i style="background:#dc2626"></i>violation</span><span><i style="background:#16a34a"></i>checkpoint</span><span><i style="background:#ea580c"></i>restart</span></p>
{{range .Charts}}<div class="series"><b>{{.Title}}</b> ({{.Count}} points)
<svg class="chart" data-series="{{.Title}}" width="{{.Width}}" height="{{.Height}}" viewBox="0 0 {{.Width}} {{.Height}}" role="img" aria-label="{{.Title}} over time">
<line x1="{{.PlotX}}" y1="10" x2="{{.PlotX}}" y2="150" stroke="#999"/><line x1="{{.PlotX}}" y1="150" x2="880" y2="150" stroke="#999"/>
<text x="4" y="16">{{.YMax}}</text><text x="4" y="150">{{.YMin}}</text><text x="{{.PlotX}}" y="168">0s</text><text x="840" y="168">{{.TMax}}</text>
{{range .Marks}}<line class="{{.Class}}" x1="{{printf "%.1f" .X}}" y1="10" x2="{{printf "%.1f" .X}}" y2="150"><title>{{.Title}}</title></line>{{end}}
<polyline points="{{.Points}}"/>
</svg></div>
{{else}}<p>No series: the run observed no numbers over time.</p>{{end}}
{{if .Lost}}<p>{{.Lost}} observations or events past the report's bounds were not charted.</p>{{end}}
{{if .Events}}<h2>Events</h2><table><tr><th>time</th><th>what</th><th></th></tr>
{{range .Events}}<tr><td>{{printf "%.3fs" .T}}</td><td>{{.Kind}} {{.Sev}}</td><td>{{.Text}}</td></tr>{{end}}</table>{{end}}
<h2>The run</h2><table>
<tr><th>command</th><td>{{range .R.Command}}{{.}} {{end}}</td></tr>
{{if .R.Mission}}<tr><th>mission</th><td>{{.R.Mission}}</td></tr>{{end}}
<tr><th>seed</th><td>{{.R.Seed}}</td></tr>
<tr><th>start</th><td>{{.R.Start.UTC.Format "2006-01-02 15:04:05.000 MST"}}</td></tr><tr><th>end</th><td>{{.R.End.UTC.Format "2006-01-02 15:04:05.000 MST"}}</td></tr>
<tr><th>duration</th><td>{{printf "%.3f" .R.DurationSeconds}} s</td></tr>
<tr><th>attempts</th><td>{{.R.Attempts}}</td></tr>
{{with .R.Host}}<tr><th>host</th><td>{{.Name}}, cgroup {{.CgroupMode}}, NVML {{.NVML}}{{if .GPUs}}, GPUs {{.GPUs}}{{end}}</td></tr>{{end}}
{{with .R.Cgroup}}<tr><th>cgroup</th><td>{{.Mode}} {{.Path}}: memory limit {{if .MemoryLimit}}{{.MemoryLimit}} bytes{{else}}none{{end}}, peak {{.MemoryPeak}} bytes, OOM kills {{.OOMKills}}, forks refused {{.ForksRefused}}</td></tr>{{end}}
{{range $k, $v := .R.Peaks}}<tr><th>peak {{$k}}</th><td>{{printf "%.6g" $v}}</td></tr>{{end}}
</table>
{{if .R.Enforced}}<h2>Enforced</h2><table>{{range .R.Enforced}}<tr><td>{{.What}}</td><td>{{.Name}}</td><td>{{.Value}}</td></tr>{{end}}</table>{{end}}
{{if .R.NotEnforced}}<h2>Not enforced</h2><table>{{range .R.NotEnforced}}<tr><td>{{.Setting}}</td><td>{{.Why}}</td></tr>{{end}}</table>{{end}}
{{if .R.Checkpoints}}<h2>Checkpoints</h2><table>{{range .R.Checkpoints}}<tr><td>{{.Time.UTC.Format "15:04:05.000"}}</td><td>{{.Path}}</td><td>{{.Rule}}</td></tr>{{end}}</table>{{end}}
{{if .R.AttemptLog}}<h2>Attempts</h2><table><tr><th>n</th><th>start</th><th>exit</th><th>reason</th><th>resumed from</th><th>next</th></tr>{{range .R.AttemptLog}}<tr><td>{{.N}}</td><td>{{.Start.UTC.Format "2006-01-02 15:04:05.000"}}</td><td>{{if .Exit}}{{.Exit}}{{end}}</td><td>{{.Reason}}</td><td>{{.Resume}}</td><td>{{.Next}}</td></tr>{{end}}</table>{{end}}
{{if .R.Decisions}}<h2>Decisions</h2><table>{{range .R.Decisions}}<tr><td>{{.Time.UTC.Format "15:04:05.000"}}</td><td>{{.Rule}}</td><td>{{.Severity}}</td><td>{{.Action}}</td><td>{{.Reason}}</td></tr>{{end}}</table>{{end}}
</body></html>
`))
})
