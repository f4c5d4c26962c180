package report

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
)

// SARIF constants.
const (
	SARIFVersion = "2.1.0"
	SARIFSchema  = "https://json.schemastore.org/sarif-2.1.0.json"
	// InformationURI is where the tool documents itself.
	InformationURI = "https://github.com/embargo-dev/embargo"
)

type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool        sarifTool         `json:"tool"`
	Invocations []sarifInvocation `json:"invocations"`
	Results     []sarifResult     `json:"results"`
	Properties  map[string]any    `json:"properties,omitempty"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	Version        string      `json:"version"`
	InformationURI string      `json:"informationUri"`
	Rules          []sarifRule `json:"rules"`
}

type sarifRule struct {
	ID                   string              `json:"id"`
	Name                 string              `json:"name"`
	ShortDescription     sarifText           `json:"shortDescription"`
	FullDescription      sarifText           `json:"fullDescription"`
	Help                 sarifMultiformat    `json:"help"`
	DefaultConfiguration sarifConfiguration  `json:"defaultConfiguration"`
	Properties           sarifRuleProperties `json:"properties"`
}

type sarifRuleProperties struct {
	Tags     []string `json:"tags"`
	Vendor   string   `json:"vendor"`
	Catalog  string   `json:"catalog,omitempty"`
	Basis    []string `json:"basis,omitempty"`
	Severity string   `json:"security-severity"`
}

type sarifText struct {
	Text string `json:"text"`
}

type sarifMultiformat struct {
	Text     string `json:"text"`
	Markdown string `json:"markdown,omitempty"`
}

type sarifConfiguration struct {
	Level string `json:"level"`
}

type sarifInvocation struct {
	ExecutionSuccessful        bool                `json:"executionSuccessful"`
	ToolExecutionNotifications []sarifNotification `json:"toolExecutionNotifications,omitempty"`
}

type sarifNotification struct {
	Level     string          `json:"level"`
	Message   sarifText       `json:"message"`
	Locations []sarifLocation `json:"locations,omitempty"`
}

type sarifResult struct {
	RuleID              string             `json:"ruleId"`
	RuleIndex           int                `json:"ruleIndex"`
	Level               string             `json:"level"`
	Message             sarifText          `json:"message"`
	Locations           []sarifLocation    `json:"locations"`
	PartialFingerprints map[string]string  `json:"partialFingerprints"`
	Suppressions        []sarifSuppression `json:"suppressions,omitempty"`
	Properties          map[string]any     `json:"properties"`
}

type sarifLocation struct {
	PhysicalLocation *sarifPhysicalLocation `json:"physicalLocation,omitempty"`
	LogicalLocations []sarifLogicalLocation `json:"logicalLocations,omitempty"`
}

type sarifPhysicalLocation struct {
	ArtifactLocation sarifArtifactLocation `json:"artifactLocation"`
}

type sarifArtifactLocation struct {
	URI string `json:"uri"`
}

type sarifLogicalLocation struct {
	Name               string `json:"name"`
	FullyQualifiedName string `json:"fullyQualifiedName,omitempty"`
	Kind               string `json:"kind,omitempty"`
}

type sarifSuppression struct {
	Kind          string `json:"kind"`
	Status        string `json:"status"`
	Justification string `json:"justification"`
}

// sarifLevel maps a policy action to a result level.
func sarifLevel(action string) string {
	switch action {
	case ActionDeny:
		return "error"
	case ActionWarn:
		return "warning"
	}
	return "note"
}

// ruleID names a vendor's rule: its catalog entry id, or "custom/<name>" for a custom vendor.
func ruleID(f *Finding) string {
	if f.Catalog != "" {
		return f.Catalog
	}
	return "custom/" + f.Vendor
}

// WriteSARIF writes a SARIF 2.1.0 log with one run: a rule per vendor found, a result per
// finding located at the target (image reference or SBOM path) and the package, one error
// notification per target that could not be scanned and one warning notification per attached
// SBOM that could not be read. Excepted findings carry an accepted
// external suppression whose justification is the exception's reason.
func WriteSARIF(w io.Writer, r *Report) error {
	// One rule per vendor, ordered by id.
	rules := map[string]*sarifRule{}
	for _, res := range r.Results {
		for i := range res.Findings {
			f := &res.Findings[i]
			id := ruleID(f)
			rule, ok := rules[id]
			if !ok {
				rule = newSARIFRule(id, f)
				rules[id] = rule
			}
			// The strictest action in the run is the rule's default level.
			if f.Action == ActionDeny || (f.Action == ActionWarn && rule.DefaultConfiguration.Level == "note") {
				rule.DefaultConfiguration.Level = sarifLevel(f.Action)
			}
		}
	}
	ids := make([]string, 0, len(rules))
	for id := range rules {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	run := sarifRun{
		Tool: sarifTool{Driver: sarifDriver{
			Name:           "embargo",
			Version:        r.EmbargoVersion,
			InformationURI: InformationURI,
			Rules:          make([]sarifRule, 0, len(ids)),
		}},
		Results:    []sarifResult{},
		Properties: map[string]any{"catalogVersion": r.CatalogVersion},
	}
	index := map[string]int{}
	for i, id := range ids {
		index[id] = i
		run.Tool.Driver.Rules = append(run.Tool.Driver.Rules, *rules[id])
	}

	inv := sarifInvocation{ExecutionSuccessful: true}
	for _, res := range r.Results {
		if res.Error != "" {
			inv.ExecutionSuccessful = false
			inv.ToolExecutionNotifications = append(inv.ToolExecutionNotifications, sarifNotification{
				Level:     "error",
				Message:   sarifText{Text: res.Error},
				Locations: []sarifLocation{{PhysicalLocation: &sarifPhysicalLocation{ArtifactLocation: sarifArtifactLocation{URI: sarifURI(res.Target)}}}},
			})
		}
		// an attached SBOM that could not be read: the run still succeeded, on the rest
		for _, w := range res.Warnings {
			inv.ToolExecutionNotifications = append(inv.ToolExecutionNotifications, sarifNotification{
				Level:     "warning",
				Message:   sarifText{Text: w},
				Locations: []sarifLocation{{PhysicalLocation: &sarifPhysicalLocation{ArtifactLocation: sarifArtifactLocation{URI: sarifURI(res.Target)}}}},
			})
		}
		for i := range res.Findings {
			f := &res.Findings[i]
			id := ruleID(f)
			run.Results = append(run.Results, sarifResultOf(res, f, id, index[id]))
		}
	}
	run.Invocations = []sarifInvocation{inv}

	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(sarifLog{Schema: SARIFSchema, Version: SARIFVersion, Runs: []sarifRun{run}})
}

func newSARIFRule(id string, f *Finding) *sarifRule {
	short := fmt.Sprintf("Software from banned vendor %s", f.Vendor)
	full := short + "."
	if len(f.Basis) > 0 {
		full = short + ": " + f.Basis[0]
	}
	text := "Embargo found software from " + f.Vendor + ", a vendor banned by:\n"
	md := "Embargo found software from **" + f.Vendor + "**, a vendor banned by:\n\n"
	for _, b := range f.Basis {
		text += "- " + b + "\n"
		md += "- " + b + "\n"
	}
	if len(f.Basis) == 0 {
		text = "Embargo found software from " + f.Vendor + ", a vendor a policy bans.\n"
		md = text
	}
	fix := "\nRemove the software from the image, or record a time-limited exception in the VendorPolicy."
	return &sarifRule{
		ID:                   id,
		Name:                 "BannedVendor",
		ShortDescription:     sarifText{Text: short},
		FullDescription:      sarifText{Text: full},
		Help:                 sarifMultiformat{Text: text + fix, Markdown: md + fix},
		DefaultConfiguration: sarifConfiguration{Level: sarifLevel(f.Action)},
		Properties: sarifRuleProperties{
			Tags:     []string{"security", "supply-chain", "banned-vendor"},
			Vendor:   f.Vendor,
			Catalog:  f.Catalog,
			Basis:    f.Basis,
			Severity: "9.0",
		},
	}
}

func sarifResultOf(res Result, f *Finding, id string, idx int) sarifResult {
	var what string
	if f.Package != nil {
		what = "Package " + f.PackageString()
		if f.Package.Type != "" {
			what += " (" + f.Package.Type + ")"
		}
	} else {
		what = "Files"
	}
	msg := fmt.Sprintf("%s from banned vendor %s in %s", what, f.Vendor, res.Target)
	if f.Platform != "" {
		msg += " [" + f.Platform + "]"
	}
	msg += ": " + f.EvidenceString() + ". Policy " + f.Policy + ": " + f.Action
	if f.Excepted {
		msg += " (excepted)"
	}
	msg += "."

	loc := sarifLocation{PhysicalLocation: &sarifPhysicalLocation{ArtifactLocation: sarifArtifactLocation{URI: sarifURI(res.Target)}}}
	if f.Package != nil {
		fq := f.Package.PURL
		if fq == "" {
			fq = f.Package.Name
		}
		loc.LogicalLocations = []sarifLogicalLocation{{Name: f.Package.Name, FullyQualifiedName: fq, Kind: "package"}}
	} else if len(f.Evidence) > 0 {
		loc.LogicalLocations = []sarifLogicalLocation{{Name: f.Evidence[0].Value, Kind: "file"}}
	}

	props := map[string]any{
		"policy":   f.Policy,
		"action":   f.Action,
		"vendor":   f.Vendor,
		"rule":     f.Rule,
		"evidence": f.Evidence,
	}
	for k, v := range map[string]string{"catalog": f.Catalog, "digest": res.Digest, "platform": f.Platform, "layer": f.Layer} {
		if v != "" {
			props[k] = v
		}
	}

	out := sarifResult{
		RuleID:              id,
		RuleIndex:           idx,
		Level:               sarifLevel(f.Action),
		Message:             sarifText{Text: msg},
		Locations:           []sarifLocation{loc},
		PartialFingerprints: map[string]string{"embargoFinding/v1": fingerprint(res.Target, f)},
		Properties:          props,
	}
	if f.Excepted {
		j := "excepted by policy " + f.Policy
		if f.Exception != nil {
			j += ": " + f.Exception.Reason
			if exp := f.Exception.expiry(); exp != "" {
				j += " (expires " + exp + ")"
			}
		}
		out.Suppressions = []sarifSuppression{{Kind: "external", Status: "accepted", Justification: j}}
	}
	return out
}

// fingerprint identifies a finding across runs: it ignores the package version and the
// digest, so an upgrade of the same banned package stays the same alert.
func fingerprint(target string, f *Finding) string {
	parts := []string{target, f.Policy, f.Vendor, f.Platform, f.Rule}
	if f.Package != nil {
		parts = append(parts, f.Package.Type, f.Package.Name)
	} else if len(f.Evidence) > 0 {
		parts = append(parts, f.Evidence[0].Field)
	}
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(sum[:16])
}

// sarifURI makes a target a valid URI reference while keeping it readable: the colon of a
// registry port in the first segment ("localhost:5000/app:1") would otherwise read as a URI
// scheme, and spaces are not allowed.
func sarifURI(target string) string {
	first, rest, found := strings.Cut(target, "/")
	first = strings.ReplaceAll(first, ":", "%3A")
	if found {
		first += "/" + rest
	}
	return strings.ReplaceAll(first, " ", "%20")
}
