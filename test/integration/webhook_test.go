package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/embargo-dev/embargo/api/v1alpha1"
	"github.com/embargo-dev/embargo/controllers"
	"github.com/embargo-dev/embargo/internal/cache"
	"github.com/embargo-dev/embargo/internal/manager"
	"github.com/embargo-dev/embargo/internal/metrics"
	"github.com/embargo-dev/embargo/internal/registry"
	"github.com/embargo-dev/embargo/internal/scan"
	ti "github.com/embargo-dev/embargo/internal/test/testimage"
)

var (
	samplesOnce           sync.Once
	keslImage, cleanImage string
	scanEngineImage       string
	samplesErr            error
)

// samples pushes the shared sample images once.
func samples(t testing.TB) {
	t.Helper()
	samplesOnce.Do(func() {
		for _, s := range []struct {
			ref  *string
			repo string
			img  func() (v1.Image, error)
		}{
			{&keslImage, "samples/kesl", ti.KasperskyEndpoint},
			{&cleanImage, "samples/clean", ti.Clean},
			{&scanEngineImage, "samples/scanengine", ti.KasperskyScanEngine},
		} {
			img, err := s.img()
			if err != nil {
				samplesErr = err
				return
			}
			if _, err := reg.Push(s.repo+":1", img); err != nil {
				samplesErr = err
				return
			}
			*s.ref = reg.Ref(s.repo + ":1")
		}
	})
	if samplesErr != nil {
		t.Fatal(samplesErr)
	}
}

// warningClient records the admission warnings the API server passes back.
type warningClient struct {
	client.Client
	mu       sync.Mutex
	warnings []string
}

func (w *warningClient) HandleWarningHeaderWithContext(_ context.Context, _ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.warnings = append(w.warnings, text)
}

func (w *warningClient) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.warnings
	w.warnings = nil
	return out
}

func newWarningClient(t testing.TB) *warningClient {
	t.Helper()
	w := &warningClient{}
	c := rest.CopyConfig(cfg)
	c.WarningHandlerWithContext = w
	var err error
	w.Client, err = client.New(c, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func deniedMessage(t testing.TB, err error) string {
	t.Helper()
	if err == nil {
		t.Fatal("admitted, want denied")
	}
	if !apierrors.IsForbidden(err) && !strings.Contains(err.Error(), "denied the request") {
		t.Fatalf("want a denial, got %v", err)
	}
	return err.Error()
}

func wantAll(t testing.TB, msg string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(msg, p) {
			t.Errorf("message lacks %q:\n%s", p, msg)
		}
	}
}

// TestDenyEveryKind: a Deny policy rejects every workload kind carrying a Kaspersky image, with
// a message that names what a person needs, and admits a clean one.
func TestDenyEveryKind(t *testing.T) {
	t.Parallel()
	samples(t)
	ns := newNamespace(t)
	p := newPolicy(t, ns, v1alpha1.VendorPolicySpec{Action: v1alpha1.ActionDeny})
	ctx := context.Background()
	for kind, build := range workloads {
		t.Run(kind, func(t *testing.T) {
			name := strings.ToLower(kind)
			msg := deniedMessage(t, k8s.Create(ctx, build(ns, name+"-kesl", keslImage)))
			wantAll(t, msg, kind, p.Name, `container "app"`, keslImage, "sha256:", "kesl 12.1.0-1187", "AO Kaspersky Lab",
				`dpkg Maintainer = "AO Kaspersky Lab <support@kaspersky.com>"`, "layer sha256:", "Basis:")
			if len(msg) > 1400 {
				t.Errorf("message is %d bytes, too long for kubectl", len(msg))
			}
			if err := k8s.Create(ctx, build(ns, name+"-clean", cleanImage)); err != nil {
				t.Errorf("clean %s: %v", kind, err)
			}
		})
	}
}

// TestInitAndEphemeralContainers: every container counts.
func TestInitAndEphemeralContainers(t *testing.T) {
	t.Parallel()
	samples(t)
	ns := newNamespace(t)
	newPolicy(t, ns, v1alpha1.VendorPolicySpec{Action: v1alpha1.ActionDeny})
	ctx := context.Background()

	init := newPod(ns, "init", cleanImage)
	init.Spec.InitContainers = []corev1.Container{{Name: "setup", Image: scanEngineImage}}
	wantAll(t, deniedMessage(t, k8s.Create(ctx, init)), `init container "setup"`, "/opt/kaspersky/ScanEngine")

	pod := newPod(ns, "debugged", cleanImage)
	if err := k8s.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	pod.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug", Image: keslImage}}}
	err := k8s.SubResource("ephemeralcontainers").Update(ctx, pod)
	wantAll(t, deniedMessage(t, err), `ephemeral container "debug"`, "kesl")
}

// TestWarnAndAudit: Warn admits with a short warning; Audit admits silently and counts.
func TestWarnAndAudit(t *testing.T) {
	t.Parallel()
	samples(t)
	ctx := context.Background()
	wc := newWarningClient(t)

	warnNS := newNamespace(t)
	newPolicy(t, warnNS, v1alpha1.VendorPolicySpec{Action: v1alpha1.ActionWarn})
	if err := wc.Create(ctx, workloads["Deployment"](warnNS, "warned", keslImage)); err != nil {
		t.Fatalf("Warn must admit: %v", err)
	}
	ws := wc.take()
	if len(ws) == 0 {
		t.Fatal("no warning")
	}
	for _, w := range ws {
		if len(w) > 120 {
			t.Errorf("warning longer than 120 chars: %q", w)
		}
	}
	wantAll(t, strings.Join(ws, "\n"), `container "app"`, "AO Kaspersky Lab", "kesl")

	auditNS := newNamespace(t)
	newPolicy(t, auditNS, v1alpha1.VendorPolicySpec{Action: v1alpha1.ActionAudit})
	before := testutil.ToFloat64(metrics.Decisions.WithLabelValues("Pod", "Audit", "audited"))
	if err := wc.Create(ctx, newPod(auditNS, "audited", keslImage)); err != nil {
		t.Fatalf("Audit must admit: %v", err)
	}
	if ws := wc.take(); len(ws) != 0 {
		t.Errorf("Audit must not warn: %q", ws)
	}
	// the counter is the whole process's: parallel tests may admit Audit Pods too, so at least +1
	if after := testutil.ToFloat64(metrics.Decisions.WithLabelValues("Pod", "Audit", "audited")); after < before+1 {
		t.Errorf("audited decisions %v -> %v, want at least +1", before, after)
	}
}

// TestRolloutTimeline walks BOD 17-01's identify/plan/remove rhythm with the injected clock.
// It moves the clock: not parallel.
func TestRolloutTimeline(t *testing.T) {
	samples(t)
	ctx := context.Background()
	ns := newNamespace(t)
	issued := testStart.Add(24 * time.Hour)
	newPolicy(t, ns, v1alpha1.VendorPolicySpec{
		Action: v1alpha1.ActionAudit,
		Rollout: []v1alpha1.RolloutStep{
			{Action: v1alpha1.ActionAudit, From: metav1.NewTime(issued)},
			{Action: v1alpha1.ActionWarn, From: metav1.NewTime(issued.AddDate(0, 0, 30))},
			{Action: v1alpha1.ActionDeny, From: metav1.NewTime(issued.AddDate(0, 0, 90))},
		},
	})
	defer clock.SetTime(testStart)
	wc := newWarningClient(t)
	steps := []struct {
		at       time.Time
		wantDeny bool
		wantWarn bool
	}{
		{at: issued.Add(time.Hour)},
		{at: issued.AddDate(0, 0, 30).Add(-time.Second)},
		{at: issued.AddDate(0, 0, 30), wantWarn: true},
		{at: issued.AddDate(0, 0, 90).Add(-time.Second), wantWarn: true},
		{at: issued.AddDate(0, 0, 90), wantDeny: true},
	}
	for i, s := range steps {
		clock.SetTime(s.at)
		err := wc.Create(ctx, newPod(ns, fmt.Sprintf("step-%d", i), keslImage))
		ws := wc.take()
		if s.wantDeny {
			deniedMessage(t, err)
			continue
		}
		if err != nil {
			t.Errorf("step %d at %s: %v", i, s.at, err)
		}
		if s.wantWarn != (len(ws) > 0) {
			t.Errorf("step %d at %s: warnings %q, want warning=%v", i, s.at, ws, s.wantWarn)
		}
		if s.wantWarn && !strings.Contains(strings.Join(ws, " "), "denied from "+issued.AddDate(0, 0, 90).Format("2006-01-02")) {
			t.Errorf("warning does not say when denial starts: %q", ws)
		}
	}
}

// TestExceptionExpiry: an exception admits until it expires, to the second. Moves the clock.
func TestExceptionExpiry(t *testing.T) {
	samples(t)
	ctx := context.Background()
	ns := newNamespace(t)
	expires := testStart.Add(7 * 24 * time.Hour)
	newPolicy(t, ns, v1alpha1.VendorPolicySpec{
		Action: v1alpha1.ActionDeny,
		Exceptions: []v1alpha1.Exception{{
			Images:  []string{reg.Host + "/samples/*"},
			Reason:  "waiver W-17-01-042 until migration",
			Expires: &metav1.Time{Time: expires},
		}},
	})
	defer clock.SetTime(testStart)
	clock.SetTime(expires.Add(-time.Second))
	if err := k8s.Create(ctx, newPod(ns, "before", keslImage)); err != nil {
		t.Errorf("before expiry: %v", err)
	}
	clock.SetTime(expires)
	deniedMessage(t, k8s.Create(ctx, newPod(ns, "after", keslImage)))
}

// TestExemptNamespaces: kube-system and the manager's own namespace are never checked, even by
// a policy that selects every namespace. Not parallel: the policy selects everything.
func TestExemptNamespaces(t *testing.T) {
	samples(t)
	ctx := context.Background()
	newPolicy(t, "", v1alpha1.VendorPolicySpec{Action: v1alpha1.ActionDeny})
	for _, ns := range []string{"kube-system", OwnNamespace} {
		if err := k8s.Create(ctx, newPod(ns, "exempt-kesl", keslImage)); err != nil {
			t.Errorf("%s: %v", ns, err)
		}
		_ = k8s.Delete(ctx, newPod(ns, "exempt-kesl"))
	}
	deniedMessage(t, k8s.Create(ctx, newPod(newNamespace(t), "checked", keslImage)))
}

// TestPullSecretsStayInNamespace: a pod's imagePullSecrets are read from its own namespace; a
// same-named secret in another namespace is never used.
func TestPullSecretsStayInNamespace(t *testing.T) {
	t.Parallel()
	private, err := ti.NewRegistry(ti.WithBasicAuth("puller", "pa55"))
	if err != nil {
		t.Fatal(err)
	}
	defer private.Close()
	img, err := ti.KasperskyEndpoint()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := private.Push("team/kesl:1", img); err != nil {
		t.Fatal(err)
	}
	image := private.Ref("team/kesl:1")
	ctx := context.Background()

	owner := newNamespace(t)
	other := newNamespace(t)
	newPolicy(t, owner, v1alpha1.VendorPolicySpec{Action: v1alpha1.ActionDeny})
	newPolicy(t, other, v1alpha1.VendorPolicySpec{Action: v1alpha1.ActionDeny, OnScanError: v1alpha1.ScanErrorDeny})
	dockercfg := fmt.Sprintf(`{"auths":{%q:{"username":"puller","password":"pa55"}}}`, private.Host)
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: owner, Name: "regcred"},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: []byte(dockercfg)},
	}
	if err := k8s.Create(ctx, sec); err != nil {
		t.Fatal(err)
	}

	p := newPod(owner, "with-secret", image)
	p.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "regcred"}}
	wantAll(t, deniedMessage(t, k8s.Create(ctx, p)), "kesl", "AO Kaspersky Lab")

	q := newPod(other, "borrowing", image)
	q.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "regcred"}}
	wantAll(t, deniedMessage(t, k8s.Create(ctx, q)), "could not be checked", "Unauthorized", "onScanError: Deny")
}

// TestScanTimeout: a slow registry runs out the admission budget; onScanError decides, the scan
// finishes in the background and the retry is decided from the cache.
func TestScanTimeout(t *testing.T) {
	t.Parallel()
	slow, err := ti.NewRegistry()
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	ctx := context.Background()
	for _, mode := range []v1alpha1.ScanErrorAction{v1alpha1.ScanErrorAllow, v1alpha1.ScanErrorDeny} {
		t.Run(string(mode), func(t *testing.T) {
			img, err := ti.FromFiles([]ti.File{ti.DpkgStatus(ti.Deb{Name: "kesl", Version: "11.4", Maintainer: ti.KasperskyMaintainer})},
				[]ti.File{{Path: "/etc/mode", Content: []byte(mode)}})
			if err != nil {
				t.Fatal(err)
			}
			digestRef, err := slow.Push("slow/"+strings.ToLower(string(mode))+":1", img)
			if err != nil {
				t.Fatal(err)
			}
			ns := newNamespace(t)
			newPolicy(t, ns, v1alpha1.VendorPolicySpec{Action: v1alpha1.ActionDeny, OnScanError: mode})
			slow.SetDelay(6 * time.Second)
			wc := newWarningClient(t)
			start := time.Now()
			err = wc.Create(ctx, newPod(ns, "first", digestRef))
			if took := time.Since(start); took > 9*time.Second {
				t.Errorf("admission took %s, past the webhook timeout", took)
			}
			if mode == v1alpha1.ScanErrorAllow {
				if err != nil {
					t.Fatalf("fail-open must admit: %v", err)
				}
				wantAll(t, strings.Join(wc.take(), "\n"), "not checked", "Timeout")
			} else {
				wantAll(t, deniedMessage(t, err), "could not be checked", "Timeout")
			}
			digest := digestRef[strings.Index(digestRef, "@")+1:]
			eventually(t, 60*time.Second, func() error {
				if _, ok := comps.Engine.Cached(digest); !ok {
					return fmt.Errorf("scan of %s not finished", digest)
				}
				return nil
			})
			start = time.Now()
			wantAll(t, deniedMessage(t, k8s.Create(ctx, newPod(ns, "retry", digestRef))), "kesl 11.4")
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("retry took %s, want a cache answer", took)
			}
		})
	}
}

// TestConcurrentPodsOneScan: 50 pods of one new image at once cause one pull.
func TestConcurrentPodsOneScan(t *testing.T) {
	t.Parallel()
	img, err := ti.FromFiles([]ti.File{ti.DpkgStatus(ti.Deb{Name: "klnagent64", Version: "14.2", Maintainer: ti.KasperskyMaintainer})})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := reg.Push("concurrent/agent:1", img)
	if err != nil {
		t.Fatal(err)
	}
	ns := newNamespace(t)
	newPolicy(t, ns, v1alpha1.VendorPolicySpec{Action: v1alpha1.ActionDeny})
	var wg sync.WaitGroup
	denied := make(chan bool, 50)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := k8s.Create(context.Background(), newPod(ns, fmt.Sprintf("p%d", i), ref))
			denied <- err != nil && strings.Contains(err.Error(), "klnagent64")
		}()
	}
	wg.Wait()
	close(denied)
	n := 0
	for d := range denied {
		if d {
			n++
		}
	}
	if n != 50 {
		t.Errorf("%d of 50 pods denied", n)
	}
	if gets := reg.ManifestGets("concurrent/agent"); gets != 1 {
		t.Errorf("50 concurrent pods: %d manifest GETs, want 1", gets)
	}
}

// TestScanRecordPersisted: a scan leaves an ImageScan whose record re-matches without a pull.
func TestScanRecordPersisted(t *testing.T) {
	t.Parallel()
	samples(t)
	ns := newNamespace(t)
	newPolicy(t, ns, v1alpha1.VendorPolicySpec{Action: v1alpha1.ActionDeny})
	deniedMessage(t, k8s.Create(context.Background(), newPod(ns, "kesl", keslImage)))
	target, err := comps.Engine.Resolve(context.Background(), keslImage, nil)
	if err != nil {
		t.Fatal(err)
	}
	var is v1alpha1.ImageScan
	eventually(t, 10*time.Second, func() error { // saved in the background
		if err := k8s.Get(context.Background(), client.ObjectKey{Name: cache.ObjectName(target.Digest.String())}, &is); err != nil {
			return err
		}
		if is.Status.Phase != v1alpha1.ImageScanScanned {
			return fmt.Errorf("ImageScan phase %q", is.Status.Phase)
		}
		return nil
	})
	if is.Status.Phase != v1alpha1.ImageScanScanned || is.Status.FindingCount == 0 || len(is.Status.Record) == 0 {
		t.Fatalf("ImageScan status: phase %s, %d findings, %d record bytes", is.Status.Phase, is.Status.FindingCount, len(is.Status.Record))
	}
	rec, err := cache.FromImageScan(&is)
	if err != nil || rec == nil || rec.PackageCount == 0 {
		t.Fatalf("record: %v %v", rec, err)
	}

	// a restarted manager (a new engine over the same ImageScans) answers without pulling
	// (a direct client: a restarted manager's informers are synced before it serves; a replica
	// that does not lead reads ImageScans and never writes them)
	restarted, err := scan.New(scan.Options{Store: controllers.NewImageScans(k8s, nil, "", nil), Registry: registry.Options{Insecure: []string{"*"}}})
	if err != nil {
		t.Fatal(err)
	}
	before := reg.ManifestGets("samples/kesl")
	again, err := restarted.Scan(context.Background(), target, nil, scan.Foreground)
	if err != nil {
		t.Fatal(err)
	}
	if after := reg.ManifestGets("samples/kesl"); after != before {
		t.Errorf("restarted engine pulled again: %d -> %d manifest GETs", before, after)
	}
	if again.PackageCount != rec.PackageCount {
		t.Errorf("restarted engine's record has %d packages, want %d", again.PackageCount, rec.PackageCount)
	}
}

// TestPolicyValidation: bad policies are rejected with a message that says what to fix.
func TestPolicyValidation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cases := map[string]struct {
		spec v1alpha1.VendorPolicySpec
		want string
	}{
		"bad regex": {spec: v1alpha1.VendorPolicySpec{Vendors: []v1alpha1.VendorSelector{{Name: "X", Rules: &v1alpha1.VendorRules{Suppliers: []string{"(unclosed"}}}}},
			want: "spec.vendors[0].rules: suppliers[0]"},
		"unknown catalog id": {spec: v1alpha1.VendorPolicySpec{Vendors: []v1alpha1.VendorSelector{{Catalog: "acme"}}},
			want: "is not a built-in entry (have: kaspersky"},
		"catalog and rules (CRD rule)": {spec: v1alpha1.VendorPolicySpec{Vendors: []v1alpha1.VendorSelector{{Catalog: "kaspersky", Name: "x", Rules: &v1alpha1.VendorRules{Paths: []string{"/opt/x/**"}}}}},
			want: "set exactly one of 'catalog'"},
		"bad action (CRD enum)": {spec: v1alpha1.VendorPolicySpec{Action: "Block", Vendors: []v1alpha1.VendorSelector{{Catalog: "kaspersky"}}},
			want: `Unsupported value: "Block"`},
		"exception without reason": {spec: v1alpha1.VendorPolicySpec{Vendors: []v1alpha1.VendorSelector{{Catalog: "kaspersky"}},
			Exceptions: []v1alpha1.Exception{{Namespaces: []string{"x"}}}}, want: "reason"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			p := &v1alpha1.VendorPolicy{ObjectMeta: metav1.ObjectMeta{GenerateName: "invalid-"}, Spec: tc.spec}
			err := k8s.Create(ctx, p)
			if err == nil {
				_ = k8s.Delete(ctx, p)
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q lacks %q", err, tc.want)
			}
		})
	}
}

// TestMalformedReview: garbage sent to the webhook gets an error answer and breaks nothing.
func TestMalformedReview(t *testing.T) {
	t.Parallel()
	wio := &testEnv.WebhookInstallOptions
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // local test server
	url := "https://" + net.JoinHostPort(wio.LocalServingHost, fmt.Sprint(wio.LocalServingPort)) + manager.WorkloadsPath
	review := func(object string) string {
		return `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","kind":{"group":"","version":"v1","kind":"Pod"},` +
			`"resource":{"group":"","version":"v1","resource":"pods"},"namespace":"default","operation":"CREATE","object":` + object + `}}`
	}
	cases := map[string]struct {
		body     string
		wantCode int32
	}{
		"not json":         {body: "{{{", wantCode: 0},
		"object not a pod": {body: review(`{"spec":{"containers":"nope"}}`), wantCode: http.StatusBadRequest},
		"unknown kind":     {body: strings.Replace(review(`{}`), `"kind":"Pod"`, `"kind":"Widget"`, 1), wantCode: http.StatusBadRequest},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			resp, err := hc.Post(url, "application/json", bytes.NewBufferString(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if tc.wantCode == 0 {
				if resp.StatusCode < 400 && !bytes.Contains(body, []byte(`"code":400`)) {
					t.Errorf("status %d body %s", resp.StatusCode, body)
				}
				return
			}
			var out struct {
				Response struct {
					Allowed bool `json:"allowed"`
					Status  struct {
						Code int32 `json:"code"`
					} `json:"status"`
				} `json:"response"`
			}
			if err := json.Unmarshal(body, &out); err != nil {
				t.Fatalf("%v: %s", err, body)
			}
			if out.Response.Allowed || out.Response.Status.Code != tc.wantCode {
				t.Errorf("got allowed=%v code=%d, want code %d: %s", out.Response.Allowed, out.Response.Status.Code, tc.wantCode, body)
			}
		})
	}
}

// TestPolicyChangeRematches: a policy change re-matches the stored scan record; no new pull.
func TestPolicyChangeRematches(t *testing.T) {
	t.Parallel()
	img, err := ti.FromFiles([]ti.File{ti.DpkgStatus(
		ti.Deb{Name: "acme-agent", Version: "3.0", Maintainer: "Acme Corp <ops@acme.example>"},
		ti.Deb{Name: "bash", Version: "5.2", Maintainer: "Matthias Klose <doko@debian.org>"},
	)})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := reg.Push("rematch/acme:1", img)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ns := newNamespace(t)
	p := newPolicy(t, ns, v1alpha1.VendorPolicySpec{Action: v1alpha1.ActionDeny})
	if err := k8s.Create(ctx, newPod(ns, "before", ref)); err != nil {
		t.Fatalf("no Kaspersky software, want admitted: %v", err)
	}
	pulls := reg.ManifestGets("rematch/acme")

	if err := k8s.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
		t.Fatal(err)
	}
	p.Spec.Vendors = append(p.Spec.Vendors, v1alpha1.VendorSelector{Name: "Acme", Rules: &v1alpha1.VendorRules{Suppliers: []string{"Acme Corp"}}})
	if err := k8s.Update(ctx, p); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() error {
		err := k8s.Create(ctx, newPod(ns, fmt.Sprintf("after-%d", time.Now().UnixNano()%1e6), ref))
		if err == nil || !strings.Contains(err.Error(), "acme-agent 3.0") {
			return fmt.Errorf("want a denial naming acme-agent, got %v", err)
		}
		return nil
	})
	if after := reg.ManifestGets("rematch/acme"); after != pulls {
		t.Errorf("policy change pulled the image again: %d -> %d manifest GETs", pulls, after)
	}
}
