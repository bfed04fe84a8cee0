package cli

import (
	"os"
	"strings"
	"testing"

	"github.com/prism-run/prism-run/telemetry"
)

// Every flag of a run is in the README's flag table (or its usage block) (a flag a user cannot
// find is a flag they do not have).
func TestReadmeNamesEveryFlag(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var table []string
	for _, l := range strings.Split(string(b), "\n") {
		// The flag table, and the usage block's "prism-run version | --version".
		if strings.HasPrefix(l, "| `--") || strings.HasPrefix(l, "prism-run ") {
			table = append(table, l)
		}
	}
	app := newApp(IO{}, Build{}, Deps{}, nil, new(*telemetry.Report))
	for _, f := range app.Flags {
		name := "`--" + f.Names()[0]
		found := false
		for _, l := range table {
			found = found || strings.Contains(l, name+"`") || strings.Contains(l, name+" ") || strings.HasSuffix(l, "| "+name[1:])
		}
		if !found {
			t.Errorf("README's flag table has no %s`", name)
		}
	}
}
