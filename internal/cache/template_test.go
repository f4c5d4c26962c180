package cache

import (
	"strings"
	"testing"
)

// FuzzUntemplate: untemplate does what a strings.Replacer of its three placeholders does.
func FuzzUntemplate(f *testing.F) {
	for _, s := range []string{"{n}", "a{b{n}", "{u}_{v}", "{", "{{n}}", "{x}{v", "kesl", "=raw{n}", "{n}{u}{v}{"} {
		f.Add(s, "kesl-agent", "12.1")
	}
	f.Fuzz(func(t *testing.T, s, name, version string) {
		want := strings.NewReplacer("{n}", name, "{u}", strings.ReplaceAll(name, "-", "_"), "{v}", version).Replace(s)
		if raw, ok := strings.CutPrefix(s, "="); ok {
			want = raw
		}
		if got := untemplate(s, name, version); got != want {
			t.Errorf("untemplate(%q, %q, %q) = %q, want %q", s, name, version, got, want)
		}
	})
}
