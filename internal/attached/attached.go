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
	// MaxImageManifests bounds the attachment manifests (BuildKit attestation manifests, SBOM
	// referrers, cosign attachment images) fetched for one image, across its index and every
	// platform manifest: the per-subject bounds alone let an index of many platforms, each with
	// many referrers, cost hundreds of requests.
	MaxImageManifests = 64
	// MaxImageBytes bounds the document bytes read for one image, across its index and every
	// platform manifest.
	MaxImageBytes = 128 << 20
)

// Budget is what reading one image's attachments may still cost. Platform and Remote draw on
// the same budget; once a fetch would go over it, that attachment and every later one are left
// unread, and a single warning (an inventory with Source.Error) says so. Not safe for concurrent
// use: one scan reads its attachments in turn.
type Budget struct {
	// Manifests and Bytes are what is left.
	Manifests int
	Bytes     int64

	limits string
	spent  bool
}

// NewBudget returns the budget of one image: MaxImageManifests and MaxImageBytes.
func NewBudget() *Budget { return NewBudgetOf(MaxImageManifests, MaxImageBytes) }

// NewBudgetOf returns a budget of manifests fetched and document bytes read.
func NewBudgetOf(manifests int, bytes int64) *Budget {
	size := fmt.Sprintf("%d bytes", bytes)
	if bytes >= 1<<20 && bytes%(1<<20) == 0 {
		size = fmt.Sprintf("%d MiB", bytes>>20)
	}
	return &Budget{Manifests: manifests, Bytes: bytes, limits: fmt.Sprintf("%d manifests, %s", manifests, size)}
}

// Spent reports whether an attachment was left unread for want of budget.
func (b *Budget) Spent() bool { return b.spent }

// manifest takes one manifest fetch from b. When none is left it returns false and, the first
// time, the warning naming what was refused (digest: the manifest or, for a query not made,
// its subject).
func (b *Budget) manifest(platform, kind, digest string) (bool, []match.Inventory) {
	if b.spent {
		return false, nil
	}
	if b.Manifests <= 0 {
		return false, b.refuse(platform, kind, digest)
	}
	b.Manifests--
	return true, nil
}

func (b *Budget) refuse(platform, kind, digest string) []match.Inventory {
	b.spent = true
	return []match.Inventory{failed(platform, kind, digest, fmt.Errorf(
		"not read: the image's attachments are over the scan's budget (%s across the index and every platform); later attachments are not read either", b.limits))}
}

const (
	mediaInToto       = "application/vnd.in-toto+json"
	annoPredicateType = "in-toto.io/predicate-type"
)

// Platform returns the declared inventories of one platform image: one per SBOM layer of its
// BuildKit attestation manifests, within b.
func Platform(ctx context.Context, pi registry.PlatformImage, b *Budget) []match.Inventory {
	var out []match.Inventory
	for _, att := range pi.Attestations {
		if ctx.Err() != nil || b.spent {
			break
		}
		d, _ := att.Digest() // from the index: no fetch
		ok, refused := b.manifest(pi.Platform, match.SourceBuildKit, d.String())
		if !ok {
			return append(out, refused...)
		}
		m, err := att.Manifest()
		if err != nil {
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
			inv, ok := readLayer(ctx, pi.Platform, match.SourceBuildKit, att, l, b)
			if out = append(out, inv...); !ok {
				return out
			}
		}
	}
	return out
}

// readLayer reads one document layer within b: the document's inventory, or the reason it is
// unusable; ok is false when b ran out, and then the inventory is the budget's warning.
func readLayer(ctx context.Context, platform, kind string, img v1.Image, desc v1.Descriptor, b *Budget) (_ []match.Inventory, ok bool) {
	one := func(inv match.Inventory) []match.Inventory { return []match.Inventory{inv} }
	src := desc.Digest.String()
	if desc.Size > MaxDocumentBytes {
		return one(failed(platform, kind, src, fmt.Errorf("too large: %d bytes, over the %d MiB limit", desc.Size, MaxDocumentBytes>>20))), true
	}
	if b.spent {
		return nil, false
	}
	if desc.Size > b.Bytes {
		return b.refuse(platform, kind, src), false
	}
	limit := min(MaxDocumentBytes, b.Bytes) // a descriptor may understate the size
	layer, err := img.LayerByDigest(desc.Digest)
	if err != nil {
		return one(failed(platform, kind, src, err)), true
	}
	rc, err := layer.Compressed() // in-toto layers are stored as is
	if err != nil {
		return one(failed(platform, kind, src, err)), true
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, limit+1))
	b.Bytes -= int64(len(data))
	if err != nil {
		return one(failed(platform, kind, src, fmt.Errorf("reading the document: %w", err))), true
	}
	if int64(len(data)) > limit {
		if limit < MaxDocumentBytes {
			b.Bytes = 0
			return b.refuse(platform, kind, src), false
		}
		return one(failed(platform, kind, src, fmt.Errorf("too large: over the %d MiB limit", MaxDocumentBytes>>20))), true
	}
	doc, err := sbomfile.DecodeDocument(bytes.NewReader(data))
	if err != nil {
		return one(failed(platform, kind, src, err)), true
	}
	inv := doc.Inventory
	inv.Platform = platform
	inv.Source = &match.Source{Kind: kind, Digest: src, Format: string(doc.Format), Creator: doc.Creator, Signed: doc.Signed}
	return one(inv), true
}

func failed(platform, kind, digest string, err error) match.Inventory {
	if err == nil {
		err = errors.New("unknown error")
	}
	return match.Inventory{Platform: platform, Source: &match.Source{Kind: kind, Digest: digest, Error: err.Error()}}
}
