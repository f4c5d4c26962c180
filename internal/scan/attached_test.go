package scan_test

import (
	"bytes"
	"fmt"
	"maps"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"

	"github.com/embargo-dev/embargo/api/v1alpha1"
	"github.com/embargo-dev/embargo/internal/attached"
	"github.com/embargo-dev/embargo/internal/match"
	"github.com/embargo-dev/embargo/internal/policy"
	"github.com/embargo-dev/embargo/internal/scan"
	ti "github.com/embargo-dev/embargo/internal/test/testimage"
)

const sdkSPDX = `{"spdxVersion": "SPDX-2.3", "creationInfo": {"creators": ["Tool: buildkit-v0.17.0", "Tool: syft-1.57.0"]},
 "packages": [{"name": "kaspersky-endpoint-sdk", "versionInfo": "3.1", "supplier": "Organization: AO Kaspersky Lab"}]}`

const cleanSPDX = `{"spdxVersion": "SPDX-2.3", "creationInfo": {"creators": ["Tool: buildkit-v0.17.0"]},
 "packages": [{"name": "bash", "versionInfo": "5.2", "supplier": "Organization: Debian"}]}`

// TestBuildKitAttestations: the arm64 SBOM that BuildKit attached lists a Kaspersky SDK the
// image's files do not show. The finding is a declared one; a malformed and a huge attached
// document are reported and change nothing else.
func TestBuildKitAttestations(t *testing.T) {
	t.Parallel()
	clean := unique(t, must[v1.Image](t)(ti.Clean()))
	arm := must[v1.Image](t)(ti.Image(&v1.Platform{OS: "linux", Architecture: "arm64"}, must[[]v1.Layer](t)(clean.Layers())...))
	stmt := func(doc string) []byte {
		return must[[]byte](t)(ti.InTotoStatement("https://spdx.dev/Document", []byte(doc)))
	}
	huge := must[[]byte](t)(ti.InTotoStatement("https://spdx.dev/Document", append([]byte(`{"spdxVersion": "SPDX-2.3", "comment": "`), append(bytes.Repeat([]byte("x"), 41<<20), `"}`...)...)))
	provenance := must[[]byte](t)(ti.InTotoStatement("https://slsa.dev/provenance/v0.2", []byte(`{"builder": {"id": "buildkit"}}`)))
	idx := must[v1.ImageIndex](t)(ti.BuildKitIndex([]v1.Image{clean, arm}, map[int][][]byte{
		0: {stmt(cleanSPDX), stmt(`"{\"spdxVersion\": \"SPDX-2.3\", \"packages\": ["`), huge, provenance},
		1: {stmt(sdkSPDX), provenance},
	}))
	if _, err := reg.PushIndex("attached/buildkit:1", idx); err != nil {
		t.Fatal(err)
	}
	invs, err := scanImage(t, engine, reg.Ref("attached/buildkit:1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	var errs []string
	declared := 0
	for _, inv := range invs {
		if inv.Source == nil {
			continue
		}
		if inv.Source.Kind != match.SourceBuildKit {
			t.Errorf("source kind %q, want %q", inv.Source.Kind, match.SourceBuildKit)
		}
		if inv.Source.Error != "" {
			errs = append(errs, inv.Platform+": "+inv.Source.Error)
		} else {
			declared++
		}
	}
	if len(invs) != 2+4 || declared != 2 {
		t.Fatalf("inventories: %d (want 2 scanned + 4 attached), %d usable attached (want 2); errors %q", len(invs), declared, errs)
	}
	wantErrs := []string{"linux/amd64: SPDX JSON", "linux/amd64: too large: "}
	for i, w := range wantErrs {
		if i >= len(errs) || !strings.Contains(errs[i], strings.TrimPrefix(w, "linux/amd64: ")) || !strings.HasPrefix(errs[i], "linux/amd64") {
			t.Errorf("attached errors = %q, want ones like %q", errs, wantErrs)
			break
		}
	}
	if !strings.Contains(strings.Join(errs, "\n"), "over the 40 MiB limit") {
		t.Errorf("the huge document's error does not name the limit: %q", errs)
	}

	fs := compile(t, policy.Default()).Match(invs)
	if len(fs) != 1 {
		t.Fatalf("findings = %v, want the declared SDK on arm64 only", summary(fs))
	}
	f := fs[0]
	if f.Platform != "linux/arm64" || f.Package.Name != "kaspersky-endpoint-sdk" || f.Declared == nil {
		t.Fatalf("finding = %+v", f)
	}
	if s := f.Evidence[0].String(); !strings.Contains(s, "declared by attached SPDX SBOM sha256:") ||
		!strings.Contains(s, "(buildkit-attestation), created by Tool: buildkit-v0.17.0, Tool: syft-1.57.0, unsigned") {
		t.Errorf("evidence = %q, want it to name the declaring document", s)
	}

	ignore := policy.Default()
	ignore.Spec.SBOM.Attached = v1alpha1.AttachedSBOMIgnore
	if fs := compile(t, ignore).Match(invs); len(fs) != 0 {
		t.Errorf("spec.sbom.attached: Ignore still found %v", summary(fs))
	}

	off := newEngine(t, scan.Options{IgnoreAttached: true})
	invs, err = scanImage(t, off, reg.Ref("attached/buildkit:1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, inv := range invs {
		if inv.Source != nil {
			t.Errorf("IgnoreAttached engine recorded attached document %+v", inv.Source)
		}
	}
}

// TestNoAttestationsNoExtraRequests: reading the attachments of an image that has none costs,
// per registry endpoint, exactly this beyond the same scan with attachments skipped:
//
//   - one ping (GET /v2/): the attachment reader's client authenticates once for all its calls;
//   - one tag list (GET /v2/<repo>/tags/list): it tells which referrers fallback tags and cosign
//     .sbom/.att tags exist, so none of them is fetched or probed blindly (without it, 3 HEADs
//     per subject);
//   - referrers queries (GET /v2/<repo>/referrers/<digest>): with the referrers API one per
//     subject, the index and each platform manifest, since a per-platform SBOM is attached to
//     the platform's digest and a query of the index alone would miss it; without the API, one
//     in all, the failed query that shows the API is missing;
//   - no manifest or blob request at all.
func TestNoAttestationsNoExtraRequests(t *testing.T) {
	t.Parallel()
	type counts = map[string]int
	for name, tc := range map[string]struct {
		opts      []ti.Option
		platforms int
		want      counts
	}{
		"tag schema, index of 2":    {nil, 2, counts{"ping": 1, "tags": 1, "referrers": 1}},
		"tag schema, single image":  {nil, 1, counts{"ping": 1, "tags": 1, "referrers": 1}},
		"referrers API, index of 2": {[]ti.Option{ti.WithReferrers()}, 2, counts{"ping": 1, "tags": 1, "referrers": 3}},
		"referrers API, single":     {[]ti.Option{ti.WithReferrers()}, 1, counts{"ping": 1, "tags": 1, "referrers": 1}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := must[*ti.Registry](t)(ti.NewRegistry(tc.opts...))
			t.Cleanup(r.Close)
			clean := unique(t, must[v1.Image](t)(ti.Clean()))
			for _, repo := range []string{"attached/none-on", "attached/none-off"} {
				if tc.platforms == 1 {
					must[string](t)(r.Push(repo+":1", clean))
					continue
				}
				arm := must[v1.Image](t)(ti.Image(&v1.Platform{OS: "linux", Architecture: "arm64"}, must[[]v1.Layer](t)(clean.Layers())...))
				must[string](t)(r.PushIndex(repo+":1", must[v1.ImageIndex](t)(ti.Index(clean, arm))))
			}
			pushedOn, pushedOff := r.RequestsByKind("attached/none-on"), r.RequestsByKind("attached/none-off")
			on := newEngine(t, scan.Options{})
			off := newEngine(t, scan.Options{IgnoreAttached: true})
			// pings name no repository: count them around each scan, one after the other
			pings := r.Pings()
			if _, err := scanImage(t, on, r.Ref("attached/none-on:1"), nil); err != nil {
				t.Fatal(err)
			}
			pushedOn["ping"], pings = pings, r.Pings()
			if _, err := scanImage(t, off, r.Ref("attached/none-off:1"), nil); err != nil {
				t.Fatal(err)
			}
			gotOn, gotOff := r.RequestsByKind("attached/none-on"), r.RequestsByKind("attached/none-off")
			gotOn["ping"], pushedOff["ping"], gotOff["ping"] = pings, pings, r.Pings()
			extra, totalOn, totalOff := counts{}, 0, 0
			for _, k := range []string{"ping", "manifests", "blobs", "referrers", "tags"} {
				on, off := gotOn[k]-pushedOn[k], gotOff[k]-pushedOff[k]
				totalOn, totalOff = totalOn+on, totalOff+off
				if on != off {
					extra[k] = on - off
				}
			}
			t.Logf("requests of the scan reading attachments: %d, skipping them: %d; extra %v", totalOn, totalOff, extra)
			if !maps.Equal(extra, tc.want) {
				t.Errorf("extra requests by endpoint %v, want %v", extra, tc.want)
			}
		})
	}
}

// TestAttachmentBudget: an index of four platforms whose index and platform manifests carry
// MaxReferrers SBOM referrers each (80, every subject within its own bound) is read up to the
// image's budget: MaxImageManifests referrers, no more manifests fetched than that, and one
// warning naming the budget. The scan of the files stands.
func TestAttachmentBudget(t *testing.T) {
	t.Parallel()
	r := must[*ti.Registry](t)(ti.NewRegistry(ti.WithReferrers()))
	t.Cleanup(r.Close)
	const repo = "attached/budget"
	clean := unique(t, must[v1.Image](t)(ti.Clean()))
	imgs := []v1.Image{clean}
	for _, arch := range []string{"arm64", "s390x", "ppc64le"} {
		imgs = append(imgs, must[v1.Image](t)(ti.Image(&v1.Platform{OS: "linux", Architecture: arch}, must[[]v1.Layer](t)(clean.Layers())...)))
	}
	idx := must[v1.ImageIndex](t)(ti.Index(imgs...))
	ref := must[string](t)(r.PushIndex(repo+":1", idx))
	subjects := []v1.Descriptor{*must[*v1.Descriptor](t)(partial.Descriptor(idx))}
	for _, img := range imgs {
		subjects = append(subjects, *must[*v1.Descriptor](t)(partial.Descriptor(img)))
	}
	if len(subjects)*attached.MaxReferrers <= attached.MaxImageManifests {
		t.Fatalf("%d subjects x %d referrers do not exceed the budget of %d", len(subjects), attached.MaxReferrers, attached.MaxImageManifests)
	}
	for i, s := range subjects {
		for j := range attached.MaxReferrers {
			doc := fmt.Appendf(nil, `{"spdxVersion": "SPDX-2.3", "packages": [{"name": "declared-%d-%d", "versionInfo": "1"}]}`, i, j)
			sbom := must[v1.Image](t)(ti.ArtifactReferrer(s, attached.ArtifactSPDX, attached.ArtifactSPDX, doc))
			must[string](t)(r.Push(fmt.Sprintf("%s:sbom-%d-%d", repo, i, j), sbom))
		}
	}

	before := r.ManifestGets(repo)
	if _, err := scanImage(t, newEngine(t, scan.Options{IgnoreAttached: true}), ref, nil); err != nil {
		t.Fatal(err)
	}
	without := r.ManifestGets(repo) - before
	before = r.ManifestGets(repo)
	invs, err := scanImage(t, engine, ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	fetched := r.ManifestGets(repo) - before - without
	var scanned, read int
	var errs []string
	for _, inv := range invs {
		switch {
		case inv.Source == nil:
			scanned++
		case inv.Source.Error != "":
			errs = append(errs, inv.Unusable())
		default:
			read++
		}
	}
	if scanned != len(imgs) {
		t.Errorf("%d platforms scanned, want %d", scanned, len(imgs))
	}
	if read != attached.MaxImageManifests || len(errs) != 1 ||
		!strings.Contains(errs[0], "not read: the image's attachments are over the scan's budget (64 manifests, 128 MiB across the index and every platform)") {
		t.Errorf("read %d attached SBOMs (want %d), warnings %q (want the budget's, once)", read, attached.MaxImageManifests, errs)
	}
	if fetched != attached.MaxImageManifests {
		t.Errorf("reading attachments fetched %d manifests, want %d (the budget)", fetched, attached.MaxImageManifests)
	}
}

const sdkCycloneDX = `{"bomFormat": "CycloneDX", "specVersion": "1.5", "metadata": {"tools": [{"name": "oras-attach-test"}]},
 "components": [{"type": "library", "name": "kaspersky-endpoint-sdk", "version": "3.1", "supplier": {"name": "AO Kaspersky Lab"}}]}`

// TestReferrersAndCosignTags: a clean image whose SBOMs sit beside it, as an OCI referrer
// (CycloneDX typed by its config's media type, a sigstore bundle carrying a signed DSSE in-toto
// SPDX statement, and an OCI 1.1 artifact whose empty config leaves its type, SPDX, to the
// manifest's artifactType) and as cosign's legacy .att tag (a signed DSSE envelope). Each declares the Kaspersky SDK; each is
// found, on a registry with the referrers API and on one that has only the tag schema.
func TestReferrersAndCosignTags(t *testing.T) {
	t.Parallel()
	for name, opts := range map[string][]ti.Option{"referrers API": {ti.WithReferrers()}, "tag schema": nil} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := must[*ti.Registry](t)(ti.NewRegistry(opts...))
			t.Cleanup(r.Close)
			img := unique(t, must[v1.Image](t)(ti.Clean()))
			ref := must[string](t)(r.Push("attached/referred:1", img))
			subject := must[*v1.Descriptor](t)(partial.Descriptor(img))
			stmt := must[[]byte](t)(ti.InTotoStatement("https://spdx.dev/Document", []byte(sdkSPDX)))
			signed := must[[]byte](t)(ti.DSSEEnvelope(stmt, "not-a-real-signature"))
			for i, a := range []struct {
				artifactType, layer string
				doc                 []byte
				// artifactTypeOnly: an OCI 1.1 artifact (empty config, the type in the
				// manifest's artifactType); else the type is the config's media type
				artifactTypeOnly bool
			}{
				{attached.ArtifactCycloneDX, attached.ArtifactCycloneDX, []byte(sdkCycloneDX), false},
				{attached.ArtifactBundle, attached.ArtifactBundle, must[[]byte](t)(ti.SigstoreBundle(signed)), false},
				{attached.ArtifactSPDX, attached.ArtifactSPDX, []byte(sdkSPDX), true},
				{"application/vnd.dev.cosign.artifact.sig.v1+json", "application/vnd.dev.cosign.simplesigning.v1+json", []byte(`{}`), true},
			} {
				referrer := ti.Referrer
				if a.artifactTypeOnly {
					referrer = ti.ArtifactReferrer
				}
				ref := must[v1.Image](t)(referrer(*subject, a.artifactType, a.layer, a.doc))
				if _, err := r.Push(fmt.Sprintf("attached/referred:referrer-%d", i), ref); err != nil {
					t.Fatal(err)
				}
			}
			att := must[v1.Image](t)(ti.CosignAttachment("application/vnd.dsse.envelope.v1+json", signed))
			if _, err := r.Push("attached/referred:"+strings.Replace(subject.Digest.String(), ":", "-", 1)+".att", att); err != nil {
				t.Fatal(err)
			}

			invs, err := scanImage(t, engine, ref, nil)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]int{}
			for _, inv := range invs {
				if inv.Source == nil {
					continue
				}
				if inv.Source.Error != "" {
					t.Errorf("attached document %s (%s): %s", inv.Source.Digest, inv.Source.Kind, inv.Source.Error)
				}
				got[fmt.Sprintf("%s %s signed=%v", inv.Source.Kind, inv.Source.Format, inv.Source.Signed)]++
			}
			want := map[string]int{
				"oci-referrer cyclonedx-json signed=false": 1,
				"oci-referrer spdx-json signed=true":       1,
				"oci-referrer spdx-json signed=false":      1,
				"cosign-attestation spdx-json signed=true": 1,
			}
			if !maps.Equal(got, want) {
				t.Errorf("attached documents read = %v, want %v", got, want)
			}
			// Each document on its own must convict, with evidence naming it and its signature
			// state: findings over all of them are deduplicated, so which document's evidence the
			// union keeps depends on the order the registry lists referrers in.
			pol := compile(t, policy.Default())
			for _, inv := range invs {
				if inv.Source == nil {
					continue
				}
				fs := pol.Match([]match.Inventory{inv})
				if len(fs) != 1 || fs[0].Declared == nil || fs[0].Package.Name != "kaspersky-endpoint-sdk" {
					t.Errorf("%s %s: findings %v, want the declared SDK alone", inv.Source.Kind, inv.Source.Digest, summary(fs))
					continue
				}
				ev := fs[0].Evidence[0].String()
				wantSigned := "unsigned"
				if inv.Source.Signed {
					wantSigned = "signed (not verified)"
				}
				if !strings.Contains(ev, "declared by attached") || !strings.Contains(ev, wantSigned) || !strings.Contains(ev, inv.Source.Kind) {
					t.Errorf("%s %s: evidence %q, want it declared by the attached document, %s", inv.Source.Kind, inv.Source.Digest, ev, wantSigned)
				}
			}
		})
	}
}
