package cache

import (
	"context"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/embargo-dev/embargo/api/v1alpha1"
	"github.com/embargo-dev/embargo/internal/match"
	"github.com/embargo-dev/embargo/internal/registry"
)

// MaxListedFindings caps ImageScan status.findings; findingCount has the total.
const MaxListedFindings = 20

// ObjectName is the ImageScan name of a digest: "sha256:ab…" becomes "sha256-ab…".
func ObjectName(digest string) string { return strings.Replace(digest, ":", "-", 1) }

// ImageScanStore persists records as cluster-scoped ImageScan objects, so that restarts and
// other replicas do not scan again. Findings are computed when saved, against whatever Findings
// returns at that moment (the catalog and the policies then present).
type ImageScanStore struct {
	Client         client.Client
	CatalogVersion string
	Findings       func([]match.Inventory) []match.Finding
	Now            func() time.Time
}

// Load implements Store.
func (s *ImageScanStore) Load(ctx context.Context, digest string) (*Record, error) {
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
	invs, err := Decode(is.Status.Record)
	if err != nil {
		return nil, fmt.Errorf("ImageScan %s: bad record: %w", is.Name, err)
	}
	rec := &Record{
		Digest:         is.Spec.Digest,
		Image:          is.Spec.Image,
		Platforms:      is.Status.Platforms,
		Inventories:    invs,
		PackageCount:   is.Status.PackageCount,
		ScannerVersion: is.Status.ScannerVersion,
	}
	if is.Status.ScannedAt != nil {
		rec.ScannedAt = is.Status.ScannedAt.Time
	}
	return rec, nil
}

// Save implements Store.
func (s *ImageScanStore) Save(ctx context.Context, rec *Record) error {
	var findings []match.Finding
	if s.Findings != nil {
		findings = s.Findings(rec.Inventories)
	}
	encoded, err := Encode(rec)
	if err != nil {
		encoded = nil // too big to keep: a policy change will need a rescan, the findings still stand
	}
	return s.write(ctx, rec.Digest, rec.Image, func(st *v1alpha1.ImageScanStatus) {
		st.Phase = v1alpha1.ImageScanScanned
		st.ScannedAt = &metav1.Time{Time: rec.ScannedAt}
		st.ScannerVersion = rec.ScannerVersion
		st.CatalogVersion = s.CatalogVersion
		st.Platforms = rec.Platforms
		st.PackageCount = rec.PackageCount
		st.FindingCount = len(findings)
		st.Findings = Summarize(findings, MaxListedFindings)
		st.Record = encoded
		st.Message = ""
		st.Failures = 0
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{
			Type: v1alpha1.ImageScanScannedCondition, Status: metav1.ConditionTrue,
			Reason: v1alpha1.ImageScanSucceededReason, Message: fmt.Sprintf("%d packages, %d findings", rec.PackageCount, len(findings)),
		})
	})
}

// SaveFailure marks the digest's ImageScan Failed with the reason; failures counts attempts.
func (s *ImageScanStore) SaveFailure(ctx context.Context, digest, image string, scanErr error) (failures int, err error) {
	err = s.write(ctx, digest, image, func(st *v1alpha1.ImageScanStatus) {
		if st.Phase == v1alpha1.ImageScanScanned {
			return // a good record beats a later transient failure
		}
		st.Phase = v1alpha1.ImageScanFailed
		st.Failures++
		failures = st.Failures
		st.Message = truncate(scanErr.Error(), 1024)
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{
			Type: v1alpha1.ImageScanScannedCondition, Status: metav1.ConditionFalse,
			Reason: FailureReason(scanErr), Message: st.Message,
		})
	})
	return failures, err
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

func (s *ImageScanStore) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// write creates the ImageScan if needed and updates its status with mutate, retrying conflicts.
func (s *ImageScanStore) write(ctx context.Context, digest, image string, mutate func(*v1alpha1.ImageScanStatus)) error {
	key := client.ObjectKey{Name: ObjectName(digest)}
	for attempt := 0; attempt < 5; attempt++ {
		var is v1alpha1.ImageScan
		err := s.Client.Get(ctx, key, &is)
		if apierrors.IsNotFound(err) {
			is = v1alpha1.ImageScan{
				ObjectMeta: metav1.ObjectMeta{Name: key.Name, Labels: map[string]string{"app.kubernetes.io/managed-by": "embargo"}},
				Spec:       v1alpha1.ImageScanSpec{Digest: digest, Image: image},
			}
			if err := s.Client.Create(ctx, &is); err != nil {
				if apierrors.IsAlreadyExists(err) {
					continue
				}
				return err
			}
		} else if err != nil {
			return err
		}
		is.Status.ShortDigest = strings.TrimPrefix(registry.ShortDigest(digest), "sha256:")
		mutate(&is.Status)
		for i := range is.Status.Conditions {
			is.Status.Conditions[i].ObservedGeneration = is.Generation
			if is.Status.Conditions[i].LastTransitionTime.IsZero() {
				is.Status.Conditions[i].LastTransitionTime = metav1.NewTime(s.now())
			}
		}
		err = s.Client.Status().Update(ctx, &is)
		if apierrors.IsConflict(err) {
			continue
		}
		return err
	}
	return fmt.Errorf("ImageScan %s: too many update conflicts", key.Name)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
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
