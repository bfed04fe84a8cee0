package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/prism-run/prism-run/"

// layerRules guard the design's house (docs/DESIGN.md, "The house"): for
// each folder, imports it must not have. A rule applies to the folder and
// everything below it.
var layerRules = []struct {
	dir       string
	forbidden []string // import paths, or prefixes ending in "/"
	why       string
}{
	{"policies", []string{"os/exec", "os/signal", "net", "net/http", "syscall", "golang.org/x/sys/", module},
		"policies is the pure core: no processes, signals, network, or other rooms of the house"},
	{"markers", []string{"os/exec", "os/signal", "net", module + "supervisor", module + "telemetry", module + "internal/"},
		"markers only parses output into observations"},
	{"telemetry", []string{"os/exec", module + "supervisor", module + "internal/"},
		"telemetry records; it neither runs processes nor reaches into the loop, the plan or the command line"},
	{"probes", []string{"os/exec", module + "supervisor", module + "policies/missions", module + "internal/"},
		"probes turn the host into observations; the supervisor depends on them, not the reverse"},
	{"supervisor", []string{"github.com/NVIDIA/", "github.com/shirou/gopsutil/", module + "probes", module + "internal/plan", module + "internal/cli", module + "internal/logging"},
		"the supervisor depends on its Sampler interface and its Config, not on go-nvml, gopsutil, the probes, the plan or the command line"},
	{"limits", []string{module + "supervisor", module + "policies", module + "probes", module + "telemetry", module + "internal/plan", module + "internal/cli"},
		"limits confines a child; what to confine is the plan's"},
	{"internal/plan", []string{module + "internal/cli", "github.com/urfave/"},
		"the plan is below the command line"},
	{"internal/procfs", []string{module},
		"procfs parses /proc and knows no room of the house"},
	{"internal/logging", []string{module},
		"logging sets up the log and knows no room of the house"},
}

// Only the command line parses flags.
var urfaveAllowed = []string{"internal/cli"}

// go-nvml may be imported by the GPU probe alone (and its test helper).
var nvmlAllowed = []string{"probes/gpu"}

// Only these folders may start processes: the supervisor, limits (the
// shim and the watchdog), the examples, the test child and the benchmark
// driver with its baselines (bench: make bench).
var execAllowed = []string{"supervisor", "limits", "examples", "internal/testchild", "bench"}

// maxFuncLines bounds a function outside tests and examples: longer ones
// hide more than one job.
const maxFuncLines = 80

func TestLayers(t *testing.T) {
	fset := token.NewFileSet()
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "bin") && path != "." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		dir := filepath.ToSlash(filepath.Dir(path))
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(p, "github.com/NVIDIA/go-nvml") && !under(dir, nvmlAllowed...) {
				t.Errorf("%s imports %s: only %v may use go-nvml", path, p, nvmlAllowed)
			}
			if strings.HasPrefix(p, "github.com/urfave/cli") && !under(dir, urfaveAllowed...) {
				t.Errorf("%s imports %s: only %v may parse flags", path, p, urfaveAllowed)
			}
			if p == "os/exec" && !under(dir, execAllowed...) {
				t.Errorf("%s imports os/exec: only %v may start processes", path, execAllowed)
			}
			for _, r := range layerRules {
				if !under(dir, r.dir) {
					continue
				}
				for _, bad := range r.forbidden {
					if p == bad || (strings.HasSuffix(bad, "/") && strings.HasPrefix(p, bad) && !strings.HasPrefix(p, module+r.dir)) {
						t.Errorf("%s imports %s: %s", path, p, r.why)
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func under(dir string, roots ...string) bool {
	for _, r := range roots {
		if dir == r || strings.HasPrefix(dir, r+"/") {
			return true
		}
	}
	return false
}

// The root holds the entry point only (and tests): the rest of the house
// has rooms of its own.
func TestRootHoldsMainOnly(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if f != "main.go" && !strings.HasSuffix(f, "_test.go") {
			t.Errorf("%s: the root holds main.go only; give it a room of its own", f)
		}
	}
}

// No function outside tests and examples is longer than maxFuncLines.
func TestFunctionLength(t *testing.T) {
	fset := token.NewFileSet()
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != "." || d.Name() == "testdata" || d.Name() == "examples") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			fd, ok := decl.(*ast.FuncDecl)
			if !ok {
				continue
			}
			if n := fset.Position(fd.End()).Line - fset.Position(fd.Pos()).Line + 1; n > maxFuncLines {
				t.Errorf("%s: %s is %d lines, more than %d: split it", path, fd.Name.Name, n, maxFuncLines)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
