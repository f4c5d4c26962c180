// Package attached reads the SBOMs an image carries (BuildKit's in-toto attestations in its
// index, OCI referrers, cosign's .sbom and .att tags) into inventories marked as declared, for matching alongside what a scan found. A
// document that cannot be read becomes an inventory with Source.Error: it never fails the scan.
package attached

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/embargo-dev/embargo/internal/match"
	"github.com/embargo-dev/embargo/internal/registry"
	"github.com/embargo-dev/embargo/internal/sbomfile"
)

// Bounds on discovery.
const (
	// MaxDocumentBytes is the largest attached document read: BuildKit's own cap.
	MaxDocumentBytes = 40 << 20
	// MaxDocuments bounds the documents read per platform.
	MaxDocuments = 8
)

const (
	mediaInToto       = "application/vnd.in-toto+json"
	annoPredicateType = "in-toto.io/predicate-type"
)

// Platform returns the declared inventories of one platform image: one per SBOM layer of its
// BuildKit attestation manifests.
func Platform(ctx context.Context, pi registry.PlatformImage) []match.Inventory {
	var out []match.Inventory
	for _, att := range pi.Attestations {
		if ctx.Err() != nil {
			break
		}
		m, err := att.Manifest()
		if err != nil {
			d, _ := att.Digest()
			out = append(out, failed(pi.Platform, match.SourceBuildKit, d.String(), fmt.Errorf("reading the attestation manifest: %w", err)))
			continue
		}
		for _, l := range m.Layers {
			if string(l.MediaType) != mediaInToto || !sbomfile.IsSBOMPredicate(l.Annotations[annoPredicateType]) {
				continue // provenance and other predicates declare no packages
			}
			if len(out) >= MaxDocuments {
				return out
			}
			out = append(out, readLayer(ctx, pi.Platform, match.SourceBuildKit, att, l))
		}
	}
	return out
}

func readLayer(ctx context.Context, platform, kind string, img v1.Image, desc v1.Descriptor) match.Inventory {
	src := desc.Digest.String()
	if desc.Size > MaxDocumentBytes {
		return failed(platform, kind, src, fmt.Errorf("too large: %d bytes, over the %d MiB limit", desc.Size, MaxDocumentBytes>>20))
	}
	layer, err := img.LayerByDigest(desc.Digest)
	if err != nil {
		return failed(platform, kind, src, err)
	}
	rc, err := layer.Compressed() // in-toto layers are stored as is
	if err != nil {
		return failed(platform, kind, src, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, MaxDocumentBytes+1))
	if err != nil {
		return failed(platform, kind, src, fmt.Errorf("reading the document: %w", err))
	}
	if len(data) > MaxDocumentBytes {
		return failed(platform, kind, src, fmt.Errorf("too large: over the %d MiB limit", MaxDocumentBytes>>20))
	}
	doc, err := sbomfile.DecodeDocument(bytes.NewReader(data))
	if err != nil {
		return failed(platform, kind, src, err)
	}
	inv := doc.Inventory
	inv.Platform = platform
	inv.Source = &match.Source{Kind: kind, Digest: src, Format: string(doc.Format), Creator: doc.Creator, Signed: doc.Signed}
	return inv
}

func failed(platform, kind, digest string, err error) match.Inventory {
	if err == nil {
		err = errors.New("unknown error")
	}
	return match.Inventory{Platform: platform, Source: &match.Source{Kind: kind, Digest: digest, Error: err.Error()}}
}
