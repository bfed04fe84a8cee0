package main

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// .golangci.yml's depguard rules mirror the house rules of layers_test.go,
// so that golangci-lint (make validate, an editor) shows a broken layer
// at once: a room, an import or an allowed folder added to one and not
// the other fails here.
func TestGolangciMirrorsLayers(t *testing.T) {
	b, err := os.ReadFile(".golangci.yml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(b)
	pkgRe, descRe := regexp.MustCompile(`- pkg: "([^"]+)"`), regexp.MustCompile(`desc: "([^"]*)"`)
	for _, r := range layerRules {
		name := "layer-" + strings.ReplaceAll(r.dir, "/", "-")
		rule := depguardRule(t, cfg, name)
		if !strings.Contains(rule, `files: ["**/`+r.dir+`/**", "!$test"]`) {
			t.Errorf("%s: its files are not %s's non-test files", name, r.dir)
		}
		var want []string
		for _, f := range r.forbidden {
			if !strings.HasSuffix(f, "/") {
				f += "$" // depguard: an exact match
			}
			want = append(want, f)
		}
		if got := submatches(pkgRe, rule); !slices.Equal(got, want) {
			t.Errorf("%s denies %q, layers_test.go %q", name, got, want)
		}
		for _, d := range submatches(descRe, rule) {
			if d != r.why {
				t.Errorf("%s: desc %q, layers_test.go says %q", name, d, r.why)
			}
		}
		// layers_test.go lets a room import its own subtree.
		if slices.Contains(r.forbidden, module) && !strings.Contains(rule, `allow: ["`+module+r.dir+`/"]`) {
			t.Errorf("%s denies the module without allowing %s's own packages", name, r.dir)
		}
	}
	if n := strings.Count(cfg, "\n        layer-"); n != len(layerRules) {
		t.Errorf(".golangci.yml has %d layer rules, layers_test.go %d", n, len(layerRules))
	}
	folderRe := regexp.MustCompile(`"!\*\*/([^"]+)/\*\*"`)
	for name, allowed := range map[string][]string{"nvml-in-the-gpu-probe": nvmlAllowed, "flags-in-the-cli": urfaveAllowed, "processes": execAllowed} {
		if got := submatches(folderRe, depguardRule(t, cfg, name)); !slices.Equal(got, allowed) {
			t.Errorf("%s exempts %q, layers_test.go allows %q", name, got, allowed)
		}
	}
}

// depguardRule is the text of one depguard rule of the configuration: its
// line and those indented below it.
func depguardRule(t *testing.T, cfg, name string) string {
	t.Helper()
	start := strings.Index(cfg, "\n        "+name+":\n")
	if start < 0 {
		t.Fatalf(".golangci.yml has no depguard rule %s", name)
	}
	rest := cfg[start+1:]
	lines := strings.SplitAfter(rest, "\n")
	n := len(lines[0])
	for _, l := range lines[1:] {
		if !strings.HasPrefix(l, "         ") {
			break
		}
		n += len(l)
	}
	return rest[:n]
}

func submatches(re *regexp.Regexp, s string) []string {
	var out []string
	for _, m := range re.FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	return out
}
