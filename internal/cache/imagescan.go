package cache

import (
	"context"
	"fmt"
	"strings"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/embargo-dev/embargo/api/v1alpha1"
	"github.com/embargo-dev/embargo/internal/match"
	"github.com/embargo-dev/embargo/internal/registry"
)

// MaxListedFindings caps ImageScan status.findings; findingCount has the total.
const MaxListedFindings = 20

// ObjectName is the ImageScan name of a digest: "sha256:ab…" becomes "sha256-ab…".
func ObjectName(digest string) string { return strings.Replace(digest, ":", "-", 1) }

// ImageScanReader loads records from ImageScan objects, so that restarts and other replicas do
// not scan again. It never writes: the ImageScan controller is the one writer.
type ImageScanReader struct {
	Client client.Reader
}

// Load returns the record of digest, or (nil, nil) when none is stored.
func (s *ImageScanReader) Load(ctx context.Context, digest string) (*Record, error) {
	var is v1alpha1.ImageScan
	if err := s.Client.Get(ctx, client.ObjectKey{Name: ObjectName(digest)}, &is); err != nil {
		return nil, client.IgnoreNotFound(err)
	}
	return FromImageScan(&is)
}

// FromImageScan returns the record an ImageScan holds, or nil when it holds none.
func FromImageScan(is *v1alpha1.ImageScan) (*Record, error) {
	if is.Status.Phase != v1alpha1.ImageScanScanned || len(is.Status.Record) == 0 {
		return nil, nil
	}
	rec := &Record{
		Digest:         is.Spec.Digest,
		Image:          is.Spec.Image,
		Platforms:      is.Status.Platforms,
		PackageCount:   is.Status.PackageCount,
		ScannerVersion: is.Status.ScannerVersion,
	}
	if err := decode(is.Status.Record, rec); err != nil {
		return nil, fmt.Errorf("ImageScan %s: bad record: %w", is.Name, err)
	}
	if is.Status.ScannedAt != nil {
		rec.ScannedAt = is.Status.ScannedAt.Time
	}
	return rec, nil
}

// FailureReason maps an error to an ImageScan condition reason.
func FailureReason(err error) string {
	switch registry.KindOf(err) {
	case registry.KindNotFound:
		return v1alpha1.ImageScanNotFoundReason
	case registry.KindUnauthorized:
		return v1alpha1.ImageScanUnauthorizedReason
	case registry.KindTimeout:
		return v1alpha1.ImageScanTimeoutReason
	case registry.KindTooLarge:
		return v1alpha1.ImageScanTooLargeReason
	}
	return v1alpha1.ImageScanErrorReason
}

// Summarize converts findings to ImageScan form, at most limit of them.
func Summarize(fs []match.Finding, limit int) []v1alpha1.ImageFinding {
	var out []v1alpha1.ImageFinding
	for i, f := range fs {
		if i == limit {
			break
		}
		imf := v1alpha1.ImageFinding{
			Vendor:   f.Vendor,
			Catalog:  f.Catalog,
			Rule:     f.Rule(),
			Evidence: f.Evidence[0].String(),
			Layer:    f.Layer,
			Platform: f.Platform,
		}
		if f.Package != nil {
			imf.Package, imf.Version, imf.Type = f.Package.Name, f.Package.Version, f.Package.Type
		}
		out = append(out, imf)
	}
	return out
}
