package attached

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/embargo-dev/embargo/internal/match"
)

// MaxReferrers bounds the referrers (and cosign attachment images) looked at per subject.
const MaxReferrers = 16

// Artifact types of OCI referrers that carry an SBOM.
const (
	ArtifactSPDX      = "application/spdx+json"
	ArtifactCycloneDX = "application/vnd.cyclonedx+json"
	ArtifactBundle    = "application/vnd.dev.sigstore.bundle.v0.3+json"
	mediaDSSE         = "application/vnd.dsse.envelope.v1+json"
)

var (
	referrerTypes = []string{ArtifactSPDX, ArtifactCycloneDX, ArtifactBundle}
	// unknownTypes are artifact types a referrers listing gives when it did not say what the
	// referrer is. The OCI distribution spec has the registry report the manifest's
	// artifactType, else its config's media type; a registry that reports only the config's
	// (go-containerregistry's own, v0.22) gives the empty descriptor's media type for an OCI 1.1
	// artifact whose config is empty, which the image spec allows only beside an artifactType.
	// Such a referrer is fetched to read its artifactType.
	unknownTypes = []string{"", string(types.OCIEmptyJSON)}
	// layer media types read in a referrer or a cosign attachment image
	documentLayers = []string{ArtifactSPDX, "text/spdx+json", "text/spdx", ArtifactCycloneDX, ArtifactBundle, mediaDSSE, mediaInToto}
)

// Subject is a manifest whose attachments are looked for.
type Subject struct {
	// Platform is the platform image's os/arch; "" for an index (its attachments describe
	// every platform).
	Platform string
	Digest   v1.Hash
}

// Remote returns the declared inventories attached to subjects in repo as OCI 1.1 referrers
// (the referrers API, or the referrers tag schema where the registry lacks it) and as cosign's
// legacy sha256-<hex>.sbom and .att tags, within b. subjects[0] is the artifact that was
// resolved (the index or the single image).
//
// A referrer is an SBOM when its artifact type is one of SPDX, CycloneDX or a sigstore bundle:
// either the manifest's artifactType (an OCI 1.1 artifact, config the empty descriptor) or,
// without one, its config's media type (`oras attach` before OCI 1.1); the registry's listing
// reports it, and a referrer the listing gives no type for is fetched to find out.
//
// What it costs, for an image that has no attachments: one authentication ping (GET /v2/: all of
// it goes through one client, which authenticates once), one tag list, plus one referrers query
// per subject on a registry with the referrers API, or one referrers query in all on a registry
// without it (the tag list tells which fallback tags exist, so none is fetched blindly). One tag
// list, rather than a HEAD per legacy tag, is what makes cosign's tags affordable: probing
// .sbom and .att per subject would cost 2 requests per platform for every image, and most
// images have neither. When the registry refuses the tag list (some grant pull but not list),
// the fallback and legacy tags are probed directly instead.
func Remote(ctx context.Context, repo name.Repository, subjects []Subject, opts []remote.Option, b *Budget) []match.Inventory {
	if len(subjects) == 0 {
		return nil
	}
	// one puller for every request below: it authenticates to repo once, not once per call
	opts = append(slices.Clone(opts), remote.WithReferrersTagFallback(false))
	p, err := remote.NewPuller(opts...)
	if err != nil {
		return []match.Inventory{failed(subjects[0].Platform, match.SourceReferrer, subjects[0].Digest.String(), err)}
	}
	opts = append(opts, remote.Reuse(p))
	tags, listErr := remote.List(repo, opts...)
	listed := listErr == nil
	has := func(tag string) bool { return !listed || slices.Contains(tags, tag) }

	var out []match.Inventory
	api := true
	for _, s := range subjects {
		if ctx.Err() != nil || b.spent {
			break
		}
		d := repo.Digest(s.Digest.String())
		fallback := strings.Replace(s.Digest.String(), ":", "-", 1)
		var idx v1.ImageIndex
		var err error
		if api {
			idx, err = remote.Referrers(d, opts...)
			if err != nil && strings.Contains(err.Error(), "does not support the Referrers API") {
				api, err = false, nil // learnt on the first subject: the rest use the tag schema
			}
		}
		if !api && has(fallback) {
			// the tag schema: the index of referrers is tagged sha256-<hex>
			if idx, err = remote.Index(repo.Tag(fallback), opts...); err != nil && isNotFound(err) {
				idx, err = nil, nil
			}
		}
		if err != nil {
			out = append(out, failed(s.Platform, match.SourceReferrer, s.Digest.String(), fmt.Errorf("listing referrers: %w", err)))
		} else if idx != nil {
			out = append(out, readReferrers(ctx, repo, s, idx, opts, b)...)
		}
		for _, c := range []struct{ suffix, kind string }{{".sbom", match.SourceCosignSBOM}, {".att", match.SourceCosignAttest}} {
			if !has(fallback+c.suffix) || b.spent {
				continue
			}
			ok, refused := b.manifest(s.Platform, c.kind, s.Digest.String())
			if !ok {
				out = append(out, refused...)
				break
			}
			img, err := remote.Image(repo.Tag(fallback+c.suffix), opts...)
			if err != nil {
				if listed || !isNotFound(err) {
					out = append(out, failed(s.Platform, c.kind, s.Digest.String(), fmt.Errorf("reading tag %s: %w", fallback+c.suffix, err)))
				}
				continue
			}
			out = append(out, readImage(ctx, s.Platform, c.kind, img, b)...)
		}
	}
	return out
}

func readReferrers(ctx context.Context, repo name.Repository, s Subject, idx v1.ImageIndex, opts []remote.Option, b *Budget) []match.Inventory {
	im, err := idx.IndexManifest()
	if err != nil {
		return []match.Inventory{failed(s.Platform, match.SourceReferrer, s.Digest.String(), fmt.Errorf("reading referrers: %w", err))}
	}
	var out []match.Inventory
	n := 0
	for _, desc := range im.Manifests {
		if ctx.Err() != nil {
			break
		}
		known := slices.Contains(referrerTypes, desc.ArtifactType)
		if !known && !slices.Contains(unknownTypes, desc.ArtifactType) {
			continue // signatures, provenance and other artifacts declare no packages
		}
		if n++; n > MaxReferrers {
			out = append(out, failed(s.Platform, match.SourceReferrer, desc.Digest.String(), fmt.Errorf("more than %d SBOM referrers (or referrers listed without a type) of %s; the rest are not read", MaxReferrers, s.Digest)))
			break
		}
		ok, refused := b.manifest(s.Platform, match.SourceReferrer, desc.Digest.String())
		if !ok {
			return append(out, refused...)
		}
		d, err := remote.Get(repo.Digest(desc.Digest.String()), opts...)
		if err != nil {
			out = append(out, failed(s.Platform, match.SourceReferrer, desc.Digest.String(), fmt.Errorf("reading the referrer manifest: %w", err)))
			continue
		}
		if !known && !slices.Contains(referrerTypes, d.ArtifactType) {
			continue // fetched to learn its type (artifactType, else config media type): not an SBOM
		}
		img, err := d.Image() // the manifest just read: no second fetch
		if err != nil {
			out = append(out, failed(s.Platform, match.SourceReferrer, desc.Digest.String(), fmt.Errorf("reading the referrer manifest: %w", err)))
			continue
		}
		out = append(out, readImage(ctx, s.Platform, match.SourceReferrer, img, b)...)
	}
	return out
}

// readImage reads the document layers of a referrer or cosign attachment image, at most
// MaxDocuments, within b.
func readImage(ctx context.Context, platform, kind string, img v1.Image, b *Budget) []match.Inventory {
	m, err := img.Manifest()
	if err != nil {
		d, _ := img.Digest()
		return []match.Inventory{failed(platform, kind, d.String(), fmt.Errorf("reading the manifest: %w", err))}
	}
	var out []match.Inventory
	for _, l := range m.Layers {
		if ctx.Err() != nil {
			break
		}
		if !slices.Contains(documentLayers, string(l.MediaType)) {
			continue
		}
		if len(out) >= MaxDocuments {
			break
		}
		inv, ok := readLayer(ctx, platform, kind, img, l, b)
		if out = append(out, inv...); !ok {
			break
		}
	}
	return out
}

func isNotFound(err error) bool {
	var terr *transport.Error
	return errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound
}
