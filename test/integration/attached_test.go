package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/embargo-dev/embargo/api/v1alpha1"
	"github.com/embargo-dev/embargo/internal/attached"
	"github.com/embargo-dev/embargo/internal/cache"
	ti "github.com/embargo-dev/embargo/internal/test/testimage"
)

// declaredSDK is the SBOM a build attached: it lists a Kaspersky SDK that no file of the image
// shows (statically linked, say).
const declaredSDK = `{"spdxVersion": "SPDX-2.3", "creationInfo": {"creators": ["Tool: buildkit-v0.17.0", "Organization: Example Builds"]},
 "packages": [{"name": "kaspersky-endpoint-sdk", "versionInfo": "3.1", "supplier": "Organization: AO Kaspersky Lab"}]}`

// withAttachedSBOMs pushes base, made unique to the test, as repo:1 with each document attached
// as an OCI referrer of artifact type application/spdx+json (this registry has no referrers
// API: the referrers tag schema). It returns the tag reference and the documents' short digests
// as messages name them.
func withAttachedSBOMs(t testing.TB, repo string, base func() (v1.Image, error), docs ...[]byte) (string, []string) {
	t.Helper()
	img, err := base()
	if err != nil {
		t.Fatal(err)
	}
	l, err := ti.Layer(ti.File{Path: "/etc/embargo-test", Content: []byte(t.Name())})
	if err != nil {
		t.Fatal(err)
	}
	if img, err = mutate.AppendLayers(img, l); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Push(repo+":1", img); err != nil {
		t.Fatal(err)
	}
	subject, err := partial.Descriptor(img)
	if err != nil {
		t.Fatal(err)
	}
	var digests []string
	for i, doc := range docs {
		ref, err := ti.Referrer(*subject, attached.ArtifactSPDX, attached.ArtifactSPDX, doc)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := reg.Push(fmt.Sprintf("%s:sbom-%d", repo, i), ref); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(doc)
		digests = append(digests, "sha256:"+hex.EncodeToString(sum[:])[:12])
	}
	return reg.Ref(repo + ":1"), digests
}

// TestAttachedSBOMAdmissionAndAudit: an image whose files are clean but whose attached SPDX
// SBOM lists a Kaspersky SDK. Admission denies it, saying the finding was declared by that
// document; the audit lists it with the same evidence; a policy with spec.sbom.attached:
// Ignore admits it and counts nothing.
func TestAttachedSBOMAdmissionAndAudit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	image, docs := withAttachedSBOMs(t, "attached/declared", ti.Clean, []byte(declaredSDK))
	declaredBy := "declared by attached SPDX SBOM " + docs[0] + " (oci-referrer), created by Tool: buildkit-v0.17.0, Organization: Example Builds, unsigned"

	denyNS := newNamespace(t)
	deny := newPolicy(t, denyNS, v1alpha1.VendorPolicySpec{Action: v1alpha1.ActionDeny})
	msg := deniedMessage(t, k8s.Create(ctx, newPod(denyNS, "declared", image)))
	wantAll(t, msg, deny.Name, `container "app"`, image, "kaspersky-endpoint-sdk 3.1", "AO Kaspersky Lab",
		`SPDX supplier = "Organization: AO Kaspersky Lab", `+declaredBy)

	ignoreNS := newNamespace(t)
	t.Cleanup(func() { deleteAllPods(t, ignoreNS) })
	ignore := newPolicy(t, ignoreNS, v1alpha1.VendorPolicySpec{Action: v1alpha1.ActionDeny, SBOM: v1alpha1.SBOMSpec{Attached: v1alpha1.AttachedSBOMIgnore}})
	admitted := newPod(ignoreNS, "declared", image)
	admitted.Labels = appLabels
	if err := k8s.Create(ctx, admitted); err != nil {
		t.Fatalf("spec.sbom.attached: Ignore must admit an image whose files are clean: %v", err)
	}

	auditNS := newNamespace(t)
	t.Cleanup(func() { deleteAllPods(t, auditNS) })
	audit := newPolicy(t, auditNS, v1alpha1.VendorPolicySpec{Action: v1alpha1.ActionAudit})
	deployment(t, auditNS, "shop", "shop-7d9f", image, digestRef(t, image), 1)
	got := waitStatus(t, audit.Name, 60*time.Second, wantCounts(counts{1, 1, 1, 1, 0}))
	v := got.Status.Violations[0]
	if v.WorkloadKind != "Deployment" || v.Package != "kaspersky-endpoint-sdk 3.1" || v.Vendor != kasperskyVendor || !strings.Contains(v.Evidence, declaredBy) {
		t.Errorf("violation %+v, want the Deployment with the SDK %s", v, declaredBy)
	}

	// the digest's record is known by now: an audit of the Ignore policy since this point has
	// judged the admitted pod, and found nothing
	setRunning(t, admitted, digestRef(t, image))
	auditedSince(t, ignore.Name)
	waitStatus(t, ignore.Name, 15*time.Second, wantCounts(counts{0, 0, 0, 0, 0}))

	// the ImageScan lists the declared finding with its evidence
	is := scannedImage(t, image)
	var found bool
	for _, f := range is.Status.Findings {
		found = found || (f.Package == "kaspersky-endpoint-sdk" && strings.Contains(f.Evidence, declaredBy))
	}
	if !found || is.Status.Message != "" {
		t.Errorf("ImageScan findings %+v, message %q: want the declared SDK and no unusable document", is.Status.Findings, is.Status.Message)
	}
}

// scannedImage waits for the ImageScan of image's digest to be Scanned and returns it.
func scannedImage(t testing.TB, image string) *v1alpha1.ImageScan {
	t.Helper()
	ref := digestRef(t, image)
	name := cache.ObjectName(ref[strings.Index(ref, "@")+1:])
	var is v1alpha1.ImageScan
	eventually(t, 30*time.Second, func() error {
		if err := k8s.Get(context.Background(), client.ObjectKey{Name: name}, &is); err != nil {
			return err
		}
		if is.Status.Phase != v1alpha1.ImageScanScanned {
			return fmt.Errorf("ImageScan %s phase %q", name, is.Status.Phase)
		}
		return nil
	})
	return &is
}

// TestAttachedSBOMUnusable: a Kaspersky image carrying a malformed and an oversized attached
// SBOM. Both are reported, in admission warnings, the ImageScan's message and the VendorPolicy
// status of an audit that reads attached SBOMs; the image's own findings still deny it, still
// warn under a Warn policy and still count in the audit.
func TestAttachedSBOMUnusable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	malformed := []byte(`{"spdxVersion": "SPDX-2.3", "packages": [`)
	huge := append([]byte(`{"spdxVersion": "SPDX-2.3", "comment": "`), append(bytes.Repeat([]byte("x"), attached.MaxDocumentBytes+1), `"}`...)...)
	image, docs := withAttachedSBOMs(t, "attached/unusable", ti.KasperskyEndpoint, malformed, huge)
	wc := newWarningClient(t)

	denyNS := newNamespace(t)
	newPolicy(t, denyNS, v1alpha1.VendorPolicySpec{Action: v1alpha1.ActionDeny})
	msg := deniedMessage(t, wc.Create(ctx, newPod(denyNS, "kesl", image)))
	wantAll(t, msg, "kesl 12.1.0-1187", `dpkg Maintainer = "AO Kaspersky Lab <support@kaspersky.com>"`)
	ws := strings.Join(wc.take(), "\n")
	wantAll(t, ws, `embargo: container "app": attached SBOM `+docs[0]+" unusable: ",
		`embargo: container "app": attached SBOM `+docs[1]+" unusable: too large: ", "over the 40 MiB limit")

	warnNS := newNamespace(t)
	newPolicy(t, warnNS, v1alpha1.VendorPolicySpec{Action: v1alpha1.ActionWarn})
	if err := wc.Create(ctx, newPod(warnNS, "kesl", image)); err != nil {
		t.Fatalf("Warn must admit: %v", err)
	}
	warned := wc.take()
	wantAll(t, strings.Join(warned, "\n"), `container "app" (unusable:1): kesl`, "attached SBOM "+docs[0], "attached SBOM "+docs[1])
	for _, w := range warned {
		if len(w) > 120 {
			t.Errorf("warning longer than 120 chars: %q", w)
		}
	}

	is := scannedImage(t, image)
	wantAll(t, is.Status.Message, "attached SBOM "+docs[0]+" (oci-referrer) of linux/amd64 unusable: ",
		"attached SBOM "+docs[1]+" (oci-referrer) of linux/amd64 unusable: too large: ", "bytes, over the 40 MiB limit")
	if is.Status.FindingCount == 0 {
		t.Errorf("ImageScan: %d findings, want the image's own kesl", is.Status.FindingCount)
	}

	// the audit: a policy that reads attached SBOMs counts and lists both documents beside the
	// kesl violation; one that ignores them, auditing the same image, says nothing of them
	digest := digestRef(t, image)
	digest = digest[strings.Index(digest, "@")+1:]
	auditNS, ignoreNS := newNamespace(t), newNamespace(t)
	t.Cleanup(func() { deleteAllPods(t, auditNS); deleteAllPods(t, ignoreNS) })
	audit := newPolicy(t, auditNS, v1alpha1.VendorPolicySpec{Action: v1alpha1.ActionAudit})
	ignore := newPolicy(t, ignoreNS, v1alpha1.VendorPolicySpec{Action: v1alpha1.ActionAudit, SBOM: v1alpha1.SBOMSpec{Attached: v1alpha1.AttachedSBOMIgnore}})
	deployment(t, auditNS, "shop", "shop-7d9f", image, digestRef(t, image), 1)
	deployment(t, ignoreNS, "shop", "shop-7d9f", image, digestRef(t, image), 1)
	got := waitStatus(t, audit.Name, 60*time.Second, func(st *v1alpha1.VendorPolicyStatus) error {
		if err := wantCounts(counts{1, 1, 1, 1, 0})(st); err != nil {
			return err
		}
		if st.UnusableAttachedSBOMs != 2 || len(st.AttachedSBOMErrors) != 2 {
			return fmt.Errorf("unusableAttachedSBOMs %d, attachedSBOMErrors %+v, want 2 of each", st.UnusableAttachedSBOMs, st.AttachedSBOMErrors)
		}
		return nil
	}).Status
	var msgs []string
	for _, e := range got.AttachedSBOMErrors {
		if e.Image != image || e.Digest != digest {
			t.Errorf("attachedSBOMErrors entry %+v, want image %s, digest %s", e, image, digest)
		}
		msgs = append(msgs, e.Message)
	}
	wantAll(t, strings.Join(msgs, "\n"), "attached SBOM "+docs[0]+" (oci-referrer) of linux/amd64 unusable: ",
		"attached SBOM "+docs[1]+" (oci-referrer) of linux/amd64 unusable: too large: ", "bytes, over the 40 MiB limit")
	if c := condition(&got, v1alpha1.VendorPolicyCompliantCondition); c.Reason != v1alpha1.VendorPolicyViolationsReason ||
		!strings.Contains(c.Message, "2 attached SBOMs could not be used (status.attachedSBOMErrors)") {
		t.Errorf("Compliant = %+v, want the kesl violation and the 2 unusable attached SBOMs", c)
	}
	waitStatus(t, ignore.Name, 60*time.Second, func(st *v1alpha1.VendorPolicyStatus) error {
		if err := wantCounts(counts{1, 1, 1, 1, 0})(st); err != nil {
			return err
		}
		if st.UnusableAttachedSBOMs != 0 || len(st.AttachedSBOMErrors) != 0 {
			return fmt.Errorf("an Ignore policy lists attached SBOMs: %d, %+v", st.UnusableAttachedSBOMs, st.AttachedSBOMErrors)
		}
		return nil
	})
}
