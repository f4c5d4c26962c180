package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/embargo-dev/embargo/internal/imagebuild"
	"github.com/embargo-dev/embargo/internal/test/devcluster"
)

// TestImageDogfood scans Embargo's own image, as `make image` built it (bin/image, or
// $EMBARGO_IMAGE_LAYOUT), with the CLI's default policy: it must pass its own gate.
func TestImageDogfood(t *testing.T) {
	t.Parallel()
	idx, err := imagebuild.ReadLayout(imageLayout())
	if err != nil {
		t.Fatalf("EMBARGO_IMAGE_LAYOUT: %v (`make test` builds it; by hand: make image)", err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var platforms []string
	for _, d := range im.Manifests {
		platforms = append(platforms, d.Platform.String())
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ref := cluster.Registry.Host + "/embargo-dev/embargo:dogfood"
	pushed, err := imagebuild.PushLayout(ctx, imageLayout(), ref, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("pushed %s (%v)", pushed, platforms)

	r := devcluster.Run(ctx, root, append(os.Environ(), "HOME="+t.TempDir()), "", filepath.Join(binDir, "embargo"), "scan", "--insecure", "-o", "json", ref)
	if r.ExitCode != 0 {
		t.Fatalf("embargo scan %s: exit %d, want 0\n%s", ref, r.ExitCode, r)
	}
	var rep jsonReport
	if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil {
		t.Fatalf("-o json does not parse: %v\n%s", err, r.Stdout)
	}
	if len(rep.Results) != 1 {
		t.Fatalf("%d results, want 1: %s", len(rep.Results), r.Stdout)
	}
	res := rep.Results[0]
	if res.Error != "" || res.Digest != pushed.DigestStr() {
		t.Errorf("result: digest %s (pushed %s), error %q", res.Digest, pushed.DigestStr(), res.Error)
	}
	if got := slices.Sorted(slices.Values(res.Platforms)); !slices.Equal(got, slices.Sorted(slices.Values(platforms))) {
		t.Errorf("scanned platforms %v, the index has %v", got, platforms)
	}
	// The Go module catalogers read the binaries' build info: a scan that saw no package did
	// not look at /manager or /embargo.
	if res.PackageCount == 0 {
		t.Errorf("no packages found in the image: the binaries were not scanned")
	}
	if len(res.Findings) != 0 || rep.Summary.Deny+rep.Summary.Warn+rep.Summary.Audit+rep.Summary.Errors != 0 {
		t.Errorf("findings in Embargo's own image (summary %+v):\n%s", rep.Summary, r.Stdout)
	}
}
