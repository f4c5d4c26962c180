// Package registry resolves image references to digests and pulls images with
// go-containerregistry: per-call credentials, mirrors, plain-HTTP or self-signed registries,
// platform selection, and a size budget that guards against decompression bombs.
package registry

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Defaults for Options.
const (
	DefaultMaxImageBytes = 4 << 30
	DefaultMaxLayers     = 256
)

// Options configure a Client. The zero value is usable.
type Options struct {
	// Insecure lists registries (host[:port]) that may be reached over plain HTTP or with an
	// unverified certificate; "*" allows every registry.
	Insecure []string
	// Mirrors maps a registry host to mirrors tried first, in order; the origin comes last.
	Mirrors map[string][]string
	// MaxImageBytes bounds one platform image's uncompressed layers (0: DefaultMaxImageBytes).
	MaxImageBytes int64
	// MaxLayers bounds the layers of one image (0: DefaultMaxLayers).
	MaxLayers int
	// Transport is the base transport (nil: a clone of http.DefaultTransport owned by the client).
	Transport http.RoundTripper
	// UserAgent is sent to registries.
	UserAgent string
}

// Client talks to registries. It is safe for concurrent use.
type Client struct {
	opts     Options
	secure   http.RoundTripper
	insecure http.RoundTripper
}

// New returns a Client.
func New(opts Options) *Client {
	if opts.MaxImageBytes <= 0 {
		opts.MaxImageBytes = DefaultMaxImageBytes
	}
	if opts.MaxLayers <= 0 {
		opts.MaxLayers = DefaultMaxLayers
	}
	c := &Client{opts: opts, secure: opts.Transport}
	if c.secure == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 16
		t.IdleConnTimeout = 30 * time.Second
		c.secure = t
	}
	if base, ok := c.secure.(*http.Transport); ok {
		t := base.Clone()
		t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // only for registries the operator listed as insecure
		c.insecure = t
	} else {
		c.insecure = c.secure
	}
	return c
}

// KeychainFunc returns the credentials a pod in namespace would pull with: its service account's
// and its own imagePullSecrets, read from that namespace only.
type KeychainFunc func(ctx context.Context, namespace, serviceAccount string, pullSecrets []string) (authn.Keychain, error)

// Target is a resolved image: the reference asked for and the digest it points to.
type Target struct {
	// Ref is the reference as pinned to Digest, in the registry that answered.
	Ref       name.Digest
	Digest    v1.Hash
	MediaType types.MediaType
}

func (c *Client) isInsecure(registry string) bool {
	return slices.Contains(c.opts.Insecure, "*") || slices.Contains(c.opts.Insecure, registry)
}

func (c *Client) parse(image string) (name.Reference, error) {
	ref, err := name.ParseReference(image)
	if err != nil {
		return nil, &Error{Kind: KindInvalid, Ref: image, Err: err}
	}
	if c.isInsecure(ref.Context().RegistryStr()) {
		ref, err = name.ParseReference(image, name.Insecure)
		if err != nil {
			return nil, &Error{Kind: KindInvalid, Ref: image, Err: err}
		}
	}
	return ref, nil
}

// candidates lists where to look for ref: its mirrors in order, then the origin.
func (c *Client) candidates(ref name.Reference) []name.Reference {
	origin := ref.Context().RegistryStr()
	out := make([]name.Reference, 0, 1+len(c.opts.Mirrors[origin]))
	for _, m := range c.opts.Mirrors[origin] {
		s := m + "/" + ref.Context().RepositoryStr()
		if d, ok := ref.(name.Digest); ok {
			s += "@" + d.DigestStr()
		} else {
			s += ":" + ref.Identifier()
		}
		var opts []name.Option
		if c.isInsecure(m) {
			opts = append(opts, name.Insecure)
		}
		if mr, err := name.ParseReference(s, opts...); err == nil {
			out = append(out, mr)
		}
	}
	return append(out, ref)
}

func (c *Client) remoteOptions(ctx context.Context, ref name.Reference, kc authn.Keychain) []remote.Option {
	if kc == nil {
		// never fall back to the default keychain: it reads ~/.docker and may run helpers
		kc = authn.NewMultiKeychain()
	}
	rt := c.secure
	if c.isInsecure(ref.Context().RegistryStr()) {
		rt = c.insecure
	}
	opts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(kc), remote.WithTransport(rt)}
	if c.opts.UserAgent != "" {
		opts = append(opts, remote.WithUserAgent(c.opts.UserAgent))
	}
	return opts
}

// Resolve returns the digest image points to: one HEAD per candidate registry, none when the
// reference already names a digest.
func (c *Client) Resolve(ctx context.Context, image string, kc authn.Keychain) (Target, error) {
	ref, err := c.parse(image)
	if err != nil {
		return Target{}, err
	}
	if d, ok := ref.(name.Digest); ok {
		h, err := v1.NewHash(d.DigestStr())
		if err != nil {
			return Target{}, &Error{Kind: KindInvalid, Ref: image, Err: err}
		}
		return Target{Ref: d, Digest: h}, nil
	}
	var errs []error
	for _, cand := range c.candidates(ref) {
		desc, err := remote.Head(cand, c.remoteOptions(ctx, cand, kc)...)
		if err != nil {
			errs = append(errs, classify(ctx, cand.String(), err))
			if ctx.Err() != nil {
				break
			}
			continue
		}
		return Target{Ref: cand.Context().Digest(desc.Digest.String()), Digest: desc.Digest, MediaType: desc.MediaType}, nil
	}
	return Target{}, firstMeaningful(image, errs)
}

// firstMeaningful returns the origin's error (the last), unless a timeout cut the list short.
func firstMeaningful(image string, errs []error) error {
	if len(errs) == 0 {
		return &Error{Kind: KindUnavailable, Ref: image, Err: errors.New("no registry to ask")}
	}
	return errs[len(errs)-1]
}

// PlatformImage is one platform's image of a pulled artifact.
type PlatformImage struct {
	// Platform is os/arch[/variant].
	Platform string
	// Digest is this platform's manifest digest (the artifact's digest for a single image).
	Digest   v1.Hash
	Manifest []byte
	// Image is size-limited: reading past Options.MaxImageBytes fails with ErrTooLarge.
	Image v1.Image
	// Attestations are the BuildKit attestation manifests the index names for this platform
	// (annotation vnd.docker.reference.digest); fetched only when read.
	Attestations []v1.Image
}

// Fetch pulls the manifests of the artifact at t and returns one image per selected platform
// (every platform when platforms is empty). Layers are fetched lazily as the caller reads them.
func (c *Client) Fetch(ctx context.Context, t Target, kc authn.Keychain, platforms []string) ([]PlatformImage, error) {
	var (
		desc *remote.Descriptor
		errs []error
		ref  name.Reference
	)
	for _, cand := range c.candidates(t.Ref) {
		d, err := remote.Get(cand, c.remoteOptions(ctx, cand, kc)...)
		if err != nil {
			errs = append(errs, classify(ctx, cand.String(), err))
			if ctx.Err() != nil {
				break
			}
			continue
		}
		desc, ref = d, cand
		break
	}
	if desc == nil {
		return nil, firstMeaningful(t.Ref.String(), errs)
	}
	wrap := func(err error) error { return classify(ctx, ref.String(), err) }

	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, wrap(err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return nil, wrap(err)
		}
		var out []PlatformImage
		var seen []string
		attestations := map[string][]v1.Hash{}
		for _, m := range im.Manifests {
			if m.Annotations["vnd.docker.reference.type"] == "attestation-manifest" {
				subject := m.Annotations["vnd.docker.reference.digest"]
				attestations[subject] = append(attestations[subject], m.Digest)
			}
		}
		for _, m := range im.Manifests {
			if !m.MediaType.IsImage() || m.Platform == nil || m.Platform.OS == "unknown" {
				continue // attestations and nested indexes carry no filesystem to scan
			}
			p := m.Platform.String()
			seen = append(seen, p)
			if len(platforms) > 0 && !slices.Contains(platforms, p) && !slices.Contains(platforms, m.Platform.OS+"/"+m.Platform.Architecture) {
				continue
			}
			img, err := idx.Image(m.Digest)
			if err != nil {
				return nil, wrap(err)
			}
			pi, err := c.platformImage(ref.String(), img, p)
			if err != nil {
				return nil, err
			}
			for _, h := range attestations[m.Digest.String()] {
				if a, err := idx.Image(h); err == nil {
					pi.Attestations = append(pi.Attestations, a)
				}
			}
			out = append(out, pi)
		}
		if len(out) == 0 {
			return nil, &Error{Kind: KindNotFound, Ref: ref.String(), Err: fmt.Errorf("no image for platform %s (index has %s)", strings.Join(platforms, ","), strings.Join(seen, ", "))}
		}
		return out, nil
	}

	img, err := desc.Image()
	if err != nil {
		return nil, wrap(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, wrap(err)
	}
	p := (&v1.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}).String()
	if len(platforms) > 0 && !slices.Contains(platforms, p) && !slices.Contains(platforms, cfg.OS+"/"+cfg.Architecture) {
		return nil, &Error{Kind: KindNotFound, Ref: ref.String(), Err: fmt.Errorf("image is %s, not %s", p, strings.Join(platforms, ","))}
	}
	pi, err := c.platformImage(ref.String(), img, p)
	if err != nil {
		return nil, err
	}
	return []PlatformImage{pi}, nil
}

func (c *Client) platformImage(ref string, img v1.Image, platform string) (PlatformImage, error) {
	raw, err := img.RawManifest()
	if err != nil {
		return PlatformImage{}, classify(context.Background(), ref, err)
	}
	m, err := img.Manifest()
	if err != nil {
		return PlatformImage{}, &Error{Kind: KindInvalid, Ref: ref, Err: err}
	}
	digest, err := img.Digest()
	if err != nil {
		return PlatformImage{}, &Error{Kind: KindInvalid, Ref: ref, Err: err}
	}
	if len(m.Layers) > c.opts.MaxLayers {
		return PlatformImage{}, &Error{Kind: KindTooLarge, Ref: ref, Err: fmt.Errorf("%d layers, limit %d", len(m.Layers), c.opts.MaxLayers)}
	}
	var compressed int64
	for _, l := range m.Layers {
		compressed += l.Size
	}
	if compressed > c.opts.MaxImageBytes {
		return PlatformImage{}, &Error{Kind: KindTooLarge, Ref: ref, Err: fmt.Errorf("layers are %d bytes compressed, limit %d", compressed, c.opts.MaxImageBytes)}
	}
	b := &budget{ref: ref, left: c.opts.MaxImageBytes}
	return PlatformImage{Platform: platform, Digest: digest, Manifest: raw, Image: &limitedImage{Image: img, b: b}}, nil
}

// budget is the number of uncompressed bytes an image may still produce.
type budget struct {
	ref  string
	left int64
}

func (b *budget) take(n int) error {
	if atomic.AddInt64(&b.left, -int64(n)) < 0 {
		return &Error{Kind: KindTooLarge, Ref: b.ref, Err: errors.New("uncompressed layers exceed the size limit (decompression bomb?)")}
	}
	return nil
}

type limitedImage struct {
	v1.Image
	b *budget
}

func (i *limitedImage) Layers() ([]v1.Layer, error) {
	ls, err := i.Image.Layers()
	if err != nil {
		return nil, err
	}
	out := make([]v1.Layer, len(ls))
	for j, l := range ls {
		out[j] = &limitedLayer{Layer: l, b: i.b}
	}
	return out, nil
}

func (i *limitedImage) LayerByDigest(h v1.Hash) (v1.Layer, error) {
	l, err := i.Image.LayerByDigest(h)
	if err != nil {
		return nil, err
	}
	return &limitedLayer{Layer: l, b: i.b}, nil
}

func (i *limitedImage) LayerByDiffID(h v1.Hash) (v1.Layer, error) {
	l, err := i.Image.LayerByDiffID(h)
	if err != nil {
		return nil, err
	}
	return &limitedLayer{Layer: l, b: i.b}, nil
}

type limitedLayer struct {
	v1.Layer
	b *budget
}

func (l *limitedLayer) Uncompressed() (io.ReadCloser, error) {
	rc, err := l.Layer.Uncompressed()
	if err != nil {
		return nil, err
	}
	return &limitedReader{rc: rc, b: l.b}, nil
}

// UncompressedLimiter counts what rc yields, the uncompressed bytes of layer l decoded by the
// caller, against the size budget of the image l came from: past it, Read fails TooLarge (the
// message PlatformImage.Image's own Uncompressed gives). A layer not from Client.Fetch has no
// budget and rc is only wrapped. The result has Read and Close only, so io.Copy never reaches a
// WriteTo of rc's (pgzip's panics once Read was called).
func UncompressedLimiter(l v1.Layer, rc io.ReadCloser) io.ReadCloser {
	ll, ok := l.(*limitedLayer)
	if !ok {
		return readOnly{rc}
	}
	return &limitedReader{rc: rc, b: ll.b}
}

type readOnly struct{ rc io.ReadCloser }

func (r readOnly) Read(p []byte) (int, error) { return r.rc.Read(p) }
func (r readOnly) Close() error               { return r.rc.Close() }

type limitedReader struct {
	rc io.ReadCloser
	b  *budget
}

func (r *limitedReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	if n > 0 {
		if berr := r.b.take(n); berr != nil {
			return n, berr
		}
	}
	return n, err
}

func (r *limitedReader) Close() error { return r.rc.Close() }
