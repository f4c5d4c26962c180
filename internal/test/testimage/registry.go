// Package testimage builds real OCI images with real package-manager metadata and serves them
// from go-containerregistry's in-process registry on 127.0.0.1. Tests, benchmarks and the demo
// use it; nothing here is mocked: clients pull over HTTP exactly as from any registry.
package testimage

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Registry is an in-process registry that counts pulls per repository.
type Registry struct {
	// Host is host:port, e.g. 127.0.0.1:41234.
	Host string

	srv  *httptest.Server
	user string
	pass string

	tls     bool
	addr    string
	blobDir string

	referrers bool

	mu        sync.Mutex
	manifests map[string]int
	blobs     map[string]int
	requests  map[string]int
	byKind    map[[2]string]int
	pings     int
	delay     time.Duration
}

// Option configures a Registry.
type Option func(*Registry)

// WithBasicAuth requires these credentials for every request.
func WithBasicAuth(user, pass string) Option {
	return func(r *Registry) { r.user, r.pass = user, pass }
}

// WithTLS serves HTTPS with a self-signed certificate (clients must skip verification).
func WithTLS() Option {
	return func(r *Registry) { r.tls = true }
}

// WithAddr listens on addr (host:port) instead of 127.0.0.1:0: a dev node serves its registry on
// its bridge's host address, which containerd on the host and Pods on the bridge both reach.
func WithAddr(addr string) Option {
	return func(r *Registry) { r.addr = addr }
}

// WithDiskBlobs keeps blobs as files under dir instead of in memory (images of gigabytes).
func WithDiskBlobs(dir string) Option {
	return func(r *Registry) { r.blobDir = dir }
}

// WithReferrers serves the OCI 1.1 referrers API; without it, clients fall back to the
// referrers tag schema (sha256-<hex> tags).
func WithReferrers() Option {
	return func(r *Registry) { r.referrers = true }
}

// NewRegistry starts a registry on 127.0.0.1 (or WithAddr).
func NewRegistry(opts ...Option) (*Registry, error) {
	r := &Registry{manifests: map[string]int{}, blobs: map[string]int{}, requests: map[string]int{}, byKind: map[[2]string]int{}}
	for _, o := range opts {
		o(r)
	}
	ropts := []registry.Option{registry.Logger(log.New(io.Discard, "", 0))}
	if r.referrers {
		ropts = append(ropts, registry.WithReferrersSupport(true))
	}
	if r.blobDir != "" {
		ropts = append(ropts, registry.WithBlobHandler(registry.NewDiskBlobHandler(r.blobDir)))
	}
	inner := registry.New(ropts...)
	if r.addr == "" {
		r.addr = "127.0.0.1:0"
	}
	l, err := net.Listen("tcp", r.addr)
	if err != nil {
		return nil, err
	}
	r.srv = &httptest.Server{Listener: l, Config: &http.Server{Handler: r.handler(inner), ReadHeaderTimeout: 10 * time.Second}}
	if r.tls {
		r.srv.StartTLS()
	} else {
		r.srv.Start()
	}
	r.Host = strings.TrimPrefix(strings.TrimPrefix(r.srv.URL, "http://"), "https://")
	return r, nil
}

func (r *Registry) handler(inner http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if r.user != "" {
			u, p, ok := req.BasicAuth()
			if !ok || u != r.user || p != r.pass {
				w.Header().Set("WWW-Authenticate", `Basic realm="testimage"`)
				http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
				return
			}
		}
		if repo, kind, ok := splitPath(req.URL.Path); ok {
			r.mu.Lock()
			r.requests[repo]++
			r.byKind[[2]string{repo, kind}]++
			r.mu.Unlock()
		} else if strings.TrimSuffix(req.URL.Path, "/") == "/v2" {
			r.mu.Lock()
			r.pings++
			r.mu.Unlock()
		}
		if req.Method == http.MethodGet {
			if repo, kind, ok := splitPath(req.URL.Path); ok && (kind == "manifests" || kind == "blobs") {
				r.mu.Lock()
				delay := r.delay
				if kind == "manifests" {
					r.manifests[repo]++
				} else {
					r.blobs[repo]++
				}
				r.mu.Unlock()
				if delay > 0 && kind == "manifests" {
					select {
					case <-time.After(delay):
					case <-req.Context().Done():
						return
					}
				}
			}
		}
		inner.ServeHTTP(w, req)
	})
}

// splitPath splits /v2/<repo>/(manifests|blobs|referrers|tags)/<ref>.
func splitPath(p string) (repo, kind string, ok bool) {
	p = strings.TrimPrefix(p, "/v2/")
	for _, k := range []string{"/manifests/", "/blobs/", "/referrers/", "/tags/"} {
		if i := strings.LastIndex(p, k); i > 0 {
			return p[:i], strings.Trim(k, "/"), true
		}
	}
	return "", "", false
}

// SetDelay makes every manifest GET wait d first: a slow registry.
func (r *Registry) SetDelay(d time.Duration) {
	r.mu.Lock()
	r.delay = d
	r.mu.Unlock()
}

// ManifestGets is how many manifest GETs repo has served (HEADs are not counted).
func (r *Registry) ManifestGets(repo string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.manifests[repo]
}

// BlobGets is how many blob GETs repo has served.
func (r *Registry) BlobGets(repo string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.blobs[repo]
}

// Requests is how many requests of any method repo has served (manifests, blobs, referrers,
// tag lists).
func (r *Registry) Requests(repo string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests[repo]
}

// RequestsByKind is how many requests of any method repo has served, by endpoint: "manifests",
// "blobs", "referrers" (the OCI 1.1 referrers API) and "tags" (tag lists).
func (r *Registry) RequestsByKind(repo string) map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for k, n := range r.byKind {
		if k[0] == repo {
			out[k[1]] = n
		}
	}
	return out
}

// Pings is how many GET /v2/ requests (a client's version check and authentication challenge,
// made before it first reaches a repository) the registry has served.
func (r *Registry) Pings() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pings
}

// Close stops the registry.
func (r *Registry) Close() { r.srv.Close() }

// Ref returns host/repo:tag.
func (r *Registry) Ref(repoTag string) string { return r.Host + "/" + repoTag }

func (r *Registry) remoteOpts() []remote.Option {
	var opts []remote.Option
	if r.user != "" {
		opts = append(opts, remote.WithAuth(authn.FromConfig(authn.AuthConfig{Username: r.user, Password: r.pass})))
	}
	if r.tls {
		opts = append(opts, remote.WithTransport(r.srv.Client().Transport))
	}
	return opts
}

// Push uploads img as host/repoTag and returns its host/repo@digest reference.
func (r *Registry) Push(repoTag string, img v1.Image) (string, error) {
	ref, err := name.ParseReference(r.Ref(repoTag))
	if err != nil {
		return "", err
	}
	if err := remote.Write(ref, img, r.remoteOpts()...); err != nil {
		return "", fmt.Errorf("pushing %s: %w", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return "", err
	}
	return ref.Context().Digest(d.String()).String(), nil
}

// PushIndex uploads an image index as host/repoTag and returns its digest reference.
func (r *Registry) PushIndex(repoTag string, idx v1.ImageIndex) (string, error) {
	ref, err := name.ParseReference(r.Ref(repoTag))
	if err != nil {
		return "", err
	}
	if err := remote.WriteIndex(ref, idx, r.remoteOpts()...); err != nil {
		return "", fmt.Errorf("pushing %s: %w", ref, err)
	}
	d, err := idx.Digest()
	if err != nil {
		return "", err
	}
	return ref.Context().Digest(d.String()).String(), nil
}

// Delete removes a manifest, so later pulls of it fail with 404.
func (r *Registry) Delete(digestRef string) error {
	ref, err := name.ParseReference(digestRef)
	if err != nil {
		return err
	}
	return remote.Delete(ref, r.remoteOpts()...)
}
