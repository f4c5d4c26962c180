package imagebuild

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// WriteLayout writes idx as an OCI image layout at dir, replacing whatever was there: index.json
// holds one descriptor, the index itself (annotated with refName, e.g. the tag, when not empty),
// as skopeo, crane and containerd expect. The directory appears complete or not at all.
func WriteLayout(dir string, idx v1.ImageIndex, refName string) error {
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	p, err := layout.Write(tmp, empty.Index)
	if err != nil {
		return err
	}
	var opts []layout.Option
	if refName != "" {
		opts = append(opts, layout.WithAnnotations(map[string]string{AnnotationRefName: refName}))
	}
	if err := p.AppendIndex(idx, opts...); err != nil {
		return fmt.Errorf("writing the OCI layout: %w", err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	return os.Rename(tmp, dir)
}

// ReadLayout returns the image index an OCI layout written by WriteLayout (`make image`) holds.
func ReadLayout(dir string) (v1.ImageIndex, error) {
	top, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("%s is not an OCI image layout (run `make image`): %w", dir, err)
	}
	m, err := top.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("%s/index.json: %w", dir, err)
	}
	if len(m.Manifests) != 1 || !m.Manifests[0].MediaType.IsIndex() {
		return nil, fmt.Errorf("%s/index.json: want exactly one image index, found %d descriptors", dir, len(m.Manifests))
	}
	return top.ImageIndex(m.Manifests[0].Digest)
}

// PushLayout pushes the image index in the OCI layout at dir (bin/image from `make image`) to
// ref, e.g. 10.88.0.1:5000/embargo:dev, and returns the pushed digest reference. See Push.
func PushLayout(ctx context.Context, dir, ref string, insecure bool, opts ...remote.Option) (name.Digest, error) {
	idx, err := ReadLayout(dir)
	if err != nil {
		return name.Digest{}, err
	}
	return Push(ctx, idx, ref, insecure, opts...)
}

// Push writes idx with all its images and blobs to ref (a tag or a digest reference) and
// returns ref's repository at the index digest. Credentials come from the docker config, as
// with crane; opts come last and so win (e.g. remote.WithAuth). insecure allows plain HTTP and
// unverified TLS, for a registry on a bridge address such as 10.88.0.1:5000 (go-containerregistry
// already speaks plain HTTP to localhost and 127.0.0.1).
func Push(ctx context.Context, idx v1.ImageIndex, ref string, insecure bool, opts ...remote.Option) (name.Digest, error) {
	var nameOpts []name.Option
	if insecure {
		nameOpts = append(nameOpts, name.Insecure)
	}
	r, err := name.ParseReference(ref, nameOpts...)
	if err != nil {
		return name.Digest{}, err
	}
	ropts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)}
	if insecure {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // only when asked for an insecure registry
		ropts = append(ropts, remote.WithTransport(t))
	}
	if err := remote.WriteIndex(r, idx, append(ropts, opts...)...); err != nil {
		return name.Digest{}, fmt.Errorf("pushing %s: %w", ref, err)
	}
	d, err := idx.Digest()
	if err != nil {
		return name.Digest{}, err
	}
	return r.Context().Digest(d.String()), nil
}
