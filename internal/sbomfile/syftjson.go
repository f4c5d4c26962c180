package sbomfile

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/embargo-dev/embargo/internal/match"
)

type syftDocument struct {
	Descriptor struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	} `json:"descriptor"`
	Artifacts []syftArtifact `json:"artifacts"`
	Files     []syftFile     `json:"files"`
	Source    syftSource     `json:"source"`
}

type syftArtifact struct {
	Name         string          `json:"name"`
	Version      string          `json:"version"`
	Type         string          `json:"type"`
	PURL         string          `json:"purl"`
	CPEs         []syftCPE       `json:"cpes"`
	Locations    []syftLocation  `json:"locations"`
	MetadataType string          `json:"metadataType"`
	Metadata     json.RawMessage `json:"metadata"`
}

// syftCPE is {"cpe": "...", "source": "..."}, or a plain string in documents of syft before
// v0.80.
type syftCPE struct {
	Value  string `json:"cpe"`
	Source string `json:"source"`
}

func (c *syftCPE) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		*c = syftCPE{}
		return json.Unmarshal(b, &c.Value)
	}
	type plain syftCPE
	return json.Unmarshal(b, (*plain)(c))
}

type syftLocation struct {
	Path    string `json:"path"`
	LayerID string `json:"layerID"`
}

type syftFile struct {
	Location syftLocation `json:"location"`
}

type syftSource struct {
	Type     string          `json:"type"`
	Metadata json.RawMessage `json:"metadata"`
	// Target held the metadata before syft JSON schema 9.
	Target json.RawMessage `json:"target"`
}

type syftImageMetadata struct {
	Architecture string `json:"architecture"`
	Variant      string `json:"architectureVariant"`
	OS           string `json:"os"`
	Layers       []struct {
		Digest string `json:"digest"`
	} `json:"layers"`
	Manifest string `json:"manifest"`
}

func decodeSyft(data []byte) (match.Inventory, string, error) {
	var doc syftDocument
	if err := json.Unmarshal(data, &doc); err != nil {
		return match.Inventory{}, "", describe(err)
	}
	platform, layers := syftImage(doc.Source)
	layer := func(id string) string {
		id = strings.TrimSpace(id)
		if d := layers[id]; d != "" {
			return d
		}
		return id
	}
	inv := match.Inventory{Platform: platform}
	for i := range doc.Artifacts {
		a := &doc.Artifacts[i]
		b := newPackage(a.Name, a.Version, a.PURL)
		if b.p.Type == "" {
			b.p.Type = syftPURLType(strings.TrimSpace(a.Type))
		}
		for _, c := range a.CPEs {
			b.cpe(c.Value, c.Source == "declared" || c.Source == "nvd-cpe-dictionary")
		}
		if len(a.Locations) > 0 {
			b.p.Layer = layer(a.Locations[0].LayerID)
		}
		if err := syftFields(b, a.MetadataType, a.Metadata); err != nil {
			return match.Inventory{}, "", fmt.Errorf("artifacts[%d] (%q): metadata of type %q: %w", i, a.Name, a.MetadataType, describe(err))
		}
		if p, ok := b.done(); ok {
			inv.Packages = append(inv.Packages, p)
		}
	}
	for _, f := range doc.Files {
		if p := filePath(f.Location.Path); p != "" {
			inv.Files = append(inv.Files, match.File{Path: p, Layer: layer(f.Location.LayerID)})
		}
	}
	creator := ""
	if n := strings.TrimSpace(doc.Descriptor.Name + " " + doc.Descriptor.Version); n != "" {
		creator = "Tool: " + n
	}
	return inv, creator, nil
}

// syftImage reads the platform of an image source and maps its layers' ids (syft records diff
// ids, the digests of the uncompressed layers) to the layer digests a registry shows, which is
// what an image scan reports. Source metadata is descriptive, so a malformed one is ignored.
func syftImage(src syftSource) (platform string, layers map[string]string) {
	raw := src.Metadata
	if len(raw) == 0 || string(raw) == "null" {
		raw = src.Target
	}
	var m syftImageMetadata
	if len(raw) == 0 || json.Unmarshal(raw, &m) != nil {
		return "", nil
	}
	arch := strings.TrimSpace(m.Architecture)
	if v := strings.TrimSpace(m.Variant); arch != "" && v != "" {
		arch += "/" + v
	}
	if os := strings.TrimSpace(m.OS); os != "" && arch != "" {
		platform = os + "/" + arch
	} else {
		platform = arch
	}

	manifest, err := base64.StdEncoding.DecodeString(m.Manifest)
	if err != nil || len(manifest) == 0 {
		return platform, nil
	}
	var man struct {
		Layers []struct {
			Digest string `json:"digest"`
		} `json:"layers"`
	}
	if json.Unmarshal(manifest, &man) != nil || len(man.Layers) != len(m.Layers) {
		return platform, nil
	}
	layers = make(map[string]string, len(m.Layers))
	for i, l := range m.Layers {
		if l.Digest != "" && man.Layers[i].Digest != "" {
			layers[l.Digest] = man.Layers[i].Digest
		}
	}
	return platform, layers
}

// syftPURLType is the package URL type of a syft package type, for packages without a purl.
// Unknown types are kept as they are, as an image scan does.
func syftPURLType(t string) string {
	switch t {
	case "java-archive", "jenkins-plugin":
		return "maven"
	case "python":
		return "pypi"
	case "go-module":
		return "golang"
	case "dotnet":
		return "nuget"
	case "php-composer":
		return "composer"
	case "php-pear", "php-pecl":
		return "pear"
	case "rust-crate":
		return "cargo"
	case "R-package":
		return "cran"
	case "dart-pub":
		return "pub"
	case "pod":
		return "cocoapods"
	case "erlang-otp":
		return "otp"
	case "lua-rocks":
		return "luarocks"
	case "github-action", "github-action-workflow":
		return "github"
	case "linux-kernel", "linux-kernel-module", "conda":
		return "generic"
	}
	return t
}

// syftFields adds the vendor-identity fields of a package's metadata. Metadata types are named
// as syft names them now and as older syft versions did.
func syftFields(b *pkgBuilder, metadataType string, raw json.RawMessage) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	switch metadataType {
	case "dpkg-db-entry", "dpkg-archive-entry", "DpkgMetadata":
		var m struct {
			Maintainer string `json:"maintainer"`
		}
		if err := json.Unmarshal(raw, &m); err != nil {
			return err
		}
		b.field("dpkg Maintainer", m.Maintainer)
	case "apk-db-entry", "ApkMetadata":
		var m struct {
			Maintainer string `json:"maintainer"`
		}
		if err := json.Unmarshal(raw, &m); err != nil {
			return err
		}
		b.field("apk Maintainer", m.Maintainer)
	case "rpm-db-entry", "rpm-archive", "RpmMetadata", "RpmdbMetadata":
		var m struct {
			Vendor string `json:"vendor"`
		}
		if err := json.Unmarshal(raw, &m); err != nil {
			return err
		}
		b.field("rpm Vendor", m.Vendor)
	case "alpm-db-entry", "AlpmMetadata":
		var m struct {
			Packager string `json:"packager"`
		}
		if err := json.Unmarshal(raw, &m); err != nil {
			return err
		}
		b.field("alpm Packager", m.Packager)
	case "python-package", "PythonPackageMetadata":
		var m struct {
			Author      string `json:"author"`
			AuthorEmail string `json:"authorEmail"`
		}
		if err := json.Unmarshal(raw, &m); err != nil {
			return err
		}
		b.field("python Author", m.Author)
		b.field("python Author-email", m.AuthorEmail)
	case "javascript-npm-package", "NpmPackageJsonMetadata":
		var m struct {
			Author string `json:"author"`
		}
		if err := json.Unmarshal(raw, &m); err != nil {
			return err
		}
		b.field("npm author", m.Author)
	case "java-archive", "JavaMetadata":
		var m struct {
			Manifest *struct {
				Main keyValues `json:"main"`
			} `json:"manifest"`
		}
		if err := json.Unmarshal(raw, &m); err != nil {
			return err
		}
		if m.Manifest != nil {
			for _, k := range []string{"Implementation-Vendor", "Specification-Vendor", "Bundle-Vendor"} {
				b.field("java "+k, m.Manifest.Main.get(k))
			}
		}
	case "pe-binary":
		// syft's PEBinary has no json tag: the key is "VersionResources".
		var m struct {
			VersionResources keyValues `json:"VersionResources"`
		}
		if err := json.Unmarshal(raw, &m); err != nil {
			return err
		}
		b.field("PE CompanyName", m.VersionResources.get("CompanyName"))
	case "dotnet-portable-executable-entry":
		var m dotnetPE
		if err := json.Unmarshal(raw, &m); err != nil {
			return err
		}
		b.field(".NET CompanyName", m.CompanyName)
	case "dotnet-deps-entry", "DotnetDepsMetadata":
		var m struct {
			Executables map[string]dotnetPE `json:"executables"`
		}
		if err := json.Unmarshal(raw, &m); err != nil {
			return err
		}
		for _, k := range slices.Sorted(maps.Keys(m.Executables)) {
			b.field(".NET CompanyName", m.Executables[k].CompanyName)
		}
	case "elf-binary-package-note-json-payload":
		var m struct {
			Vendor string `json:"vendor"`
		}
		if err := json.Unmarshal(raw, &m); err != nil {
			return err
		}
		b.field("ELF note vendor", m.Vendor)
	case "linux-kernel-module", "linux-kernel-module-entry", "LinuxKernelModule", "LinuxKernelModuleMetadata":
		var m struct {
			Author string `json:"author"`
		}
		if err := json.Unmarshal(raw, &m); err != nil {
			return err
		}
		b.field("kernel module author", m.Author)
	case "ruby-gemspec", "GemMetadata":
		var m struct {
			Authors []string `json:"authors"`
		}
		if err := json.Unmarshal(raw, &m); err != nil {
			return err
		}
		for _, a := range m.Authors {
			b.field("gem author", a)
		}
	case "php-composer-installed-entry", "php-composer-lock-entry", "PhpComposerJsonMetadata":
		var m struct {
			Authors []struct {
				Name string `json:"name"`
			} `json:"authors"`
		}
		if err := json.Unmarshal(raw, &m); err != nil {
			return err
		}
		for _, a := range m.Authors {
			b.field("composer author", a.Name)
		}
	}
	return nil
}

type dotnetPE struct {
	CompanyName string `json:"companyName"`
}

// keyValues is syft's ordered list of {"key", "value"} pairs, or the map older versions wrote.
type keyValues []keyValue

type keyValue struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

func (kv *keyValues) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '{' {
		var m map[string]string
		if err := json.Unmarshal(b, &m); err != nil {
			return err
		}
		*kv = nil
		for _, k := range slices.Sorted(maps.Keys(m)) {
			*kv = append(*kv, keyValue{Key: k, Value: m[k]})
		}
		return nil
	}
	type plain keyValues
	return json.Unmarshal(b, (*plain)(kv))
}

func (kv keyValues) get(key string) string {
	for _, e := range kv {
		if e.Key == key {
			return e.Value
		}
	}
	return ""
}
