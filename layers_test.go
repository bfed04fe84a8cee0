package main

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/prism-run/prism-run/"

// layerRules guard DESIGN.md's house: for each folder, imports it must not
// have. A rule applies to the folder and everything below it.
var layerRules = []struct {
	dir       string
	forbidden []string // import paths, or prefixes ending in "/"
	why       string
}{
	{"policies", []string{"os/exec", "os/signal", "net", "net/http", "syscall", "golang.org/x/sys/", module},
		"policies is the pure core: no processes, signals, network, or other rooms of the house"},
	{"markers", []string{"os/exec", "os/signal", "net", module + "supervisor", module + "telemetry"},
		"markers only parses output into observations"},
	{"telemetry", []string{"os/exec", module + "supervisor"},
		"telemetry records; it neither runs processes nor reaches into the loop"},
	{"probes", []string{"os/exec", module + "supervisor", module + "policies/missions"},
		"probes turn the host into observations; the supervisor depends on them, not the reverse"},
	{"supervisor", []string{"github.com/NVIDIA/", "github.com/shirou/gopsutil/", module + "probes"},
		"the supervisor depends on its Sampler interface, not on go-nvml, gopsutil or the probes"},
}

// go-nvml may be imported by the GPU probe alone (and its test helper).
var nvmlAllowed = []string{"probes/gpu"}

// Only these folders may start processes: the supervisor (and limits, to
// come), the examples and the test child.
var execAllowed = []string{"supervisor", "limits", "examples", "internal/testchild"}

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
