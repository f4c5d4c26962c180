package testimage

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// InTotoStatement wraps an SBOM document as BuildKit does: an in-toto v0.1 statement whose
// predicate is the document.
func InTotoStatement(predicateType string, doc []byte) ([]byte, error) {
	return json.Marshal(map[string]any{
		"_type":         "https://in-toto.io/Statement/v0.1",
		"predicateType": predicateType,
		"subject":       []map[string]any{{"name": "pkg:docker/test", "digest": map[string]string{"sha256": "0"}}},
		"predicate":     json.RawMessage(doc),
	})
}

// BuildKitIndex makes an index shaped like `docker buildx build --sbom=true` output: each image,
// then for each one with an entry in statements an attestation manifest (platform
// unknown/unknown, annotated with the image's digest) whose layers are those in-toto statements,
// annotated with their predicate type.
func BuildKitIndex(imgs []v1.Image, statements map[int][][]byte) (v1.ImageIndex, error) {
	idx, err := Index(imgs...)
	if err != nil {
		return nil, err
	}
	for i, img := range imgs {
		if len(statements[i]) == 0 {
			continue
		}
		d, err := img.Digest()
		if err != nil {
			return nil, err
		}
		att := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
		att = mutate.ConfigMediaType(att, types.OCIConfigJSON)
		for _, st := range statements[i] {
			var probe struct {
				PredicateType string `json:"predicateType"`
			}
			_ = json.Unmarshal(st, &probe)
			att, err = mutate.Append(att, mutate.Addendum{
				Layer:       static.NewLayer(st, "application/vnd.in-toto+json"),
				MediaType:   "application/vnd.in-toto+json",
				Annotations: map[string]string{"in-toto.io/predicate-type": probe.PredicateType},
			})
			if err != nil {
				return nil, fmt.Errorf("attestation of image %d: %w", i, err)
			}
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: att, Descriptor: v1.Descriptor{
			Platform:    &v1.Platform{OS: "unknown", Architecture: "unknown"},
			Annotations: map[string]string{"vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": d.String()},
		}})
	}
	return idx, nil
}

// Referrer makes an OCI 1.1 artifact that refers to subject, as `oras attach` does: its config
// media type is artifactType (what a referrers listing reports) and its one layer is doc.
func Referrer(subject v1.Descriptor, artifactType, layerMediaType string, doc []byte) (v1.Image, error) {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.MediaType(artifactType))
	img, err := mutate.Append(img, mutate.Addendum{Layer: static.NewLayer(doc, types.MediaType(layerMediaType)), MediaType: types.MediaType(layerMediaType)})
	if err != nil {
		return nil, err
	}
	withSubject, ok := mutate.Subject(img, subject).(v1.Image)
	if !ok {
		return nil, fmt.Errorf("mutate.Subject did not return an image")
	}
	return withSubject, nil
}

// ArtifactReferrer makes an OCI 1.1 artifact that refers to subject, as `oras attach` (1.1 and
// later) writes one: its config is the empty descriptor (application/vnd.oci.empty.v1+json,
// content "{}"), so only the manifest's artifactType says what it is, and its one layer is doc.
func ArtifactReferrer(subject v1.Descriptor, artifactType, layerMediaType string, doc []byte) (v1.Image, error) {
	layer := static.NewLayer(doc, types.MediaType(layerMediaType))
	ld, err := partial.Descriptor(layer)
	if err != nil {
		return nil, err
	}
	ld.Annotations = map[string]string{"org.opencontainers.image.title": "sbom.json"}
	config := []byte("{}")
	ch, size, err := v1.SHA256(bytes.NewReader(config))
	if err != nil {
		return nil, err
	}
	raw, err := json.Marshal(v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  artifactType,
		Config:        v1.Descriptor{MediaType: types.OCIEmptyJSON, Digest: ch, Size: size},
		Layers:        []v1.Descriptor{*ld},
		Subject:       &v1.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size},
	})
	if err != nil {
		return nil, err
	}
	return partial.CompressedToImage(&artifact{manifest: raw, config: config, layer: layer})
}

// artifact is an image made from its raw manifest: what mutate cannot write (artifactType, an
// empty config).
type artifact struct {
	manifest, config []byte
	layer            v1.Layer
}

func (a *artifact) RawConfigFile() ([]byte, error)      { return a.config, nil }
func (a *artifact) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }
func (a *artifact) RawManifest() ([]byte, error)        { return a.manifest, nil }
func (a *artifact) ArtifactType() (string, error)       { return a.artifactType() }
func (a *artifact) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if d, err := a.layer.Digest(); err == nil && d == h {
		return a.layer, nil
	}
	if ch, _, err := v1.SHA256(bytes.NewReader(a.config)); err == nil && ch == h {
		return static.NewLayer(a.config, types.OCIEmptyJSON), nil
	}
	return nil, fmt.Errorf("artifact has no blob %s", h)
}

func (a *artifact) artifactType() (string, error) {
	var m v1.Manifest
	if err := json.Unmarshal(a.manifest, &m); err != nil {
		return "", err
	}
	return m.ArtifactType, nil
}

// CosignAttachment makes an image like the ones cosign pushes to sha256-<hex>.sbom and
// .att tags: one layer per document, of mediaType.
func CosignAttachment(mediaType string, docs ...[]byte) (v1.Image, error) {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	for _, d := range docs {
		var err error
		img, err = mutate.Append(img, mutate.Addendum{Layer: static.NewLayer(d, types.MediaType(mediaType)), MediaType: types.MediaType(mediaType)})
		if err != nil {
			return nil, err
		}
	}
	return img, nil
}

// DSSEEnvelope wraps an in-toto statement in a DSSE envelope, with a signature when sig is set
// (its bytes are not a real signature: nothing verifies them).
func DSSEEnvelope(statement []byte, sig string) ([]byte, error) {
	env := map[string]any{
		"payloadType": "application/vnd.in-toto+json",
		"payload":     base64.StdEncoding.EncodeToString(statement),
		"signatures":  []map[string]string{},
	}
	if sig != "" {
		env["signatures"] = []map[string]string{{"keyid": "", "sig": base64.StdEncoding.EncodeToString([]byte(sig))}}
	}
	return json.Marshal(env)
}

// SigstoreBundle wraps a DSSE envelope in a sigstore bundle v0.3 (no verification material
// that would verify).
func SigstoreBundle(dsse []byte) ([]byte, error) {
	return json.Marshal(map[string]any{
		"mediaType":            "application/vnd.dev.sigstore.bundle.v0.3+json",
		"verificationMaterial": map[string]any{},
		"dsseEnvelope":         json.RawMessage(dsse),
	})
}
