package sbomfile

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Predicate types of in-toto statements that carry an SBOM.
var sbomPredicates = []string{
	"https://spdx.dev/Document",
	"https://cyclonedx.org/bom",
	"https://syft.dev/bom",
}

// IsSBOMPredicate reports whether an in-toto predicate type names an SBOM (SPDX, CycloneDX or
// syft, any version: "https://spdx.dev/Document/v2.3" too).
func IsSBOMPredicate(t string) bool {
	t = strings.TrimSuffix(strings.TrimSpace(t), "/")
	for _, p := range sbomPredicates {
		if strings.EqualFold(t, p) || len(t) > len(p) && strings.EqualFold(t[:len(p)+1], p+"/") {
			return true
		}
	}
	return false
}

// unwrap recognizes an envelope (a sigstore bundle, a DSSE envelope, an in-toto statement) and
// returns what it carries. env is "" when data is none of them.
func unwrap(data []byte, p *probe, doc *Document) (env string, inner []byte, err error) {
	switch {
	case p.MediaType != nil && strings.HasPrefix(*p.MediaType, "application/vnd.dev.sigstore.bundle"):
		doc.Envelopes = append(doc.Envelopes, EnvelopeSigstore)
		if len(p.DSSEEnvelope) == 0 || string(p.DSSEEnvelope) == "null" {
			return EnvelopeSigstore, nil, errors.New(`not an SBOM: the sigstore bundle has no "dsseEnvelope" (a bundle with a messageSignature signs a blob and carries no SBOM)`)
		}
		return EnvelopeSigstore, p.DSSEEnvelope, nil

	case p.PayloadType != nil && p.Payload != nil:
		doc.Envelopes = append(doc.Envelopes, EnvelopeDSSE)
		for _, s := range p.Signatures {
			if strings.TrimSpace(s.Sig) != "" {
				doc.Signed = true
			}
		}
		if pt := *p.PayloadType; pt != "application/vnd.in-toto+json" {
			return EnvelopeDSSE, nil, fmt.Errorf("not an SBOM: the DSSE envelope's payloadType is %q, expected \"application/vnd.in-toto+json\"", pt)
		}
		payload, err := base64.StdEncoding.DecodeString(*p.Payload)
		if err != nil {
			if payload, err = base64.URLEncoding.DecodeString(*p.Payload); err != nil {
				return EnvelopeDSSE, nil, fmt.Errorf("not an SBOM: the DSSE envelope's payload is not base64: %v", err)
			}
		}
		return EnvelopeDSSE, payload, nil

	case p.Type != nil && strings.HasPrefix(*p.Type, "https://in-toto.io/Statement/"):
		doc.Envelopes = append(doc.Envelopes, EnvelopeInToto)
		if p.PredicateType == nil {
			return EnvelopeInToto, nil, errors.New(`not an SBOM: the in-toto statement has no "predicateType"`)
		}
		doc.PredicateType = *p.PredicateType
		if !IsSBOMPredicate(*p.PredicateType) {
			return EnvelopeInToto, nil, fmt.Errorf("not an SBOM: the in-toto statement's predicateType is %q, not an SPDX, CycloneDX or syft document", *p.PredicateType)
		}
		pred := bytes.TrimSpace(p.Predicate)
		if len(pred) == 0 || string(pred) == "null" {
			return EnvelopeInToto, nil, errors.New(`not an SBOM: the in-toto statement has no "predicate"`)
		}
		return EnvelopeInToto, predicateDocument(pred), nil
	}
	return "", nil, nil
}

// predicateDocument is the SBOM in a predicate: the predicate itself, or the JSON text in it
// (a string, or cosign's older {"Data": "..."} wrapping).
func predicateDocument(pred []byte) []byte {
	var s string
	if pred[0] == '"' && json.Unmarshal(pred, &s) == nil {
		return []byte(s)
	}
	var wrapped struct {
		Data        json.RawMessage `json:"Data"`
		SPDXVersion *string         `json:"spdxVersion"`
		BOMFormat   *string         `json:"bomFormat"`
	}
	if pred[0] == '{' && json.Unmarshal(pred, &wrapped) == nil && wrapped.SPDXVersion == nil && wrapped.BOMFormat == nil && len(wrapped.Data) > 0 {
		if wrapped.Data[0] == '"' && json.Unmarshal(wrapped.Data, &s) == nil {
			return []byte(s)
		}
		return wrapped.Data
	}
	return pred
}

// joinCreators lists a document's authors once each, in order.
func joinCreators(names []string) string {
	var out []string
	for _, n := range names {
		n = strings.Join(strings.Fields(n), " ")
		if n != "" && !isNoAssertion(n) && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return strings.Join(out, ", ")
}
