package integration

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"testing"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/embargo-dev/embargo/internal/certs"
)

// TestCertRotation: the rotator creates its Secret, patches the caBundle, serves a certificate
// valid for its hosts, and rotates it two-thirds through its life while keeping the CA.
func TestCertRotation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := newNamespace(t)
	side := admissionregistrationv1.SideEffectClassNone
	cfgName := ns + "-webhooks"
	url := "https://127.0.0.1:1/x"
	whc := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: cfgName},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name: "x.embargo.dev", ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: &url},
			SideEffects: &side, AdmissionReviewVersions: []string{"v1"},
			// matches nothing, so it never gets called
			ObjectSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"never": "matches"}},
		}},
	}
	if err := k8s.Create(ctx, whc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(ctx, whc) })

	clk := clocktesting.NewFakeClock(time.Now())
	r := &certs.Rotator{
		Client: k8s, Reader: k8s,
		Secret:         client.ObjectKey{Namespace: ns, Name: "embargo-webhook-tls"},
		Hosts:          []string{"embargo-webhook-service." + ns + ".svc", "127.0.0.1"},
		WebhookConfigs: []string{cfgName, "not-installed"},
		Validity:       90 * 24 * time.Hour,
		Clock:          clk,
		Log:            logr.Discard(),
	}
	if err := r.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	first := servingCert(t, r)
	ca := caOf(t, ctx, ns)
	verify(t, first, ca, "127.0.0.1", clk.Now())
	verify(t, first, ca, "embargo-webhook-service."+ns+".svc", clk.Now())
	if err := k8s.Get(ctx, client.ObjectKey{Name: cfgName}, whc); err != nil {
		t.Fatal(err)
	}
	if got := whc.Webhooks[0].ClientConfig.CABundle; !bytes.Equal(got, r.CABundle()) || len(got) == 0 {
		t.Fatal("caBundle not patched")
	}

	// half-way: nothing changes
	clk.Step(45 * 24 * time.Hour)
	if err := r.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if !servingCert(t, r).Equal(first) {
		t.Error("rotated half-way through the certificate's life")
	}
	// past two-thirds: a new serving certificate from the same CA
	clk.Step(20 * 24 * time.Hour)
	if err := r.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	second := servingCert(t, r)
	if second.Equal(first) {
		t.Fatal("not rotated two-thirds through")
	}
	if !caOf(t, ctx, ns).Equal(ca) {
		t.Error("CA replaced although it has years left")
	}
	verify(t, second, ca, "127.0.0.1", clk.Now())

	// another replica sharing the Secret loads the same pair instead of minting its own
	other := &certs.Rotator{Client: k8s, Reader: k8s, Secret: r.Secret, Hosts: r.Hosts, WebhookConfigs: r.WebhookConfigs,
		Validity: r.Validity, Clock: clk, Log: logr.Discard()}
	if err := other.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if !servingCert(t, other).Equal(second) {
		t.Error("a second replica minted its own certificate")
	}
}

func servingCert(t *testing.T, r *certs.Rotator) *x509.Certificate {
	t.Helper()
	c, err := r.GetCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}

func caOf(t *testing.T, ctx context.Context, ns string) *x509.Certificate {
	t.Helper()
	var sec corev1.Secret
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "embargo-webhook-tls"}, &sec); err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(sec.Data[certs.CAKey])
	if b == nil {
		t.Fatal("no CA in Secret")
	}
	ca, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func verify(t *testing.T, leaf, ca *x509.Certificate, host string, at time.Time) {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: host, CurrentTime: at}); err != nil {
		t.Errorf("certificate for %s: %v", host, err)
	}
}
