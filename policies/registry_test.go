package policies

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

// Every field of a [[rule]] table belongs to every rule or to at least
// one kind, and every field a kind declares can be written in a table:
// the registry and RuleSpec cannot drift apart.
func TestRegistryCoversRuleSpec(t *testing.T) {
	var spec []string
	rt := reflect.TypeOf(RuleSpec{})
	for i := 0; i < rt.NumField(); i++ {
		name, _, _ := strings.Cut(rt.Field(i).Tag.Get("toml"), ",")
		spec = append(spec, name)
	}
	declared := fieldNames(CommonFields())
	for _, k := range Kinds() {
		if k.build == nil || k.Doc == "" || k.Severity == 0 {
			t.Errorf("kind %q is not fully declared: %+v", k.Name, k)
		}
		for _, f := range k.Fields {
			if !slices.Contains(spec, f.Name) {
				t.Errorf("kind %s declares %q, which RuleSpec has no field for", k.Name, f.Name)
			}
			declared = append(declared, f.Name)
		}
	}
	for _, name := range spec {
		if !slices.Contains(declared, name) {
			t.Errorf("RuleSpec has %q, which no kind declares", name)
		}
	}
}

// A field of one kind in another kind's rule is refused, naming the
// kind's own fields (from the registry).
func TestFieldOfAnotherKind(t *testing.T) {
	_, err := Parse("p.toml", []byte("[[rule]]\nname = \"a\"\nkind = \"max\"\nmetric = \"iter\"\nmax = 3\npatience = 2\n"))
	if err == nil || !strings.Contains(err.Error(), "rule[0].patience: does not apply to a max rule (its fields: max)") {
		t.Errorf("err %v", err)
	}
}

// An unknown key gets the nearest known one, from the struct tags.
func TestUnknownKeyHints(t *testing.T) {
	tests := []struct{ src, want string }{
		{"strikt = true\n", `p.toml:1: strikt: unknown key; did you mean "strict"?`},
		{"[limits]\nmemroy = \"1GiB\"\n", `limits.memroy: unknown key; did you mean "memory"? ([limits]: memory, memory_high, cpus, pids, nofile, nproc, core, as, fsize, cpu_time)`},
		{"[[rule]]\nname = \"a\"\nkind = \"threshold\"\nmetric = \"x\"\nabov = 3\n", `rule[0].abov: unknown key; did you mean "above"? (a threshold rule's own fields: above, below, aggregate, window)`},
		// The second rule's typo: its own index, its own kind's fields
		// (never a stall rule's "goal" for a threshold rule).
		{"[[rule]]\nname = \"a\"\nkind = \"max\"\nmetric = \"x\"\nmax = 3\n[[rule]]\nname = \"b\"\nkind = \"threshold\"\nmetric = \"x\"\nabove = 1\neval = 3\n",
			`p.toml:11: rule[1].eval: unknown key (a threshold rule's own fields: above, below, aggregate, window)`},
		{"[[rule]]\nname = \"a\"\nkind = \"nope\"\nabov = 3\n", `rule[0].abov: unknown key; did you mean "above" (a field of threshold and ratio rules)?`},
		{"[[markers.pattern]]\nregexx = 'a'\n", `markers.pattern.regexx: unknown key; did you mean "regex"?`},
		{"[actions]\nzzzzzz = 1\n", `actions.zzzzzz: unknown key ([actions]: checkpoint_every`},
	}
	for _, tt := range tests {
		_, err := Parse("p.toml", []byte(tt.src))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: err %v, want it to contain %q", tt.src, err, tt.want)
		}
	}
}
