package webhook

import (
	"testing"

	"github.com/embargo-dev/embargo/internal/decision"
	"github.com/embargo-dev/embargo/internal/kinds"
)

// FuzzDecodeWorkload: any bytes of any admitted kind decode or fail with an error naming the
// kind; nothing panics, and a decoded workload's containers all come from its spec.
func FuzzDecodeWorkload(f *testing.F) {
	for _, seed := range []struct{ kind, raw string }{
		{"Pod", `{"metadata":{"name":"p"},"spec":{"containers":[{"name":"a","image":"x:1"}]}}`},
		{"Deployment", `{"metadata":{"generateName":"d-"},"spec":{"template":{"spec":{"initContainers":[{"image":"y"}]}}}}`},
		{"CronJob", `{"spec":{"jobTemplate":{"spec":{"template":null}}}}`},
		{"Job", `{"spec":{"template":{"spec":{"ephemeralContainers":[{"name":"e","image":"z"}]}}}}`},
		{"Pod", `{"spec":[]}`},
		{"ConfigMap", `{}`},
		{"StatefulSet", "\x00"},
	} {
		f.Add(seed.kind, []byte(seed.raw))
	}
	f.Fuzz(func(t *testing.T, kind string, raw []byte) {
		w, err := decodeWorkload(kind, raw)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if _, ok := kinds.Lookup(kind); !ok {
			t.Fatalf("kind %q decoded though no pod spec path is known", kind)
		}
		n := len(w.Spec.Containers) + len(w.Spec.InitContainers) + len(w.Spec.EphemeralContainers)
		if got := len(decision.PodContainers(&w.Spec)); got != n {
			t.Fatalf("%d container refs for %d containers", got, n)
		}
		for _, img := range images(decision.PodContainers(&w.Spec)) {
			if img == "" {
				t.Fatal("an empty image listed")
			}
		}
	})
}
