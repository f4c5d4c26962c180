package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/embargo-dev/embargo/api/v1alpha1"
	"github.com/embargo-dev/embargo/internal/cache"
	"github.com/embargo-dev/embargo/internal/catalog"
	"github.com/embargo-dev/embargo/internal/decision"
	"github.com/embargo-dev/embargo/internal/match"
	"github.com/embargo-dev/embargo/internal/policy"
	"github.com/embargo-dev/embargo/internal/registry"
	"github.com/embargo-dev/embargo/internal/report"
	"github.com/embargo-dev/embargo/internal/sbomfile"
	"github.com/embargo-dev/embargo/internal/scan"
	"github.com/embargo-dev/embargo/internal/version"
)

const scanUsage = `Usage:
  embargo scan [flags] IMAGE...
  embargo scan --sbom [flags] FILE...

Scans images in their registries (or SBOM files: SPDX 2.x JSON, CycloneDX JSON, syft JSON)
for software of banned vendors and judges it with VendorPolicies, as the cluster would.
Without --policy or --catalog the built-in policy applies: the kaspersky entry, Deny.
Registry credentials come from your docker config (~/.docker/config.json and its helpers).

Examples:
  # Gate a release on the built-in Kaspersky policy
  embargo scan registry.example.com/team/app:1.4.2

  # Judge with the cluster's policies, as if deployed to namespace "payments"
  embargo scan --policy policies.yaml --namespace payments registry.example.com/team/app:1.4.2

  # Check an SBOM your build already produced, and write SARIF for code scanning
  embargo scan --sbom -o sarif --output-file embargo.sarif sbom.spdx.json

  # Kaspersky and Huawei, one platform, a local plain-HTTP registry
  embargo scan --catalog kaspersky,huawei --platform linux/amd64 --insecure localhost:5000/app:dev

Exit codes:
  0  no enforced Deny finding (Warn and Audit findings, and excepted ones, are reported only)
  1  at least one enforced Deny finding
  2  error: bad flags or policy, unreachable registry or image, unreadable SBOM, timeout;
     the reason is one line on stderr ("embargo: <reason>"); results for the targets that
     were scanned are still written

Flags:
`

type scanFlags struct {
	policies   listFlag
	catalogs   listFlag
	namespace  string
	platform   string
	insecure   bool
	timeout    time.Duration
	output     string
	outputFile string
	sbom       bool
	cacheDir   string
	noCache    bool
	maxFiles   int64
	attached   bool
}

func runScan(args []string, stdout, stderr io.Writer) int {
	var f scanFlags
	f.catalogs.split = true
	fs := newFlagSet("scan", scanUsage, stdout)
	fs.Var(&f.policies, "policy", "VendorPolicy YAML/JSON `FILE` (repeatable; a file may hold several documents)")
	fs.Var(&f.catalogs, "catalog", "deny the built-in catalog entries `ID,...` (see 'embargo catalog list')")
	fs.StringVar(&f.namespace, "namespace", "default", "judge as if the workload ran in `NS` (exceptions naming namespaces, excludedNamespaces)")
	fs.StringVar(&f.platform, "platform", "all", "platforms of an image index to scan: all, or `os/arch[/variant],...`")
	fs.BoolVar(&f.insecure, "insecure", false, "allow plain HTTP and unverified TLS for every registry")
	fs.DurationVar(&f.timeout, "timeout", 5*time.Minute, "bound on the whole run")
	fs.StringVar(&f.output, "o", "table", "output `format`: table, json, sarif or junit")
	fs.StringVar(&f.output, "output", "table", "same as -o")
	fs.StringVar(&f.outputFile, "output-file", "", "write the output to `FILE` instead of stdout")
	fs.BoolVar(&f.sbom, "sbom", false, "the arguments are SBOM files (- reads stdin), not images")
	fs.StringVar(&f.cacheDir, "cache-dir", defaultCacheDir(), "keep analysed layers in `DIR` for later scans (size-bounded; \"\" keeps them in memory only)")
	fs.BoolVar(&f.noCache, "no-cache", false, "analyse every layer again; use no layer cache")
	fs.Int64Var(&f.maxFiles, "max-image-files", scan.DefaultMaxImageFiles, "refuse (as too large) an image whose layers hold more files than this")
	fs.BoolVar(&f.attached, "attached-sboms", true, "also match the SBOMs images carry (BuildKit attestations, OCI referrers, cosign .sbom/.att tags); findings from them say \"declared by\"")
	pos, done, code := parseFlags(fs, args, stderr)
	if done {
		return code
	}

	format, err := report.ParseFormat(f.output)
	if err != nil {
		return fail(stderr, err)
	}
	if f.timeout <= 0 {
		return fail(stderr, fmt.Errorf("--timeout must be positive, got %s", f.timeout))
	}
	if strings.TrimSpace(f.namespace) == "" {
		return fail(stderr, errors.New("--namespace is empty"))
	}
	platforms, err := parsePlatforms(f.platform)
	if err != nil {
		return fail(stderr, err)
	}
	targets := dedupe(pos)
	if len(targets) == 0 {
		what := "an image"
		if f.sbom {
			what = "an SBOM file"
		}
		return fail(stderr, fmt.Errorf("scan: give at least %s (run 'embargo scan --help')", what))
	}

	now := time.Now()
	cat := catalog.Default()
	policies, err := loadPolicies(f.policies.values, f.catalogs.values, cat)
	if err != nil {
		return fail(stderr, err)
	}
	var applied []*policy.Compiled
	for _, c := range policies {
		// The cluster never applies a policy in a namespace it excludes.
		if !slices.Contains(c.Spec.Match.ExcludedNamespaces, f.namespace) {
			applied = append(applied, c)
		}
	}

	rep := &report.Report{EmbargoVersion: version.Version, CatalogVersion: cat.Version}
	for i, p := range decision.Decide(decision.Input{Policies: applied, Namespace: f.namespace, Now: now}).Policies {
		rp := report.Policy{Name: p.Policy, Action: string(p.Action), Vendors: []string{}}
		for _, v := range applied[i].Vendors {
			rp.Vendors = append(rp.Vendors, v.Name)
		}
		rep.Policies = append(rep.Policies, rp)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() { <-ctx.Done(); stop() }() // a second Ctrl-C kills at once
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()

	j := judge{policies: applied, namespace: f.namespace, now: now}
	prog := newProgress(stderr)
	var failures, warnings []string
	if f.sbom {
		for _, file := range targets {
			res := j.sbomFile(file)
			if res.Error != "" {
				failures = append(failures, res.Error)
			}
			rep.Results = append(rep.Results, res)
		}
	} else {
		tmp, err := os.MkdirTemp("", "embargo-cli-")
		if err != nil {
			return fail(stderr, err)
		}
		defer os.RemoveAll(tmp)
		var ins []string
		if f.insecure {
			ins = []string{"*"}
		}
		stopProg := prog.start("starting the scanner")
		eng, err := scan.New(scan.Options{
			Registry:    registry.Options{Insecure: ins},
			Platforms:   platforms,
			TempDir:     tmp, // private: the engine clears stale scan directories in its TempDir
			ScanTimeout: f.timeout,
			// one image at a time: each scan may use every CPU
			MaxConcurrent:  1,
			LayerCacheDir:  f.cacheDir,
			NoLayerCache:   f.noCache,
			MaxImageFiles:  f.maxFiles,
			IgnoreAttached: !f.attached,
		})
		stopProg()
		if err != nil {
			return fail(stderr, fmt.Errorf("starting the scanner: %w", err))
		}
		for i, image := range targets {
			label := image
			if len(targets) > 1 {
				label = fmt.Sprintf("%s (%d/%d)", image, i+1, len(targets))
			}
			stopProg := prog.start("scanning " + label)
			res := j.image(ctx, eng, image, f.timeout)
			stopProg()
			for _, w := range res.Warnings {
				warnings = append(warnings, image+": "+w)
			}
			if res.Error != "" {
				failures = append(failures, res.Error)
			}
			rep.Results = append(rep.Results, res)
		}
	}
	rep.Summarize()

	var out bytes.Buffer
	if err := report.Write(&out, format, rep); err != nil {
		return fail(stderr, err)
	}
	if f.outputFile != "" {
		if err := os.WriteFile(f.outputFile, out.Bytes(), 0o644); err != nil {
			return fail(stderr, fmt.Errorf("writing the output: %w", err))
		}
	} else if _, err := stdout.Write(out.Bytes()); err != nil {
		return fail(stderr, fmt.Errorf("writing the output: %w", err))
	}

	for _, msg := range warnings {
		fmt.Fprintln(stderr, "embargo: warning: "+oneLine(msg))
	}
	for _, msg := range failures {
		fmt.Fprintln(stderr, "embargo: "+msg)
	}
	switch {
	case rep.Summary.Errors > 0:
		return exitError
	case rep.Summary.Deny > 0:
		return exitDeny
	}
	return exitOK
}

// parsePlatforms reads --platform: "all" (nil: every platform) or os/arch[/variant],...
func parsePlatforms(s string) ([]string, error) {
	if strings.TrimSpace(s) == "all" {
		return nil, nil
	}
	var out []string
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		parts := strings.Split(p, "/")
		if len(parts) < 2 || len(parts) > 3 || slices.Contains(parts, "") {
			return nil, fmt.Errorf("--platform %q: want all, or os/arch[/variant] separated by commas, e.g. linux/amd64,linux/arm64/v8", p)
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out, nil
}

func dedupe(args []string) []string {
	var out []string
	for _, a := range args {
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// loadPolicies reads and compiles the policy files, adds a Deny policy over the --catalog
// entries, and falls back to policy.Default() when given neither.
func loadPolicies(files, catalogIDs []string, cat *catalog.Catalog) ([]*policy.Compiled, error) {
	var out []*policy.Compiled
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("policy: %w", err)
		}
		docs, err := policy.Decode(data)
		if err != nil {
			return nil, fmt.Errorf("policy %s: %w", file, err)
		}
		for i, p := range docs {
			if p.Name == "" {
				p.Name = fmt.Sprintf("%s#%d", file, i+1)
			}
			c, err := policy.Compile(p, cat)
			if err != nil {
				return nil, fmt.Errorf("policy %s: VendorPolicy %s: %w", file, p.Name, err)
			}
			out = append(out, c)
		}
	}
	if len(catalogIDs) > 0 {
		p := &v1alpha1.VendorPolicy{
			TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "VendorPolicy"},
			ObjectMeta: metav1.ObjectMeta{Name: "catalog-" + strings.Join(dedupe(catalogIDs), "-")},
			Spec:       v1alpha1.VendorPolicySpec{Action: v1alpha1.ActionDeny},
		}
		for _, id := range dedupe(catalogIDs) {
			p.Spec.Vendors = append(p.Spec.Vendors, v1alpha1.VendorSelector{Catalog: id})
		}
		c, err := policy.Compile(p, cat)
		if err != nil {
			return nil, fmt.Errorf("--catalog: %w", err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		c, err := policy.Compile(policy.Default(), cat)
		if err != nil {
			return nil, fmt.Errorf("built-in policy: %w", err)
		}
		out = append(out, c)
	}
	return out, nil
}

// judge applies the policies to inventories as the cluster does.
type judge struct {
	policies  []*policy.Compiled
	namespace string
	now       time.Time
}

// findings judges one target's inventories with every policy; forms are the other names an
// exception may know it by. warnings name the attached SBOMs a policy would have counted but
// could not read.
func (j judge) findings(target, digest string, forms []string, invs []match.Inventory) (findings []report.Finding, warnings []string) {
	d := decision.Decide(decision.Input{
		Policies:  j.policies,
		Namespace: j.namespace,
		Now:       j.now,
		Containers: []decision.Container{{
			Kind: "image", Name: target, Image: target, Digest: digest, Forms: forms, Inventories: invs,
		}},
	})
	findings = []report.Finding{}
	for _, p := range d.Policies {
		for _, f := range append(slices.Clip(p.Kept), p.Excepted...) {
			findings = append(findings, reportFinding(p, f))
		}
		for _, u := range p.Unusable {
			if !slices.Contains(warnings, u.Message) {
				warnings = append(warnings, u.Message)
			}
		}
	}
	return findings, warnings
}

func reportFinding(p decision.PolicyDecision, f decision.Finding) report.Finding {
	rf := report.Finding{
		Policy:   p.Policy,
		Action:   string(p.Action),
		Excepted: f.Exception != nil,
		Vendor:   f.Vendor,
		Catalog:  f.Catalog,
		Rule:     f.Rule(),
		Layer:    f.Layer,
		Platform: f.Platform,
		Basis:    slices.Clone(f.Basis),
	}
	if f.Exception != nil {
		rf.Exception = &report.Exception{Reason: f.Exception.Reason}
		if f.Exception.Expires != nil {
			t := f.Exception.Expires.UTC()
			rf.Exception.Expires = &t
		}
	}
	if f.Package != nil {
		rf.Package = &report.Package{Name: f.Package.Name, Version: f.Package.Version, Type: f.Package.Type, PURL: f.Package.PURL}
	}
	for _, e := range f.Evidence {
		rf.Evidence = append(rf.Evidence, report.Evidence{Rule: e.Rule, Field: e.Field, Value: e.Value, Declared: e.Declared})
	}
	return rf
}

// image resolves, scans and judges one image. Failures are recorded in the result as one line.
func (j judge) image(ctx context.Context, eng *scan.Engine, image string, timeout time.Duration) report.Result {
	res := report.Result{Target: image, Findings: []report.Finding{}}
	kc := authn.DefaultKeychain
	target, err := eng.Resolve(ctx, image, kc)
	if err == nil {
		res.Digest = target.Digest.String()
		var rec *cache.Record
		rec, err = eng.Scan(ctx, target, kc, scan.Foreground)
		if err == nil {
			res.Platforms = rec.Platforms
			res.PackageCount = rec.PackageCount
			res.Findings, res.Warnings = j.findings(image, res.Digest, []string{target.Ref.String()}, rec.Inventories)
			return res
		}
	}
	res.Error = imageError(ctx, image, err, timeout)
	return res
}

// imageError is the one-line reason an image could not be scanned, naming the image.
func imageError(ctx context.Context, image string, err error, timeout time.Duration) string {
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Sprintf("%s: timed out: the run took longer than --timeout %s", image, timeout)
	case errors.Is(ctx.Err(), context.Canceled):
		return fmt.Sprintf("%s: interrupted", image)
	}
	msg := oneLine(registry.Redact(err.Error())) // CI logs are often public
	var rerr *registry.Error
	if errors.As(err, &rerr) && rerr.Ref != "" {
		return msg // "<ref>: image not found: ..."
	}
	if strings.HasPrefix(msg, image+":") || strings.HasPrefix(msg, image+" ") {
		return msg
	}
	return image + ": " + msg
}

// sbomFile decodes and judges one SBOM file ("-" is stdin). Its digest is the file's sha256.
func (j judge) sbomFile(file string) report.Result {
	res := report.Result{Target: file, Findings: []report.Finding{}}
	var data []byte
	var err error
	if file == "-" {
		data, err = io.ReadAll(io.LimitReader(os.Stdin, sbomfile.MaxSize+1))
	} else {
		data, err = os.ReadFile(file)
	}
	if err != nil {
		res.Error = oneLine(err.Error()) // *PathError names the file
		if file == "-" {
			res.Error = "stdin: " + res.Error
		}
		return res
	}
	sum := sha256.Sum256(data)
	res.Digest = "sha256:" + hex.EncodeToString(sum[:])
	inv, _, err := sbomfile.Decode(bytes.NewReader(data))
	if err != nil {
		res.Error = file + ": " + oneLine(err.Error())
		return res
	}
	if inv.Platform != "" {
		res.Platforms = []string{inv.Platform}
	}
	res.PackageCount = len(inv.Packages)
	res.Findings, _ = j.findings(file, res.Digest, nil, []match.Inventory{inv})
	return res
}

// defaultCacheDir is $XDG_CACHE_HOME/embargo (~/.cache/embargo), or "" when there is no home.
func defaultCacheDir() string {
	d, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(d, "embargo")
}
