package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/embargo-dev/embargo/api/v1alpha1"
	"github.com/embargo-dev/embargo/internal/cache"
	"github.com/embargo-dev/embargo/internal/catalog"
	"github.com/embargo-dev/embargo/internal/decision"
	"github.com/embargo-dev/embargo/internal/match"
	"github.com/embargo-dev/embargo/internal/policy"
	"github.com/embargo-dev/embargo/internal/registry"
)

// engine answers images from a table: what admission needs of the scanner, and no more.
type engine struct {
	records  map[string]*cache.Record // by image
	errs     map[string]error         // by image
	scans    atomic.Int32
	resolves atomic.Int32
}

func digestOf(image string) v1.Hash {
	h, _, err := v1.SHA256(strings.NewReader(image))
	if err != nil {
		panic(err)
	}
	return h
}

func (e *engine) Resolve(_ context.Context, image string, _ authn.Keychain) (registry.Target, error) {
	e.resolves.Add(1)
	if err, ok := e.errs[image]; ok {
		return registry.Target{}, err
	}
	ref, err := name.ParseReference(image)
	if err != nil {
		return registry.Target{}, err
	}
	d := digestOf(image)
	return registry.Target{Ref: ref.Context().Digest(d.String()), Digest: d}, nil
}

func (e *engine) Cached(string) (*cache.Record, bool) { return nil, false }

func (e *engine) ScanForeground(_ context.Context, t registry.Target, _ authn.Keychain) (*cache.Record, error) {
	e.scans.Add(1)
	for img, r := range e.records {
		if digestOf(img) == t.Digest {
			return r, nil
		}
	}
	return &cache.Record{Digest: t.Digest.String()}, nil
}

func kesl() *cache.Record {
	return &cache.Record{Inventories: []match.Inventory{{Platform: "linux/amd64", Packages: []match.Package{{
		Name: "kesl", Version: "12.1.0", Type: "deb", Layer: "sha256:0123456789abcdef",
		Fields: []match.Field{{Name: "dpkg Maintainer", Value: "AO Kaspersky Lab <support@kaspersky.com>"}},
	}}}}}
}

var now = time.Date(2017, 12, 20, 0, 0, 0, 0, time.UTC)

func handler(t *testing.T, e *engine, policies ...*v1alpha1.VendorPolicy) *Handler {
	t.Helper()
	s := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := corev1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	b := fake.NewClientBuilder().WithScheme(s).WithObjects(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{"team": "shop"}}})
	for _, p := range policies {
		b = b.WithObjects(p)
	}
	c := b.Build()
	return NewHandler(Handler{
		Engine: e, Policies: &policy.Set{Reader: c, Catalog: catalog.Default()}, Reader: c,
		Clock: clocktesting.NewFakePassiveClock(now), Exempt: []string{"embargo-system", "kube-system"}, Log: logr.Discard(),
	})
}

func vendorPolicy(name string, spec v1alpha1.VendorPolicySpec) *v1alpha1.VendorPolicy {
	if spec.Vendors == nil {
		spec.Vendors = []v1alpha1.VendorSelector{{Catalog: "kaspersky"}}
	}
	return &v1alpha1.VendorPolicy{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}
}

func podRequest(t *testing.T, ns string, images ...string) admission.Request {
	t.Helper()
	pod := corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}, ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns}}
	for i, img := range images {
		pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: []string{"app", "side", "third"}[i], Image: img})
	}
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: "1", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, Namespace: ns, Operation: admissionv1.Create,
		Object: runtime.RawExtension{Raw: raw},
	}}
}

type answer struct {
	Allowed  bool
	Message  []string // substrings the message must hold
	Warnings []string // substrings, one per warning, in order
}

func TestHandle(t *testing.T) {
	gone := &registry.Error{Kind: registry.KindNotFound, Ref: "reg.example/gone:1", Err: errors.New("MANIFEST_UNKNOWN")}
	cases := map[string]struct {
		policies []*v1alpha1.VendorPolicy
		ns       string
		images   []string
		want     answer
	}{
		"no policy": {
			ns: "shop", images: []string{"reg.example/kesl:1"}, want: answer{Allowed: true},
		},
		"Deny names container, image, package, vendor and basis": {
			policies: []*v1alpha1.VendorPolicy{vendorPolicy("deny", v1alpha1.VendorPolicySpec{})},
			ns:       "shop", images: []string{"reg.example/kesl:1", "reg.example/clean:1"},
			want: answer{Message: []string{"Embargo: Pod shop/web denied by VendorPolicy deny", `container "app" image reg.example/kesl:1`,
				"kesl 12.1.0 (deb) from AO Kaspersky Lab", "layer sha256:0123456789ab", "Basis: ", "add a spec.exceptions entry"}},
		},
		"Warn names the Deny date": {
			policies: []*v1alpha1.VendorPolicy{vendorPolicy("bod", v1alpha1.VendorPolicySpec{Action: v1alpha1.ActionWarn,
				Rollout: []v1alpha1.RolloutStep{{Action: v1alpha1.ActionDeny, From: metav1.NewTime(now.Add(48 * time.Hour))}}})},
			ns: "shop", images: []string{"reg.example/kesl:1"},
			want: answer{Allowed: true, Warnings: []string{`embargo: container "app" (kesl:1): kesl 12.1.0 from AO Kaspersky Lab; denied from 2017-12-22`}},
		},
		"Audit admits silently": {
			policies: []*v1alpha1.VendorPolicy{vendorPolicy("audit", v1alpha1.VendorPolicySpec{Action: v1alpha1.ActionAudit})},
			ns:       "shop", images: []string{"reg.example/kesl:1"}, want: answer{Allowed: true},
		},
		"exception by image glob": {
			policies: []*v1alpha1.VendorPolicy{vendorPolicy("deny", v1alpha1.VendorPolicySpec{Exceptions: []v1alpha1.Exception{{Images: []string{"reg.example/kesl*"}, Reason: "W-1"}}})},
			ns:       "shop", images: []string{"reg.example/kesl:1"}, want: answer{Allowed: true},
		},
		"expired exception": {
			policies: []*v1alpha1.VendorPolicy{vendorPolicy("deny", v1alpha1.VendorPolicySpec{Exceptions: []v1alpha1.Exception{{Namespaces: []string{"shop"}, Reason: "W-1", Expires: &metav1.Time{Time: now}}}})},
			ns:       "shop", images: []string{"reg.example/kesl:1"}, want: answer{Message: []string{"denied by VendorPolicy deny"}},
		},
		"scan error under onScanError Allow": {
			policies: []*v1alpha1.VendorPolicy{vendorPolicy("open", v1alpha1.VendorPolicySpec{})},
			ns:       "shop", images: []string{"reg.example/gone:1"},
			want: answer{Allowed: true, Warnings: []string{`embargo: container "app" not checked (NotFound); admitted by onScanError: Allow: MANIFEST_UNKNOWN`}},
		},
		"scan error under onScanError Deny": {
			policies: []*v1alpha1.VendorPolicy{vendorPolicy("closed", v1alpha1.VendorPolicySpec{OnScanError: v1alpha1.ScanErrorDeny})},
			ns:       "shop", images: []string{"reg.example/gone:1"},
			want: answer{Message: []string{`container "app" image reg.example/gone:1 could not be checked (NotFound): MANIFEST_UNKNOWN; policy closed fails closed (onScanError: Deny)`}},
		},
		"two policies: Deny and Warn both speak": {
			policies: []*v1alpha1.VendorPolicy{
				vendorPolicy("a-warn", v1alpha1.VendorPolicySpec{Action: v1alpha1.ActionWarn}),
				vendorPolicy("b-deny", v1alpha1.VendorPolicySpec{}),
			},
			ns: "shop", images: []string{"reg.example/kesl:1"},
			want: answer{Message: []string{"denied by VendorPolicy b-deny:"}, Warnings: []string{"; policy a-warn"}},
		},
		"exempt namespace": {
			policies: []*v1alpha1.VendorPolicy{vendorPolicy("deny", v1alpha1.VendorPolicySpec{})},
			ns:       "kube-system", images: []string{"reg.example/kesl:1"}, want: answer{Allowed: true},
		},
		"namespace selector that does not match": {
			policies: []*v1alpha1.VendorPolicy{vendorPolicy("deny", v1alpha1.VendorPolicySpec{Match: v1alpha1.MatchSpec{
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "other"}}}})},
			ns: "shop", images: []string{"reg.example/kesl:1"}, want: answer{Allowed: true},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			e := &engine{records: map[string]*cache.Record{"reg.example/kesl:1": kesl()}, errs: map[string]error{"reg.example/gone:1": gone}}
			resp := handler(t, e, tc.policies...).Handle(context.Background(), podRequest(t, tc.ns, tc.images...))
			if resp.Allowed != tc.want.Allowed {
				t.Fatalf("allowed = %v, want %v (message %q)", resp.Allowed, tc.want.Allowed, resp.Result.Message)
			}
			msg := ""
			if resp.Result != nil {
				msg = resp.Result.Message
			}
			for _, m := range tc.want.Message {
				if !strings.Contains(msg, m) {
					t.Errorf("message %q lacks %q", msg, m)
				}
			}
			if tc.want.Allowed && msg != "" {
				t.Errorf("allowed with message %q", msg)
			}
			if len(resp.Warnings) != len(tc.want.Warnings) {
				t.Fatalf("warnings %q, want %d like %q", resp.Warnings, len(tc.want.Warnings), tc.want.Warnings)
			}
			for i, w := range tc.want.Warnings {
				if !strings.Contains(resp.Warnings[i], w) {
					t.Errorf("warning %q lacks %q", resp.Warnings[i], w)
				}
			}
		})
	}
}

// TestScanErrorDetail: the answer to an image that could not be checked ends in the decision's
// detail of the error (the limit to raise, the registry's answer) under onScanError Allow and
// Deny alike; the warning's clip shortens only that detail, and neither answer echoes the
// credentials or the query string of a URL in the error.
func TestScanErrorDetail(t *testing.T) {
	huge := &registry.Error{Kind: registry.KindTooLarge, Ref: "reg.example/huge:1",
		Err: errors.New("more than 500000 files in its layers (raise --max-image-files to scan it)")}
	private := &registry.Error{Kind: registry.KindUnauthorized, Ref: "reg.example/private:1",
		Err: errors.New("GET https://puller:pull-s3cret@reg.example/v2/private/manifests/1?token=t0ken: UNAUTHORIZED")}
	cases := map[string]struct {
		image       string
		onScanError v1alpha1.ScanErrorAction
		want        string // the whole warning, or a part of the message
		container   string // instead of "app"
	}{
		"too large, Allow": {"reg.example/huge:1", v1alpha1.ScanErrorAllow,
			`embargo: container "app" not checked (TooLarge); admitted by onScanError: Allow: more than 500000 files in its layers...`, ""},
		"too large, Deny": {"reg.example/huge:1", v1alpha1.ScanErrorDeny,
			`could not be checked (TooLarge): more than 500000 files in its layers (raise --max-image-files to scan it); policy p fails closed`, ""},
		"credentials, Allow": {"reg.example/private:1", v1alpha1.ScanErrorAllow,
			`embargo: container "app" not checked (Unauthorized); admitted by onScanError: Allow: GET https://reg.example/v2/priva...`, ""},
		"long container name: the detail gives way": {"reg.example/huge:1", v1alpha1.ScanErrorAllow,
			`embargo: container "a-container-name-of-forty-four-characters-xx" not checked (TooLarge); admitted by onScanError: Allow`,
			"a-container-name-of-forty-four-characters-xx"},
		"credentials, Deny": {"reg.example/private:1", v1alpha1.ScanErrorDeny,
			`could not be checked (Unauthorized): GET https://reg.example/v2/private/manifests/1: UNAUTHORIZED; policy p fails closed`, ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			e := &engine{errs: map[string]error{"reg.example/huge:1": huge, "reg.example/private:1": private}}
			h := handler(t, e, vendorPolicy("p", v1alpha1.VendorPolicySpec{OnScanError: tc.onScanError}))
			req := podRequest(t, "shop", tc.image)
			if tc.container != "" {
				req.Object.Raw = bytes.Replace(req.Object.Raw, []byte(`"name":"app"`), []byte(`"name":"`+tc.container+`"`), 1)
			}
			resp := h.Handle(context.Background(), req)
			all := strings.Join(resp.Warnings, "\n")
			if resp.Result != nil {
				all += "\n" + resp.Result.Message
			}
			if tc.onScanError == v1alpha1.ScanErrorAllow {
				if !resp.Allowed || len(resp.Warnings) != 1 || resp.Warnings[0] != tc.want {
					t.Errorf("allowed %v, warnings %q; want one warning %q", resp.Allowed, resp.Warnings, tc.want)
				}
				if n := len(resp.Warnings[0]); n > maxWarning {
					t.Errorf("warning of %d bytes, over %d", n, maxWarning)
				}
			} else if resp.Allowed || !strings.Contains(resp.Result.Message, tc.want) {
				t.Errorf("allowed %v, message %q; want a denial with %q", resp.Allowed, all, tc.want)
			}
			for _, secret := range []string{"pull-s3cret", "puller", "t0ken"} {
				if strings.Contains(all, secret) {
					t.Errorf("the answer echoes %q: %q", secret, all)
				}
			}
		})
	}
}

func TestHandleUnchangedImagesOnUpdate(t *testing.T) {
	e := &engine{records: map[string]*cache.Record{"reg.example/kesl:1": kesl()}}
	h := handler(t, e, vendorPolicy("deny", v1alpha1.VendorPolicySpec{}))
	req := podRequest(t, "shop", "reg.example/kesl:1")
	req.Operation = admissionv1.Update
	req.OldObject = req.Object
	if resp := h.Handle(context.Background(), req); !resp.Allowed || e.scans.Load() != 0 {
		t.Errorf("update without a new image: allowed %v after %d scans, want allowed without scanning", resp.Allowed, e.scans.Load())
	}
}

func TestHandleMalformed(t *testing.T) {
	h := handler(t, &engine{}, vendorPolicy("deny", v1alpha1.VendorPolicySpec{}))
	cases := map[string]struct {
		kind string
		raw  string
	}{
		"not JSON":               {"Pod", "{"},
		"spec of the wrong type": {"Pod", `{"spec":[]}`},
		"template not an object": {"Deployment", `{"spec":{"template":7}}`},
		"unknown kind":           {"ConfigMap", `{}`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			req := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{UID: "1", Kind: metav1.GroupVersionKind{Kind: tc.kind},
				Namespace: "shop", Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: []byte(tc.raw)}}}
			resp := h.Handle(context.Background(), req)
			if resp.Allowed || resp.Result == nil || resp.Result.Code != 400 || resp.Result.Message == "" {
				t.Errorf("response %+v, want a 400 with a message", resp.Result)
			}
		})
	}
}

func TestDecodeWorkloadKinds(t *testing.T) {
	spec := `{"containers":[{"name":"a","image":"x:1"}],"initContainers":[{"name":"i","image":"y:1"}]}`
	raws := map[string]string{
		"Pod":        `{"metadata":{"name":"p","labels":{"a":"b"}},"spec":` + spec + `}`,
		"Deployment": `{"metadata":{"name":"p","labels":{"a":"b"}},"spec":{"template":{"spec":` + spec + `}}}`,
		"CronJob":    `{"metadata":{"name":"p","labels":{"a":"b"}},"spec":{"jobTemplate":{"spec":{"template":{"spec":` + spec + `}}}}}`,
	}
	want := []decision.Container{{Kind: "init container", Name: "i", Image: "y:1"}, {Kind: "container", Name: "a", Image: "x:1"}}
	for kind, raw := range raws {
		w, err := decodeWorkload(kind, []byte(raw))
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		if diff := cmp.Diff(want, decision.PodContainers(&w.Spec)); diff != "" || w.Name != "p" || w.Labels["a"] != "b" {
			t.Errorf("%s: name %q labels %v containers (-want +got):\n%s", kind, w.Name, w.Labels, diff)
		}
	}
}

// TestHandleTagTTL: a tag resolved in a namespace is trusted for TagTTL there, then asked again.
func TestHandleTagTTL(t *testing.T) {
	e := &engine{}
	h := handler(t, e, vendorPolicy("deny", v1alpha1.VendorPolicySpec{}))
	clk := clocktesting.NewFakePassiveClock(now)
	h.Clock = clk
	admit := func() {
		t.Helper()
		if resp := h.Handle(context.Background(), podRequest(t, "shop", "registry.example.com/app:1")); !resp.Allowed {
			t.Fatalf("denied: %v", resp.Result)
		}
	}
	tests := []struct {
		step         time.Duration
		wantResolves int32
	}{
		{0, 1},                         // first sight: resolved
		{time.Minute - time.Second, 1}, // within the TTL: the cache answers
		{time.Second, 2},               // TTL reached: resolved again
	}
	for i, tc := range tests {
		clk.SetTime(clk.Now().Add(tc.step))
		admit()
		if got := e.resolves.Load(); got != tc.wantResolves {
			t.Errorf("step %d (+%s): %d resolves, want %d", i, tc.step, got, tc.wantResolves)
		}
	}
}
