package telemetry

import (
	"bytes"
	"encoding/json"
	"flag"
	"go/ast"
	"go/parser"
	"go/token"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/prism-run/prism-run/limits"
	"github.com/prism-run/prism-run/policies"
)

var update = flag.Bool("update", false, "rewrite docs/report.schema.json from the Report type")

const schemaPath = "../docs/report.schema.json"

// docs reads the doc comments of the struct fields in dirs: "Type.Field"
// -> the comment, one line.
func docs(t *testing.T, dirs ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	fset := token.NewFileSet()
	for _, dir := range dirs {
		files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			file, err := parser.ParseFile(fset, f, nil, parser.ParseComments)
			if err != nil {
				t.Fatal(err)
			}
			ast.Inspect(file, func(n ast.Node) bool {
				ts, ok := n.(*ast.TypeSpec)
				if !ok {
					return true
				}
				st, ok := ts.Type.(*ast.StructType)
				if !ok {
					return true
				}
				for _, fld := range st.Fields.List {
					text := strings.TrimSpace(fld.Doc.Text() + " " + fld.Comment.Text())
					for _, name := range fld.Names {
						out[ts.Name.Name+"."+name.Name] = strings.Join(strings.Fields(text), " ")
					}
				}
				return true
			})
		}
	}
	return out
}

var (
	timeType  = reflect.TypeFor[time.Time]()
	floatType = reflect.TypeFor[Float]()
)

// schemaOf is the JSON Schema of what encoding/json writes for t.
func schemaOf(t reflect.Type, doc map[string]string) map[string]any {
	switch {
	case t == timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case t == floatType:
		return map[string]any{"oneOf": []any{map[string]any{"type": "number"},
			map[string]any{"type": "string", "enum": []any{"NaN", "+Inf", "-Inf"}}}}
	case t == reflect.TypeFor[policies.Severity]():
		return map[string]any{"type": "string", "enum": []any{"low", "medium", "high", "critical"}}
	case t == reflect.TypeFor[Reason]():
		var rs []any
		for _, r := range Reasons() {
			rs = append(rs, string(r))
		}
		return map[string]any{"type": "string", "enum": rs}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return schemaOf(t.Elem(), doc)
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int64, reflect.Uint64, reflect.Int32:
		return map[string]any{"type": "integer"}
	case reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice:
		return map[string]any{"type": "array", "items": schemaOf(t.Elem(), doc)}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": schemaOf(t.Elem(), doc)}
	case reflect.Struct:
		props, req := map[string]any{}, []any{}
		structFields(t, doc, props, &req)
		return map[string]any{"type": "object", "properties": props, "required": req, "additionalProperties": false}
	}
	panic("no schema for " + t.String())
}

func structFields(t reflect.Type, doc map[string]string, props map[string]any, req *[]any) {
	for f := range t.Fields() {
		if f.Anonymous {
			structFields(f.Type, doc, props, req)
			continue
		}
		tag := f.Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		s := schemaOf(f.Type, doc)
		if d := doc[t.Name()+"."+f.Name]; d != "" {
			s["description"] = d
		}
		props[name] = s
		if !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") && f.Type.Kind() != reflect.Pointer {
			*req = append(*req, name)
		}
	}
}

func reportSchema(t *testing.T) []byte {
	s := schemaOf(reflect.TypeFor[Report](), docs(t, ".", "../policies", "../limits"))
	s["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	s["$id"] = "https://github.com/prism-run/prism-run/docs/report.schema.json"
	s["title"] = "prism-run run report (--report)"
	s["description"] = "What one prism-run invocation did and why it ended, written atomically on every exit path. Generated from telemetry.Report by `go test ./telemetry -run TestReportSchema -update`."
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// The schema in docs is the Report type's: a field added without the
// schema (or the other way round) fails here (-update rewrites it).
func TestReportSchema(t *testing.T) {
	want := reportSchema(t)
	if *update {
		if err := os.WriteFile(schemaPath, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(schemaPath)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("%s is not the Report type's schema (%v): go test ./telemetry -run TestReportSchema -update", schemaPath, err)
	}
}

// CompileReportSchema compiles the schema file.
func compileReportSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	s, err := c.Compile(schemaPath)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A report with every part filled in is valid under the schema; one
// with a wrong type or an unknown field is not.
func TestReportValidates(t *testing.T) {
	s := compileReportSchema(t)
	seven, now := 7, time.Now()
	rep := NewReport("r1", now)
	rep.Command, rep.End, rep.Exit, rep.Reason, rep.Message = []string{"./solver"}, now, 75, ReasonPolicy, "stopped"
	rep.Host = &HostFacts{Name: "n", CgroupMode: "v1", NVML: "used", GPUs: []int{0}}
	rep.Slurm = &SlurmFacts{JobID: "42", RestartCount: 1, ArrayJobID: "40", ArrayTaskID: "3"}
	rep.AttemptLog = []Attempt{{N: 0, RunID: "r1", Start: now, End: now, Exit: &seven, Reason: ReasonExited, Counted: true}}
	rep.Recovery = &Recovery{Restarts: 1, Deleted: []string{"/ck/1"}}
	rep.Alerts = &AlertCounts{Sent: 1}
	rep.Peaks["memory_bytes"] = Float(math.NaN())
	rep.Markers["loss"] = MarkerStat{Count: 1, Last: 0.5, Time: now}
	rep.Checkpoints = []Checkpoint{{Path: "/ck/1", Time: now, Rule: "timeout"}}
	rep.Decisions = []policies.Decision{{Time: now, Rule: "r", Kind: "max", Severity: policies.SeverityHigh, Action: policies.ActionStop, ExitCode: &seven, Since: now}}
	rep.Cgroup = &CgroupReport{Mode: "v1", OOMVictims: []limits.OOMKill{{PID: 1, Task: "x"}}}
	rep.Enforced = []Enforced{{What: "rlimit", Name: "nofile", Value: "64"}}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	_ = json.Unmarshal(b, &v)
	if err := s.Validate(v); err != nil {
		t.Fatalf("a full report is not valid: %v", err)
	}
	bad := v.(map[string]any)
	bad["exit_code"] = "75"
	if s.Validate(bad) == nil {
		t.Error("exit_code as a string validated")
	}
	bad["exit_code"], bad["surprise"] = 75, true
	if s.Validate(bad) == nil {
		t.Error("an unknown field validated")
	}
}
