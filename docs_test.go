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

// The seed's missing_docs = deny and unsafe_code = forbid, in Go terms:
// every exported identifier of the project's own code (tests and the
// examples aside) has a doc comment, every package says what it is, and
// no file of the project imports unsafe.

// goFiles parses the project's Go files (testdata, hidden folders and bin
// aside) for which keep says yes.
func goFiles(t *testing.T, mode parser.Mode, keep func(path string) bool) map[string]*ast.File {
	t.Helper()
	out := map[string]*ast.File{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "bin") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || !keep(path) {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, mode)
		if err != nil {
			return err
		}
		out[path] = f
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// documented is the project's own code: no tests, no examples.
func documented(path string) bool {
	return !strings.HasSuffix(path, "_test.go") && !strings.HasPrefix(filepath.ToSlash(path), "examples/")
}

func TestDocComments(t *testing.T) {
	packageDoc := map[string]bool{}
	for path, f := range goFiles(t, parser.ParseComments, documented) {
		dir := filepath.Dir(path)
		packageDoc[dir] = packageDoc[dir] || f.Doc != nil
		for _, name := range undocumented(f) {
			t.Errorf("%s: exported %s has no doc comment", path, name)
		}
	}
	for dir, ok := range packageDoc {
		if !ok {
			t.Errorf("package %s has no package comment (// Package %s ...)", dir, filepath.Base(dir))
		}
	}
}

// undocumented names the exported declarations of f without a doc
// comment: functions, methods of exported types, types, and constants
// and variables (a group's comment covers its members).
func undocumented(f *ast.File) []string {
	var out []string
	for _, decl := range f.Decls {
		switch d := decl.(type) {
		case *ast.FuncDecl:
			if d.Name.IsExported() && receiverExported(d) && d.Doc == nil {
				out = append(out, "func "+d.Name.Name)
			}
		case *ast.GenDecl:
			for _, spec := range d.Specs {
				switch s := spec.(type) {
				case *ast.TypeSpec:
					if s.Name.IsExported() && s.Doc == nil && (d.Lparen.IsValid() || d.Doc == nil) {
						out = append(out, "type "+s.Name.Name)
					}
				case *ast.ValueSpec:
					for _, n := range s.Names {
						if n.IsExported() && s.Doc == nil && d.Doc == nil {
							out = append(out, d.Tok.String()+" "+n.Name)
						}
					}
				}
			}
		}
	}
	return out
}

// receiverExported: a function, or a method whose receiver's type is
// exported (an unexported type's methods are not in the documentation).
func receiverExported(d *ast.FuncDecl) bool {
	if d.Recv == nil || len(d.Recv.List) == 0 {
		return true
	}
	t := d.Recv.List[0].Type
	for {
		switch x := t.(type) {
		case *ast.StarExpr:
			t = x.X
		case *ast.IndexExpr:
			t = x.X
		case *ast.IndexListExpr:
			t = x.X
		case *ast.Ident:
			return x.IsExported()
		default:
			return true
		}
	}
}

// The checker itself: an exported name without a comment is found, one
// with a comment, a grouped constant under a group comment and an
// unexported type's method are not.
func TestUndocumentedFinds(t *testing.T) {
	src := `package p
// A is documented.
type A int
type B int
// Group covers its members.
const (
	C1 = 1
	C2 = 2
)
var D = 1
func (A) M() {}
// N is documented.
func (A) N() {}
type e int
func (e) Hidden() {}
func F() {}
`
	f, err := parser.ParseFile(token.NewFileSet(), "p.go", src, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(undocumented(f), ", "), "type B, var D, func M, func F"; got != want {
		t.Errorf("undocumented = %s, want %s", got, want)
	}
}

func TestNoUnsafe(t *testing.T) {
	all := func(string) bool { return true }
	for path, f := range goFiles(t, parser.ImportsOnly, all) {
		for _, imp := range f.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); p == "unsafe" {
				t.Errorf("%s imports unsafe: the project's code is memory-safe Go (the seed's unsafe_code = forbid)", path)
			}
		}
	}
}
