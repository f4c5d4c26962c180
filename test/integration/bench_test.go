package integration

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/embargo-dev/embargo/api/v1alpha1"
	ti "github.com/embargo-dev/embargo/internal/test/testimage"
)

// BenchmarkHandleWarmCache measures the admission handler itself (comps.Handler, as the
// manager wires it) deciding on an image whose digest is already scanned: the steady state of
// a cluster. The no-policy case is the baseline in the same run: the same request where no
// policy selects the namespace, i.e. decoding and policy selection only.
//
//	KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh) go test -run '^$' -bench HandleWarmCache -benchmem ./test/integration/
func BenchmarkHandleWarmCache(b *testing.B) {
	samples(b)
	synthetic := pushImage(b, "bench/synthetic-1000", func() (v1.Image, error) { return ti.Synthetic(1000, 4<<20, 2) })
	denyNS := newNamespace(b)
	newPolicy(b, denyNS, v1alpha1.VendorPolicySpec{Action: v1alpha1.ActionDeny})
	freeNS := newNamespace(b)

	cases := []struct {
		name, ns, kind, image string
		wantAllowed           bool
	}{
		{"no-policy/Pod", freeNS, "Pod", keslImage, true},
		{"deny/Pod", denyNS, "Pod", keslImage, false},
		{"deny/Deployment", denyNS, "Deployment", keslImage, false},
		{"deny/Pod/clean", denyNS, "Pod", cleanImage, true},
		{"deny/Pod/synthetic-1000-packages", denyNS, "Pod", synthetic, false},
	}
	for _, tc := range cases {
		req := admissionRequest(b, tc.kind, workloads[tc.kind](tc.ns, strings.ToLower(tc.kind)+"-bench", tc.image))
		ctx := context.Background()
		// Warm: resolve the tag and scan the digest once, outside the timing.
		if resp := comps.Handler.Handle(ctx, req); resp.Allowed != tc.wantAllowed {
			b.Fatalf("%s: allowed = %v, want %v: %v", tc.name, resp.Allowed, tc.wantAllowed, resp.Result)
		}
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if resp := comps.Handler.Handle(ctx, req); resp.Allowed != tc.wantAllowed {
					b.Fatalf("allowed = %v, want %v: %v", resp.Allowed, tc.wantAllowed, resp.Result)
				}
			}
		})
	}
}

// admissionRequest is what the API server sends for creating obj.
func admissionRequest(b *testing.B, kind string, obj client.Object) admission.Request {
	b.Helper()
	raw, err := json.Marshal(obj)
	if err != nil {
		b.Fatal(err)
	}
	group, resource := "", strings.ToLower(kind)+"s"
	if kind == "Deployment" {
		group = "apps"
	}
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID:       types.UID("bench-" + strings.ToLower(kind)),
		Kind:      metav1.GroupVersionKind{Group: group, Version: "v1", Kind: kind},
		Resource:  metav1.GroupVersionResource{Group: group, Version: "v1", Resource: resource},
		Name:      obj.GetName(),
		Namespace: obj.GetNamespace(),
		Operation: admissionv1.Create,
		Object:    runtime.RawExtension{Raw: raw},
	}}
}
