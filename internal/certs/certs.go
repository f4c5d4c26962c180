// Package certs lets the manager serve its webhooks without cert-manager: it keeps a CA and a
// serving certificate in a Secret of its own namespace, rotates them before they expire, serves
// the current certificate from memory and keeps the webhook configurations' caBundle in step.
package certs

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"sync"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Secret keys.
const (
	CAKey   = "ca.crt"
	CertKey = "tls.crt"
	KeyKey  = "tls.key"
)

// Rotator keeps the webhook serving certificate valid. Every replica runs one; they agree
// through the Secret (optimistic concurrency), so no leader is needed.
type Rotator struct {
	// Client writes; Reader reads uncached, so the manager never lists or watches Secrets.
	Client client.Client
	Reader client.Reader
	// Secret is the namespace/name of the Secret holding the CA and the serving pair.
	Secret client.ObjectKey
	// Hosts are the DNS names and IPs the certificate is valid for.
	Hosts []string
	// WebhookConfigs are ValidatingWebhookConfiguration names whose caBundle is kept current.
	WebhookConfigs []string
	// Validity of the serving certificate (CA: 10×). Rotation happens at 2/3 of it.
	Validity time.Duration
	Clock    clock.PassiveClock
	Log      logr.Logger
	// Interval between checks.
	Interval time.Duration

	mu   sync.RWMutex
	cert *tls.Certificate
	ca   []byte
	// Ready is closed once a certificate is loaded and the caBundles patched.
	ready     chan struct{}
	readyOnce sync.Once
}

func (r *Rotator) defaults() {
	if r.Validity <= 0 {
		r.Validity = 365 * 24 * time.Hour
	}
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	if r.Interval <= 0 {
		r.Interval = 10 * time.Minute
	}
	if r.ready == nil {
		r.ready = make(chan struct{})
	}
}

// GetCertificate serves the current certificate (tls.Config.GetCertificate).
func (r *Rotator) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.cert == nil {
		return nil, errors.New("webhook certificate not ready yet")
	}
	return r.cert, nil
}

// CABundle is the PEM CA currently trusted for the webhook.
func (r *Rotator) CABundle() []byte {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.ca
}

// Ready is closed once the first certificate is in place.
func (r *Rotator) Ready() <-chan struct{} {
	r.mu.Lock()
	r.defaults()
	r.mu.Unlock()
	return r.ready
}

// Start implements manager.Runnable: ensure now, then every Interval.
func (r *Rotator) Start(ctx context.Context) error {
	r.mu.Lock()
	r.defaults()
	r.mu.Unlock()
	for {
		if err := r.Ensure(ctx); err != nil {
			r.Log.Error(err, "webhook certificate")
		}
		wait := r.Interval
		if !r.isReady() {
			wait = 2 * time.Second
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// NeedLeaderElection is false: every replica serves the webhook.
func (r *Rotator) NeedLeaderElection() bool { return false }

func (r *Rotator) isReady() bool {
	select {
	case <-r.ready:
		return true
	default:
		return false
	}
}

// Ensure makes the Secret hold a valid pair for Hosts (creating or rotating it), loads it and
// patches the caBundles.
func (r *Rotator) Ensure(ctx context.Context) error {
	r.mu.Lock()
	r.defaults()
	r.mu.Unlock()
	var sec corev1.Secret
	err := r.Reader.Get(ctx, r.Secret, &sec)
	switch {
	case apierrors.IsNotFound(err):
		data, err := r.generate(nil)
		if err != nil {
			return err
		}
		sec = corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: r.Secret.Namespace, Name: r.Secret.Name,
				Labels: map[string]string{"app.kubernetes.io/managed-by": "embargo"}},
			Type: corev1.SecretTypeTLS,
			Data: data,
		}
		if err := r.Client.Create(ctx, &sec); err != nil {
			if apierrors.IsAlreadyExists(err) {
				return r.Ensure(ctx) // another replica won; use its pair
			}
			return fmt.Errorf("creating Secret %s: %w", r.Secret, err)
		}
		r.Log.Info("generated webhook certificate", "secret", r.Secret.String())
	case err != nil:
		return fmt.Errorf("reading Secret %s: %w", r.Secret, err)
	default:
		if reason := r.needsRotation(sec.Data); reason != "" {
			data, err := r.generate(sec.Data)
			if err != nil {
				return err
			}
			sec.Data = data
			if err := r.Client.Update(ctx, &sec); err != nil {
				if apierrors.IsConflict(err) {
					return r.Ensure(ctx)
				}
				return fmt.Errorf("rotating Secret %s: %w", r.Secret, err)
			}
			r.Log.Info("rotated webhook certificate", "secret", r.Secret.String(), "reason", reason)
		}
	}
	if err := r.load(sec.Data); err != nil {
		return err
	}
	if err := r.patchCABundles(ctx, sec.Data[CAKey]); err != nil {
		return err
	}
	r.readyOnce.Do(func() { close(r.ready) })
	return nil
}

func (r *Rotator) load(data map[string][]byte) error {
	pair, err := tls.X509KeyPair(data[CertKey], data[KeyKey])
	if err != nil {
		return fmt.Errorf("loading the serving pair: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cert = &pair
	r.ca = data[CAKey]
	return nil
}

// needsRotation says why the pair in data must be replaced, or "".
func (r *Rotator) needsRotation(data map[string][]byte) string {
	leaf, err := parseCert(data[CertKey])
	if err != nil {
		return "no valid serving certificate"
	}
	ca, err := parseCert(data[CAKey])
	if err != nil {
		return "no valid CA"
	}
	if _, err := tls.X509KeyPair(data[CertKey], data[KeyKey]); err != nil {
		return "key does not match certificate"
	}
	now := r.Clock.Now()
	lifetime := leaf.NotAfter.Sub(leaf.NotBefore)
	if now.After(leaf.NotBefore.Add(lifetime * 2 / 3)) {
		return "serving certificate is two-thirds through its life"
	}
	if now.Add(lifetime).After(ca.NotAfter) {
		return "CA expires before the next serving certificate would"
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	for _, h := range r.Hosts {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: h, CurrentTime: now}); err != nil {
			return fmt.Sprintf("certificate not valid for %s", h)
		}
	}
	return ""
}

// generate makes a serving pair, keeping the CA in old when it still has long to live.
func (r *Rotator) generate(old map[string][]byte) (map[string][]byte, error) {
	now := r.Clock.Now()
	var caCert *x509.Certificate
	var caKey *ecdsa.PrivateKey
	if old != nil {
		if c, err := parseCert(old[CAKey]); err == nil && c.NotAfter.After(now.Add(2*r.Validity)) {
			if k, err := parseKey(old["ca.key"]); err == nil {
				caCert, caKey = c, k
			}
		}
	}
	if caCert == nil {
		var err error
		caKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		tmpl := &x509.Certificate{
			SerialNumber:          serial(),
			Subject:               pkix.Name{CommonName: "embargo-webhook-ca", Organization: []string{"embargo"}},
			NotBefore:             now.Add(-time.Hour),
			NotAfter:              now.Add(10 * r.Validity),
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
			BasicConstraintsValid: true,
			IsCA:                  true,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &caKey.PublicKey, caKey)
		if err != nil {
			return nil, err
		}
		caCert, _ = x509.ParseCertificate(der)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: firstOr(r.Hosts, "embargo-webhook")},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(r.Validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range r.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	caKeyDER, err := x509.MarshalECPrivateKey(caKey)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	return map[string][]byte{
		CAKey:    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caCert.Raw}),
		"ca.key": pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: caKeyDER}),
		CertKey:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyKey:   pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

// patchCABundles sets caBundle on every webhook of the named configurations.
func (r *Rotator) patchCABundles(ctx context.Context, ca []byte) error {
	for _, name := range r.WebhookConfigs {
		var cfg admissionregistrationv1.ValidatingWebhookConfiguration
		if err := r.Reader.Get(ctx, client.ObjectKey{Name: name}, &cfg); err != nil {
			if apierrors.IsNotFound(err) {
				continue // not installed (yet): the next round patches it
			}
			return err
		}
		changed := false
		orig := cfg.DeepCopy()
		for i := range cfg.Webhooks {
			if !bytes.Equal(cfg.Webhooks[i].ClientConfig.CABundle, ca) {
				cfg.Webhooks[i].ClientConfig.CABundle = ca
				changed = true
			}
		}
		if !changed {
			continue
		}
		if err := r.Client.Patch(ctx, &cfg, client.MergeFrom(orig)); err != nil {
			return fmt.Errorf("patching caBundle of %s: %w", name, err)
		}
		r.Log.Info("patched webhook caBundle", "configuration", name)
	}
	return nil
}

func parseCert(p []byte) (*x509.Certificate, error) {
	b, _ := pem.Decode(p)
	if b == nil {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(b.Bytes)
}

func parseKey(p []byte) (*ecdsa.PrivateKey, error) {
	b, _ := pem.Decode(p)
	if b == nil {
		return nil, errors.New("no PEM key")
	}
	return x509.ParseECPrivateKey(b.Bytes)
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n
}

func firstOr(list []string, def string) string {
	if len(list) > 0 {
		return list[0]
	}
	return def
}
