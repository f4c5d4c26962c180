package sbomfile

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/embargo-dev/embargo/internal/match"
)

type spdxDocument struct {
	CreationInfo struct {
		Creators []string `json:"creators"`
	} `json:"creationInfo"`
	Packages []spdxPackage `json:"packages"`
	Files    []spdxFile    `json:"files"`
}

type spdxPackage struct {
	SPDXID       string            `json:"SPDXID"`
	Name         string            `json:"name"`
	VersionInfo  string            `json:"versionInfo"`
	Supplier     string            `json:"supplier"`
	Originator   string            `json:"originator"`
	ExternalRefs []spdxExternalRef `json:"externalRefs"`
}

type spdxExternalRef struct {
	ReferenceType    string `json:"referenceType"`
	ReferenceLocator string `json:"referenceLocator"`
}

type spdxFile struct {
	FileName string `json:"fileName"`
}

// syftRootPrefix marks the package syft writes for the scanned subject itself (the image, the
// directory), not something installed in it.
const syftRootPrefix = "SPDXRef-DocumentRoot-"

func decodeSPDX(data []byte, version string) (match.Inventory, string, error) {
	if !strings.HasPrefix(version, "SPDX-2.") {
		return match.Inventory{}, "", fmt.Errorf("\"spdxVersion\" is %q; only SPDX-2.x JSON is supported", version)
	}
	var doc spdxDocument
	if err := json.Unmarshal(data, &doc); err != nil {
		return match.Inventory{}, "", describe(err)
	}
	var inv match.Inventory
	for _, sp := range doc.Packages {
		if strings.HasPrefix(sp.SPDXID, syftRootPrefix) {
			continue
		}
		purl := ""
		for _, ref := range sp.ExternalRefs {
			if strings.EqualFold(ref.ReferenceType, "purl") && strings.TrimSpace(ref.ReferenceLocator) != "" {
				purl = ref.ReferenceLocator
				break
			}
		}
		b := newPackage(sp.Name, sp.VersionInfo, purl)
		if !isNoAssertion(sp.Supplier) {
			b.field("SPDX supplier", sp.Supplier)
		}
		if !isNoAssertion(sp.Originator) {
			b.field("SPDX originator", sp.Originator)
		}
		for _, ref := range sp.ExternalRefs {
			switch strings.ToLower(ref.ReferenceType) {
			case "cpe23type", "cpe22type":
				// Generators put name-guessed CPEs here; nothing says which were declared.
				b.cpe(ref.ReferenceLocator, false)
			}
		}
		if p, ok := b.done(); ok {
			inv.Packages = append(inv.Packages, p)
		}
	}
	for _, f := range doc.Files {
		if p := filePath(f.FileName); p != "" {
			inv.Files = append(inv.Files, match.File{Path: p})
		}
	}
	return inv, joinCreators(doc.CreationInfo.Creators), nil
}
