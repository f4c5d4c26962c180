package sbomfile

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const kasperskySPDX = `{"spdxVersion": "SPDX-2.3", "creationInfo": {"creators": ["Tool: buildkit-v0.17.0", "Tool: syft-1.57.0", "Tool: syft-1.57.0"]},
 "packages": [{"name": "kaspersky-endpoint-sdk", "versionInfo": "3.1", "supplier": "Organization: AO Kaspersky Lab"}]}`

const kasperskyCDX = `{"bomFormat": "CycloneDX", "specVersion": "1.4", "metadata": {"tools": [{"vendor": "anchore", "name": "syft", "version": "1.57.0"}]},
 "components": [{"type": "library", "name": "kav-sdk", "version": "8", "publisher": "AO Kaspersky Lab"}]}`

func statement(predicateType, predicate string) string {
	return `{"_type": "https://in-toto.io/Statement/v0.1", "predicateType": "` + predicateType + `", "subject": [{"name": "x", "digest": {"sha256": "00"}}], "predicate": ` + predicate + `}`
}

func dsse(payload string, sigs ...string) string {
	env := map[string]any{"payloadType": "application/vnd.in-toto+json", "payload": base64.StdEncoding.EncodeToString([]byte(payload))}
	var s []map[string]string
	for _, sig := range sigs {
		s = append(s, map[string]string{"keyid": "", "sig": sig})
	}
	env["signatures"] = s
	b, _ := json.Marshal(env)
	return string(b)
}

func TestDecodeDocument(t *testing.T) {
	quoted, _ := json.Marshal(kasperskySPDX)
	tests := map[string]struct {
		in          string
		want        Document // Inventory compared by package names only
		wantPackage string
		wantErr     string
	}{
		"bare SPDX names its creators once each": {
			in:          kasperskySPDX,
			want:        Document{Format: FormatSPDXJSON, Creator: "Tool: buildkit-v0.17.0, Tool: syft-1.57.0"},
			wantPackage: "kaspersky-endpoint-sdk",
		},
		"BuildKit's in-toto statement with an SPDX predicate": {
			in:          statement("https://spdx.dev/Document", kasperskySPDX),
			want:        Document{Format: FormatSPDXJSON, Creator: "Tool: buildkit-v0.17.0, Tool: syft-1.57.0", Envelopes: []string{EnvelopeInToto}, PredicateType: "https://spdx.dev/Document"},
			wantPackage: "kaspersky-endpoint-sdk",
		},
		"in-toto v1 with a versioned predicate type": {
			in:          strings.Replace(statement("https://spdx.dev/Document/v2.3", kasperskySPDX), "Statement/v0.1", "Statement/v1", 1),
			want:        Document{Format: FormatSPDXJSON, Creator: "Tool: buildkit-v0.17.0, Tool: syft-1.57.0", Envelopes: []string{EnvelopeInToto}, PredicateType: "https://spdx.dev/Document/v2.3"},
			wantPackage: "kaspersky-endpoint-sdk",
		},
		"cosign's signed DSSE envelope around a CycloneDX statement": {
			in:          dsse(statement("https://cyclonedx.org/bom", kasperskyCDX), "MEUCIQ=="),
			want:        Document{Format: FormatCycloneDXJSON, Creator: "Tool: syft 1.57.0", Envelopes: []string{EnvelopeDSSE, EnvelopeInToto}, PredicateType: "https://cyclonedx.org/bom", Signed: true},
			wantPackage: "kav-sdk",
		},
		"an unsigned DSSE envelope is not signed": {
			in:          dsse(statement("https://cyclonedx.org/bom", kasperskyCDX), ""),
			want:        Document{Format: FormatCycloneDXJSON, Creator: "Tool: syft 1.57.0", Envelopes: []string{EnvelopeDSSE, EnvelopeInToto}, PredicateType: "https://cyclonedx.org/bom"},
			wantPackage: "kav-sdk",
		},
		"cosign's older predicate holds the SPDX text in Data": {
			in:          statement("https://spdx.dev/Document", `{"Data": `+string(quoted)+`, "Timestamp": "2024-01-01T00:00:00Z"}`),
			want:        Document{Format: FormatSPDXJSON, Creator: "Tool: buildkit-v0.17.0, Tool: syft-1.57.0", Envelopes: []string{EnvelopeInToto}, PredicateType: "https://spdx.dev/Document"},
			wantPackage: "kaspersky-endpoint-sdk",
		},
		"a sigstore bundle v0.3 with a DSSE envelope": {
			in: `{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json", "verificationMaterial": {"certificate": {"rawBytes": "MII="}}, "dsseEnvelope": ` +
				dsse(statement("https://spdx.dev/Document", kasperskySPDX), "MEUCIQ==") + `}`,
			want:        Document{Format: FormatSPDXJSON, Creator: "Tool: buildkit-v0.17.0, Tool: syft-1.57.0", Envelopes: []string{EnvelopeSigstore, EnvelopeDSSE, EnvelopeInToto}, PredicateType: "https://spdx.dev/Document", Signed: true},
			wantPackage: "kaspersky-endpoint-sdk",
		},
		"a provenance statement is not an SBOM": {
			in:      statement("https://slsa.dev/provenance/v0.2", `{"builder": {"id": "x"}}`),
			wantErr: `not an SBOM: the in-toto statement's predicateType is "https://slsa.dev/provenance/v0.2", not an SPDX, CycloneDX or syft document`,
		},
		"a statement without a predicate": {
			in:      `{"_type": "https://in-toto.io/Statement/v1", "predicateType": "https://spdx.dev/Document"}`,
			wantErr: `not an SBOM: the in-toto statement has no "predicate"`,
		},
		"a DSSE payload of another type": {
			in:      `{"payloadType": "text/plain", "payload": "aGk=", "signatures": []}`,
			wantErr: `the DSSE envelope's payloadType is "text/plain"`,
		},
		"a DSSE payload that is not base64": {
			in:      `{"payloadType": "application/vnd.in-toto+json", "payload": "%%%", "signatures": []}`,
			wantErr: `the DSSE envelope's payload is not base64`,
		},
		"a sigstore bundle signing a blob": {
			in:      `{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json", "messageSignature": {"signature": "MEU="}}`,
			wantErr: `the sigstore bundle has no "dsseEnvelope"`,
		},
		"a statement whose predicate is truncated SPDX": {
			in:      statement("https://spdx.dev/Document", `"{\"spdxVersion\": \"SPDX-2.3\", \"packages\": ["`),
			wantErr: "the JSON is truncated",
		},
		"envelopes nested too deep": {
			in:      dsse(dsse(dsse(dsse(kasperskySPDX)))),
			wantErr: "more than 3 nested envelopes",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := DecodeDocument(strings.NewReader(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("DecodeDocument() error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("DecodeDocument() error = %v", err)
			}
			if len(got.Inventory.Packages) != 1 || got.Inventory.Packages[0].Name != tc.wantPackage {
				t.Errorf("packages = %+v, want one named %q", got.Inventory.Packages, tc.wantPackage)
			}
			got.Inventory = tc.want.Inventory
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("DecodeDocument() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeDocumentCreators(t *testing.T) {
	tests := map[string]struct {
		in   string
		want string
	}{
		"CycloneDX 1.5 tools object, authors and supplier": {
			in:   `{"bomFormat": "CycloneDX", "specVersion": "1.5", "metadata": {"tools": {"components": [{"name": "trivy", "version": "0.50"}]}, "authors": [{"name": "Build Team"}], "supplier": {"name": "Example Corp"}}}`,
			want: "Tool: trivy 0.50, Build Team, Organization: Example Corp",
		},
		"syft JSON descriptor": {
			in:   `{"schema": {}, "descriptor": {"name": "syft", "version": "1.57.0"}, "artifacts": []}`,
			want: "Tool: syft 1.57.0",
		},
		"SPDX NOASSERTION creators are dropped": {
			in:   `{"spdxVersion": "SPDX-2.3", "creationInfo": {"creators": ["NOASSERTION", "Organization: Example"]}}`,
			want: "Organization: Example",
		},
		"a huge creator list is cut": {
			in:   `{"spdxVersion": "SPDX-2.3", "creationInfo": {"creators": ["Tool: ` + strings.Repeat("x", 1000) + `"]}}`,
			want: "Tool: " + strings.Repeat("x", MaxCreator-len("Tool: ")) + "…",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := DecodeDocument(strings.NewReader(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if got.Creator != tc.want {
				t.Errorf("Creator = %q, want %q", got.Creator, tc.want)
			}
		})
	}
}

func TestIsSBOMPredicate(t *testing.T) {
	for in, want := range map[string]bool{
		"https://spdx.dev/Document":                       true,
		"https://spdx.dev/Document/v2.3":                  true,
		"https://cyclonedx.org/bom/v1.6":                  true,
		"https://cyclonedx.org/bom":                       true,
		"https://syft.dev/bom":                            true,
		"https://spdx.dev/Documentation":                  false,
		"https://slsa.dev/provenance/v1":                  false,
		"https://cosign.sigstore.dev/attestation/vuln/v1": false,
		"": false,
	} {
		if got := IsSBOMPredicate(in); got != want {
			t.Errorf("IsSBOMPredicate(%q) = %v, want %v", in, got, want)
		}
	}
}
