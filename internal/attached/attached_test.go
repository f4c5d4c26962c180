package attached_test

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"

	"github.com/embargo-dev/embargo/internal/attached"
	"github.com/embargo-dev/embargo/internal/match"
	ti "github.com/embargo-dev/embargo/internal/test/testimage"
)

func spdx(pkg string) []byte {
	return fmt.Appendf(nil, `{"spdxVersion": "SPDX-2.3", "creationInfo": {"creators": ["Tool: oras-test"]},
 "packages": [{"name": %q, "versionInfo": "1", "supplier": "Organization: Example"}]}`, pkg)
}

func cyclonedx(pkg string) []byte {
	return fmt.Appendf(nil, `{"bomFormat": "CycloneDX", "specVersion": "1.5", "components": [{"type": "library", "name": %q, "version": "1"}]}`, pkg)
}

// registries are the two kinds a referrer is found on: one with the referrers API and one
// where clients keep the referrers tag schema (sha256-<hex> index tags).
var registries = map[string][]ti.Option{"referrers API": {ti.WithReferrers()}, "tag schema": nil}

func newRegistry(t *testing.T, opts []ti.Option) *ti.Registry {
	t.Helper()
	r, err := ti.NewRegistry(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// subjectImage pushes a small image of platform to r as repo:tag.
func subjectImage(t *testing.T, r *ti.Registry, repo, tag string, p *v1.Platform) (v1.Image, attached.Subject) {
	t.Helper()
	l, err := ti.Layer(ti.File{Path: "/etc/" + tag, Content: []byte(t.Name() + p.String())})
	if err != nil {
		t.Fatal(err)
	}
	img, err := ti.Image(p, l)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Push(repo+":"+tag, img); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return img, attached.Subject{Platform: p.String(), Digest: d}
}

func attach(t *testing.T, r *ti.Registry, repoTag string, ref v1.Image, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Push(repoTag, ref); err != nil {
		t.Fatal(err)
	}
}

func repository(t *testing.T, r *ti.Registry, repo string) name.Repository {
	t.Helper()
	rp, err := name.NewRepository(r.Host + "/" + repo)
	if err != nil {
		t.Fatal(err)
	}
	return rp
}

// read returns what Remote read: "kind format package" per usable document, and the errors.
func read(invs []match.Inventory) (docs map[string]int, errs []string) {
	docs = map[string]int{}
	for _, inv := range invs {
		switch {
		case inv.Source == nil:
			docs["not attached"]++
		case inv.Source.Error != "":
			errs = append(errs, inv.Unusable())
		default:
			pkg := ""
			if len(inv.Packages) > 0 {
				pkg = inv.Packages[0].Name
			}
			docs[inv.Source.Kind+" "+inv.Source.Format+" "+pkg]++
		}
	}
	return docs, errs
}

// total is the number of usable documents read describes.
func total(docs map[string]int) (n int) {
	for _, c := range docs {
		n += c
	}
	return n
}

// TestReferrerArtifactTypes: an SBOM referrer is found whether what says so is the manifest's
// artifactType (an OCI 1.1 artifact whose config is the empty descriptor, as `oras attach` 1.1
// writes it) or its config's media type (older `oras attach`), on a registry with the referrers
// API and on one with only the tag schema. go-containerregistry's registry lists the first kind
// by its config's media type, application/vnd.oci.empty.v1+json: reading only what the listing
// says would miss it there. An artifact of another type (a cosign signature) is not read.
func TestReferrerArtifactTypes(t *testing.T) {
	t.Parallel()
	for regName, opts := range registries {
		t.Run(regName, func(t *testing.T) {
			t.Parallel()
			r := newRegistry(t, opts)
			img, subject := subjectImage(t, r, "attached/types", "1", &v1.Platform{OS: "linux", Architecture: "amd64"})
			desc, err := partial.Descriptor(img)
			if err != nil {
				t.Fatal(err)
			}
			ref, err := ti.ArtifactReferrer(*desc, attached.ArtifactSPDX, attached.ArtifactSPDX, spdx("declared-by-artifact-type"))
			attach(t, r, "attached/types:artifact-spdx", ref, err)
			ref, err = ti.ArtifactReferrer(*desc, attached.ArtifactCycloneDX, attached.ArtifactCycloneDX, cyclonedx("declared-by-artifact-type-cdx"))
			attach(t, r, "attached/types:artifact-cyclonedx", ref, err)
			ref, err = ti.Referrer(*desc, attached.ArtifactSPDX, attached.ArtifactSPDX, spdx("declared-by-config-media-type"))
			attach(t, r, "attached/types:config-spdx", ref, err)
			ref, err = ti.ArtifactReferrer(*desc, "application/vnd.dev.cosign.artifact.sig.v1+json", "application/vnd.dev.cosign.simplesigning.v1+json", []byte(`{}`))
			attach(t, r, "attached/types:signature", ref, err)

			docs, errs := read(attached.Remote(context.Background(), repository(t, r, "attached/types"), []attached.Subject{subject}, nil, attached.NewBudget()))
			want := map[string]int{
				"oci-referrer spdx-json declared-by-artifact-type":          1,
				"oci-referrer cyclonedx-json declared-by-artifact-type-cdx": 1,
				"oci-referrer spdx-json declared-by-config-media-type":      1,
			}
			if !maps.Equal(docs, want) || len(errs) != 0 {
				t.Errorf("read %v, errors %q; want %v and no error", docs, errs, want)
			}
		})
	}
}

// TestBudgetAcrossSubjects: an index of three platforms whose index and platform manifests
// have four SBOM referrers each (16, within the per-subject bound) reads, under a budget of 10
// manifests, exactly 10 referrers, fetches no more manifests than that, and says once that the
// rest were not read; a byte budget stops the same way at the document that would go over it.
func TestBudgetAcrossSubjects(t *testing.T) {
	t.Parallel()
	r := newRegistry(t, []ti.Option{ti.WithReferrers()})
	const repo = "attached/budget"
	var imgs []v1.Image
	var subjects []attached.Subject
	for _, arch := range []string{"amd64", "arm64", "s390x"} {
		img, s := subjectImage(t, r, repo, arch, &v1.Platform{OS: "linux", Architecture: arch})
		imgs, subjects = append(imgs, img), append(subjects, s)
	}
	idx, err := ti.Index(imgs...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.PushIndex(repo+":1", idx); err != nil {
		t.Fatal(err)
	}
	idxDigest, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	subjects = append([]attached.Subject{{Digest: idxDigest}}, subjects...)
	idxDesc, err := partial.Descriptor(idx)
	if err != nil {
		t.Fatal(err)
	}
	descs := []v1.Descriptor{*idxDesc}
	for _, img := range imgs {
		d, err := partial.Descriptor(img)
		if err != nil {
			t.Fatal(err)
		}
		descs = append(descs, *d)
	}
	docBytes := 0
	for i, d := range descs {
		for j := range 4 {
			doc := spdx(fmt.Sprintf("pkg-%d-%d", i, j))
			docBytes = len(doc)
			ref, err := ti.ArtifactReferrer(d, attached.ArtifactSPDX, attached.ArtifactSPDX, doc)
			attach(t, r, fmt.Sprintf("%s:sbom-%d-%d", repo, i, j), ref, err)
		}
	}
	rp := repository(t, r, repo)

	t.Run("manifests", func(t *testing.T) {
		before := r.ManifestGets(repo)
		invs := attached.Remote(context.Background(), rp, subjects, nil, attached.NewBudgetOf(10, attached.MaxImageBytes))
		fetched := r.ManifestGets(repo) - before
		docs, errs := read(invs)
		n := total(docs)
		if n != 10 || len(errs) != 1 || !strings.Contains(errs[0], "not read: the image's attachments are over the scan's budget (10 manifests, 128 MiB across the index and every platform)") {
			t.Errorf("read %d documents (want 10), errors %q (want the budget's, once)", n, errs)
		}
		if fetched != 10 {
			t.Errorf("fetched %d manifests, want the 10 referrers the budget allows", fetched)
		}
	})
	t.Run("bytes", func(t *testing.T) {
		// room for three documents and most of a fourth
		invs := attached.Remote(context.Background(), rp, subjects, nil, attached.NewBudgetOf(attached.MaxImageManifests, int64(3*docBytes+docBytes/2)))
		docs, errs := read(invs)
		n := total(docs)
		if n != 3 || len(errs) != 1 || !strings.Contains(errs[0], "over the scan's budget") {
			t.Errorf("read %d documents (want 3), errors %q (want the budget's, once)", n, errs)
		}
	})
	t.Run("enough", func(t *testing.T) {
		docs, errs := read(attached.Remote(context.Background(), rp, subjects, nil, attached.NewBudget()))
		n := total(docs)
		if n != 16 || len(errs) != 0 {
			t.Errorf("read %d documents (want all 16), errors %q", n, errs)
		}
	})
}

// BenchmarkRemoteNoAttachments is what reading attachments costs on its own for a two-platform
// index that has none (the index and two platform subjects), on each kind of registry: the
// absolute figure BenchmarkAttachedOverhead in internal/scan sees inside a whole scan's noise.
func BenchmarkRemoteNoAttachments(b *testing.B) {
	for _, kind := range []string{"tag schema", "referrers API"} {
		b.Run(strings.ReplaceAll(kind, " ", "-"), func(b *testing.B) {
			r, err := ti.NewRegistry(registries[kind]...)
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			var imgs []v1.Image
			subjects := []attached.Subject{{}}
			for _, arch := range []string{"amd64", "arm64"} {
				l, err := ti.Layer(ti.File{Path: "/etc/" + arch, Content: []byte(arch)})
				if err != nil {
					b.Fatal(err)
				}
				img, err := ti.Image(&v1.Platform{OS: "linux", Architecture: arch}, l)
				if err != nil {
					b.Fatal(err)
				}
				d, err := img.Digest()
				if err != nil {
					b.Fatal(err)
				}
				imgs, subjects = append(imgs, img), append(subjects, attached.Subject{Platform: "linux/" + arch, Digest: d})
			}
			idx, err := ti.Index(imgs...)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := r.PushIndex("bench/none:1", idx); err != nil {
				b.Fatal(err)
			}
			if subjects[0].Digest, err = idx.Digest(); err != nil {
				b.Fatal(err)
			}
			repo, err := name.NewRepository(r.Host + "/bench/none")
			if err != nil {
				b.Fatal(err)
			}
			before, pings := r.Requests("bench/none"), r.Pings()
			b.ResetTimer()
			for range b.N {
				if invs := attached.Remote(context.Background(), repo, subjects, nil, attached.NewBudget()); len(invs) != 0 {
					b.Fatalf("attachments of an index without any: %+v", invs)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(r.Requests("bench/none")-before+r.Pings()-pings)/float64(b.N), "requests/op")
		})
	}
}
