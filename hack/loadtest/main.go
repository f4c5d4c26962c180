// Command loadtest measures Embargo's admission webhook the way the API server calls it:
// AdmissionReviews over HTTPS to the real manager (manager.Setup, its webhook server, a real
// kube-apiserver and etcd from envtest, images in an in-process registry), with the image's
// digest already scanned, next to a no-op webhook measured in the same run: an in-process HTTPS
// server with the same certificate and TLS settings that decodes each review and answers
// allowed=true, loaded by the same client. Everything listens on 127.0.0.1.
//
//	KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh) go run ./hack/loadtest -concurrency 8 -duration 10s
//
// hack/loadtest.sh does exactly that.
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	goruntime "runtime"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/embargo-dev/embargo/api/v1alpha1"
	"github.com/embargo-dev/embargo/internal/manager"
	"github.com/embargo-dev/embargo/internal/scan"
	"github.com/embargo-dev/embargo/internal/test/inprocess"
	ti "github.com/embargo-dev/embargo/internal/test/testimage"
)

const (
	loadNamespace = "loadtest"
	// Bounds on any run, whatever the flags say.
	maxDuration = 5 * time.Minute
	maxRequests = 5_000_000
)

type config struct {
	concurrency int
	duration    time.Duration
	warmup      time.Duration
	rounds      int
	requests    int64
	image       string
	http1       bool
	root        string
	verbose     bool
	cpuprofile  string
}

func main() {
	var c config
	flag.IntVar(&c.concurrency, "concurrency", 8, "requests in flight at once (workers)")
	flag.DurationVar(&c.duration, "duration", 10*time.Second, "measured load per endpoint and round")
	flag.DurationVar(&c.warmup, "warmup", time.Second, "unmeasured load before each measured one")
	flag.IntVar(&c.rounds, "rounds", 2, "rounds; each loads both endpoints, alternating which goes first")
	flag.Int64Var(&c.requests, "max-requests", 1_000_000, "at most this many measured requests per endpoint and round")
	flag.StringVar(&c.image, "image", "kesl", "image in the reviewed Pod: kesl (denied), clean (allowed) or synthetic (1,000 packages, denied)")
	flag.BoolVar(&c.http1, "http1", false, "use HTTP/1.1 with one connection per worker instead of HTTP/2 (what the API server uses)")
	flag.StringVar(&c.root, "root", ".", "repository root (for config/crd and config/webhook)")
	flag.BoolVar(&c.verbose, "v", false, "log the manager")
	flag.StringVar(&c.cpuprofile, "cpuprofile", "", "write a CPU profile of the first measured load of embargo to `FILE` (client and server share the process)")
	flag.Parse()
	if c.concurrency < 1 || c.concurrency > 1024 {
		fatal(fmt.Errorf("-concurrency must be in 1..1024, got %d", c.concurrency))
	}
	if c.duration <= 0 || c.duration > maxDuration || c.warmup < 0 || c.warmup > maxDuration {
		fatal(fmt.Errorf("-duration and -warmup must be within (0, %s]", maxDuration))
	}
	if c.rounds < 1 || c.rounds > 10 {
		fatal(fmt.Errorf("-rounds must be in 1..10, got %d", c.rounds))
	}
	if c.requests < 1 || c.requests > maxRequests {
		fatal(fmt.Errorf("-max-requests must be in 1..%d", maxRequests))
	}
	if err := run(c); err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "loadtest:", err)
	os.Exit(1)
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "loadtest: "+format+"\n", args...)
}

type testImage struct {
	build       func() (v1.Image, error)
	wantAllowed bool
}

var images = map[string]testImage{
	"kesl":      {ti.KasperskyEndpoint, false},
	"clean":     {ti.Clean, true},
	"synthetic": {func() (v1.Image, error) { return ti.Synthetic(1000, 4<<20, 2) }, false},
}

func run(c config) error {
	img, ok := images[c.image]
	if !ok {
		return fmt.Errorf("-image %q: want kesl, clean or synthetic", c.image)
	}
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		return errors.New("KUBEBUILDER_ASSETS is not set: run hack/loadtest.sh, or export KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh)")
	}
	if c.verbose {
		logf.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.UseDevMode(true)))
	} else {
		logf.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	}
	progress("starting kube-apiserver, etcd (envtest) and the manager")
	env, err := inprocess.Start(inprocess.Options{
		Root: c.root,
		Manager: manager.Options{
			ExemptNamespaces: []string{"kube-system"},
			Engine:           scan.Options{Platforms: []string{"linux/amd64"}},
			Budget:           30 * time.Second, // the first (cold) review scans
		},
	})
	defer func() { _ = env.Stop() }()
	if err != nil {
		return err
	}
	k8s, reg, wio := env.Client, env.Registry, &env.Env.WebhookInstallOptions
	ctx := context.Background()
	i, err := img.build()
	if err != nil {
		return err
	}
	imageRef := reg.Ref("loadtest/" + c.image + ":1")
	if _, err := reg.Push("loadtest/"+c.image+":1", i); err != nil {
		return err
	}
	embargoURL := "https://" + env.WebhookAddr + manager.WorkloadsPath

	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: loadNamespace, Labels: map[string]string{"embargo-loadtest": "true"}}}); err != nil {
		return err
	}
	pol := &v1alpha1.VendorPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "loadtest-deny"},
		Spec: v1alpha1.VendorPolicySpec{
			Action:  v1alpha1.ActionDeny,
			Match:   v1alpha1.MatchSpec{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"embargo-loadtest": "true"}}},
			Vendors: []v1alpha1.VendorSelector{{Catalog: "kaspersky"}},
		},
	}
	if err := k8s.Create(ctx, pol); err != nil {
		return fmt.Errorf("creating the VendorPolicy: %w", err)
	}
	for deadline := time.Now().Add(30 * time.Second); env.PolicyCached(ctx, pol.Name, true) != nil; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("VendorPolicy %s did not reach the manager's cache", pol.Name)
		}
	}

	body, err := reviewBody(imageRef)
	if err != nil {
		return err
	}
	cl, err := newClient(wio.LocalServingCAData, c.concurrency, c.http1)
	if err != nil {
		return err
	}
	noop, err := startNoop(filepath.Join(wio.LocalServingCertDir, "tls.crt"), filepath.Join(wio.LocalServingCertDir, "tls.key"))
	if err != nil {
		return err
	}
	defer noop.Close()

	// Warm the cache: the first review resolves the tag and scans the image.
	start := time.Now()
	if err := review(ctx, cl, embargoURL, body, img.wantAllowed); err != nil {
		return fmt.Errorf("warming: %w", err)
	}
	progress("first (cold) review answered in %s; the digest is now cached", time.Since(start).Round(time.Millisecond))
	if err := review(ctx, cl, noop.url, body, true); err != nil {
		return fmt.Errorf("no-op webhook: %w", err)
	}

	targets := []*target{
		{name: "no-op webhook (baseline)", url: noop.url, wantAllowed: true},
		{name: "embargo /validate-workloads", url: embargoURL, wantAllowed: img.wantAllowed},
	}
	for r := range c.rounds {
		order := []*target{targets[0], targets[1]}
		if r%2 == 1 {
			slices.Reverse(order)
		}
		for _, t := range order {
			if c.warmup > 0 {
				if _, _, err := load(ctx, cl, t, body, c.concurrency, c.warmup, c.requests); err != nil {
					return fmt.Errorf("%s: %w", t.name, err)
				}
			}
			progress("round %d/%d: %s for %s at concurrency %d", r+1, c.rounds, t.name, c.duration, c.concurrency)
			stop, err := profile(c.cpuprofile, t == targets[1] && len(t.latencies) == 0)
			if err != nil {
				return err
			}
			lat, elapsed, err := load(ctx, cl, t, body, c.concurrency, c.duration, c.requests)
			stop()
			if err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
			t.latencies = append(t.latencies, lat...)
			t.elapsed += elapsed
		}
	}
	select {
	case err := <-env.Done():
		return fmt.Errorf("manager stopped: %w", err)
	default:
	}
	report(c, targets)
	return nil
}

// profile starts a CPU profile into file when on; the returned func stops it.
func profile(file string, on bool) (func(), error) {
	if file == "" || !on {
		return func() {}, nil
	}
	f, err := os.Create(file)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); _ = f.Close() }, nil
}

type target struct {
	name        string
	url         string
	wantAllowed bool
	latencies   []time.Duration
	elapsed     time.Duration
}

func (t *target) rate() float64 { return float64(len(t.latencies)) / t.elapsed.Seconds() }

func (t *target) quantile(q float64) time.Duration {
	if len(t.latencies) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(t.latencies)))) - 1
	return t.latencies[max(0, min(i, len(t.latencies)-1))]
}

func report(c config, targets []*target) {
	for _, t := range targets {
		slices.Sort(t.latencies)
	}
	proto := "HTTP/2 (one connection, multiplexed)"
	if c.http1 {
		proto = "HTTP/1.1 (a connection per worker)"
	}
	fmt.Printf("image %s; %d CPUs, GOMAXPROCS %d; concurrency %d; %d round(s) of %s per endpoint; %s; client, both servers, registry in one process; kube-apiserver and etcd beside it\n",
		c.image, goruntime.NumCPU(), goruntime.GOMAXPROCS(0), c.concurrency, c.rounds, c.duration, proto)
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "endpoint\trequests\treq/s\tp50\tp99\tp99.9\tmax\t")
	for _, t := range targets {
		fmt.Fprintf(w, "%s\t%d\t%.0f\t%s\t%s\t%s\t%s\t\n", t.name, len(t.latencies), t.rate(),
			us(t.quantile(0.5)), us(t.quantile(0.99)), us(t.quantile(0.999)), us(t.quantile(1)))
	}
	_ = w.Flush()
	base, e := targets[0], targets[1]
	fmt.Printf("ratio embargo/no-op: req/s %.2f, p50 %.2f, p99 %.2f\n",
		e.rate()/base.rate(), ratio(e.quantile(0.5), base.quantile(0.5)), ratio(e.quantile(0.99), base.quantile(0.99)))
}

func ratio(a, b time.Duration) float64 { return float64(a) / float64(b) }

func us(d time.Duration) string { return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond)) }

// load sends body to t from concurrency workers until d passes or limit requests were sent,
// and returns each request's latency.
func load(ctx context.Context, cl *http.Client, t *target, body []byte, concurrency int, d time.Duration, limit int64) ([]time.Duration, time.Duration, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var sent atomic.Int64
	var firstErr error
	var errOnce sync.Once
	per := make([][]time.Duration, concurrency)
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for w := range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 4096)
			for ctx.Err() == nil && time.Now().Before(deadline) && sent.Add(1) <= limit {
				s := time.Now()
				if err := review(ctx, cl, t.url, body, t.wantAllowed); err != nil {
					errOnce.Do(func() { firstErr = err; cancel() })
					return
				}
				lat = append(lat, time.Since(s))
			}
			per[w] = lat
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return nil, 0, firstErr
	}
	var all []time.Duration
	for _, l := range per {
		all = append(all, l...)
	}
	return all, elapsed, nil
}

type reviewResponse struct {
	Response struct {
		UID     string `json:"uid"`
		Allowed bool   `json:"allowed"`
	} `json:"response"`
}

func review(ctx context.Context, cl *http.Client, url string, body []byte, wantAllowed bool) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := cl.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %s: %s", resp.Status, data)
	}
	var r reviewResponse
	if err := json.Unmarshal(data, &r); err != nil {
		return err
	}
	if r.Response.UID != reviewUID || r.Response.Allowed != wantAllowed {
		return fmt.Errorf("uid %q allowed %v, want %q %v: %s", r.Response.UID, r.Response.Allowed, reviewUID, wantAllowed, data)
	}
	return nil
}

const reviewUID = "5e1f8a2c-loadtest"

// reviewBody is the AdmissionReview the API server sends for creating a Pod running image in
// the load namespace.
func reviewBody(image string) ([]byte, error) {
	pod := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "web-7d4b9c6f5d-x2x9k", Namespace: loadNamespace, Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{
			Containers:         []corev1.Container{{Name: "app", Image: image}},
			ServiceAccountName: "default",
		},
	}
	raw, err := json.Marshal(pod)
	if err != nil {
		return nil, err
	}
	return json.Marshal(&admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       reviewUID,
			Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			Name:      pod.Name,
			Namespace: loadNamespace,
			Operation: admissionv1.Create,
			UserInfo:  authenticationv1.UserInfo{Username: "system:serviceaccount:kube-system:replicaset-controller"},
			Object:    runtime.RawExtension{Raw: raw},
		},
	})
}

func newClient(caPEM []byte, concurrency int, http1 bool) (*http.Client, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("envtest gave no serving CA")
	}
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:   !http1,
		MaxIdleConns:        concurrency,
		MaxIdleConnsPerHost: concurrency,
		IdleConnTimeout:     90 * time.Second,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if host, _, err := net.SplitHostPort(addr); err != nil || host != "127.0.0.1" {
				return nil, fmt.Errorf("loadtest only dials 127.0.0.1, not %s", addr)
			}
			return (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
		},
	}
	if http1 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return &http.Client{Transport: tr, Timeout: 15 * time.Second}, nil
}

type noopServer struct {
	url string
	srv *http.Server
}

func (n *noopServer) Close() { _ = n.srv.Close() }

// startNoop serves a webhook that decodes each AdmissionReview and allows it, over TLS set up
// as controller-runtime's webhook server sets it up (same certificate, HTTP/2 offered).
func startNoop(certFile, keyFile string) (*noopServer, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2"}})
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/validate", func(w http.ResponseWriter, r *http.Request) {
		var ar admissionv1.AdmissionReview
		if err := json.NewDecoder(r.Body).Decode(&ar); err != nil || ar.Request == nil {
			http.Error(w, "bad review", http.StatusBadRequest)
			return
		}
		out := admissionv1.AdmissionReview{
			TypeMeta: ar.TypeMeta,
			Response: &admissionv1.AdmissionResponse{UID: ar.Request.UID, Allowed: true},
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(&out)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	return &noopServer{url: "https://" + l.Addr().String() + "/validate", srv: srv}, nil
}
