package sbomfile

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/embargo-dev/embargo/internal/match"
)

// cdxDocument skips metadata.component on purpose: it is the scanned subject itself.
type cdxDocument struct {
	SpecVersion string         `json:"specVersion"`
	Metadata    cdxMetadata    `json:"metadata"`
	Components  []cdxComponent `json:"components"`
}

type cdxComponent struct {
	Type         string         `json:"type"`
	Name         string         `json:"name"`
	Group        string         `json:"group"`
	Version      string         `json:"version"`
	Publisher    string         `json:"publisher"`
	Author       string         `json:"author"`
	Authors      []cdxContact   `json:"authors"`
	Manufacturer *cdxEntity     `json:"manufacturer"`
	Supplier     *cdxEntity     `json:"supplier"`
	PURL         string         `json:"purl"`
	CPE          string         `json:"cpe"`
	Properties   []cdxProperty  `json:"properties"`
	Components   []cdxComponent `json:"components"`
}

type cdxContact struct {
	Name string `json:"name"`
}

type cdxEntity struct {
	Name string `json:"name"`
}

type cdxProperty struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// cdxMetadata names the document's authors: tools are a list before CycloneDX 1.5 and an
// object of components and services from 1.5 on.
type cdxMetadata struct {
	Tools        json.RawMessage `json:"tools"`
	Authors      []cdxContact    `json:"authors"`
	Manufacturer *cdxEntity      `json:"manufacturer"`
	Supplier     *cdxEntity      `json:"supplier"`
}

type cdxTool struct {
	Vendor  string `json:"vendor"`
	Group   string `json:"group"`
	Name    string `json:"name"`
	Version string `json:"version"`
}

func (m *cdxMetadata) creator() string {
	var names []string
	var tools []cdxTool
	var tools15 struct {
		Components []cdxTool `json:"components"`
		Services   []cdxTool `json:"services"`
	}
	if json.Unmarshal(m.Tools, &tools) != nil && json.Unmarshal(m.Tools, &tools15) == nil {
		tools = append(tools15.Components, tools15.Services...)
	}
	for _, t := range tools {
		n := strings.TrimSpace(strings.Join(strings.Fields(t.Name+" "+t.Version), " "))
		if n != "" {
			names = append(names, "Tool: "+n)
		}
	}
	for _, a := range m.Authors {
		names = append(names, a.Name)
	}
	for _, e := range []*cdxEntity{m.Manufacturer, m.Supplier} {
		if e != nil {
			names = append(names, "Organization: "+e.Name)
		}
	}
	return joinCreators(names)
}

func decodeCycloneDX(data []byte) (match.Inventory, string, error) {
	inv, doc, err := decodeCycloneDXInventory(data)
	if err != nil {
		return match.Inventory{}, "", err
	}
	return inv, doc.Metadata.creator(), nil
}

func decodeCycloneDXInventory(data []byte) (match.Inventory, *cdxDocument, error) {
	var doc cdxDocument
	if err := json.Unmarshal(data, &doc); err != nil {
		return match.Inventory{}, nil, describe(err)
	}
	if v := doc.SpecVersion; v != "" {
		major, minor, _ := strings.Cut(v, ".")
		if n, err := strconv.Atoi(minor); major != "1" || err != nil || n < 2 {
			return match.Inventory{}, nil, fmt.Errorf("\"specVersion\" is %q; CycloneDX JSON 1.2 or later 1.x is supported", v)
		}
	}
	var inv match.Inventory
	var walk func([]cdxComponent)
	walk = func(cs []cdxComponent) {
		for i := range cs {
			c := &cs[i]
			if strings.EqualFold(c.Type, "file") {
				if p := filePath(c.Name); p != "" {
					inv.Files = append(inv.Files, match.File{Path: p})
				}
			} else if p, ok := cdxPackage(c); ok {
				inv.Packages = append(inv.Packages, p)
			}
			walk(c.Components)
		}
	}
	walk(doc.Components)
	return inv, &doc, nil
}

func cdxPackage(c *cdxComponent) (match.Package, bool) {
	b := newPackage(c.Name, c.Version, c.PURL)
	// Where the ecosystem's package name includes the purl namespace (npm scopes, Go module
	// paths), generators other than syft split it into group and name.
	if g := strings.TrimSpace(c.Group); g != "" && b.p.Name != "" && b.p.Type != "" &&
		!nameExcludesNamespace(b.p.Type) && !strings.HasPrefix(b.p.Name, g+"/") {
		b.p.Name = g + "/" + b.p.Name
	}
	b.field("CycloneDX publisher", c.Publisher)
	b.field("CycloneDX author", c.Author)
	for _, a := range c.Authors {
		b.field("CycloneDX author", a.Name)
	}
	if c.Manufacturer != nil {
		b.field("CycloneDX manufacturer", c.Manufacturer.Name)
	}
	if c.Supplier != nil {
		b.field("CycloneDX supplier", c.Supplier.Name)
	}
	// A CycloneDX CPE's origin is unknown: syft writes its guessed CPEs here.
	b.cpe(c.CPE, false)
	for _, prop := range c.Properties {
		switch {
		case prop.Name == "syft:cpe23":
			b.cpe(prop.Value, false)
		case prop.Name == "syft:location:0:layerID" && b.p.Layer == "":
			b.p.Layer = strings.TrimSpace(prop.Value)
		}
	}
	return b.done()
}

// nameExcludesNamespace reports the purl types whose package names do not carry the purl
// namespace (a Debian package is "kesl", not "debian/kesl"; a Maven one is its artifactId).
func nameExcludesNamespace(purlType string) bool {
	switch purlType {
	case "apk", "alpm", "conan", "cpan", "deb", "maven", "qpkg", "rpm", "swid":
		return true
	}
	return false
}
