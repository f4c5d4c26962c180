// Package policy compiles VendorPolicies against the built-in catalog and answers, for a given
// moment, which action is in force and whether an exception covers an image.
package policy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/embargo-dev/embargo/api/v1alpha1"
	"github.com/embargo-dev/embargo/internal/catalog"
	"github.com/embargo-dev/embargo/internal/match"
)

// Compiled is a VendorPolicy ready to evaluate.
type Compiled struct {
	Name       string
	Generation int64
	Spec       v1alpha1.VendorPolicySpec
	Vendors    []*match.Vendor

	nsSelector  labels.Selector
	objSelector labels.Selector

	// exceptionImages[i] are Spec.Exceptions[i].Images compiled; "*" crosses "/", so
	// "registry.example.com/team/*" covers every repository, tag and digest below team/.
	exceptionImages [][]*regexp.Regexp

	memoOnce sync.Once
	memo     *memo
}

// Compile resolves catalog references and compiles every rule. The error says which vendor and
// which field to fix.
func Compile(p *v1alpha1.VendorPolicy, cat *catalog.Catalog) (*Compiled, error) {
	c := &Compiled{Name: p.Name, Generation: p.Generation, Spec: p.Spec}
	if c.Spec.Action == "" {
		c.Spec.Action = v1alpha1.ActionDeny
	}
	if c.Spec.OnScanError == "" {
		c.Spec.OnScanError = v1alpha1.ScanErrorAllow
	}
	switch c.Spec.SBOM.Attached {
	case "":
		c.Spec.SBOM.Attached = v1alpha1.AttachedSBOMEvidence
	case v1alpha1.AttachedSBOMEvidence, v1alpha1.AttachedSBOMIgnore:
	default:
		return nil, fmt.Errorf("spec.sbom.attached: %q is not one of Evidence, Ignore", c.Spec.SBOM.Attached)
	}
	if len(p.Spec.Vendors) == 0 {
		return nil, errors.New("spec.vendors is empty: list at least one vendor, e.g. {catalog: kaspersky}")
	}
	if err := checkAction("spec.action", c.Spec.Action); err != nil {
		return nil, err
	}
	for i, v := range p.Spec.Vendors {
		field := fmt.Sprintf("spec.vendors[%d]", i)
		switch {
		case v.Catalog != "" && v.Rules != nil:
			return nil, fmt.Errorf("%s: set either catalog or rules, not both", field)
		case v.Catalog != "":
			e, ok := cat.Get(v.Catalog)
			if !ok {
				return nil, fmt.Errorf("%s.catalog: %q is not a built-in entry (have: %s)", field, v.Catalog, strings.Join(cat.IDs(), ", "))
			}
			mv, err := e.Compile()
			if err != nil {
				return nil, fmt.Errorf("%s: catalog entry %q: %w", field, v.Catalog, err)
			}
			c.Vendors = append(c.Vendors, mv)
		case v.Rules != nil:
			mv, err := match.Compile(v.Name, "", v.Basis, *v.Rules)
			if err != nil {
				return nil, fmt.Errorf("%s.rules: %w", field, err)
			}
			c.Vendors = append(c.Vendors, mv)
		default:
			return nil, fmt.Errorf("%s: set catalog (a built-in entry such as kaspersky) or rules", field)
		}
	}
	for i, s := range p.Spec.Rollout {
		if err := checkAction(fmt.Sprintf("spec.rollout[%d].action", i), s.Action); err != nil {
			return nil, err
		}
		if s.From.IsZero() {
			return nil, fmt.Errorf("spec.rollout[%d].from is missing", i)
		}
	}
	for i, e := range p.Spec.Exceptions {
		if len(e.Images) == 0 && len(e.Namespaces) == 0 {
			return nil, fmt.Errorf("spec.exceptions[%d]: give images or namespaces", i)
		}
		if strings.TrimSpace(e.Reason) == "" {
			return nil, fmt.Errorf("spec.exceptions[%d].reason is empty: say why (e.g. a waiver number)", i)
		}
		var globs []*regexp.Regexp
		for _, g := range e.Images {
			globs = append(globs, match.Glob(g))
		}
		c.exceptionImages = append(c.exceptionImages, globs)
	}
	var err error
	c.nsSelector, err = selector(p.Spec.Match.NamespaceSelector)
	if err != nil {
		return nil, fmt.Errorf("spec.match.namespaceSelector: %w", err)
	}
	c.objSelector, err = selector(p.Spec.Match.ObjectSelector)
	if err != nil {
		return nil, fmt.Errorf("spec.match.objectSelector: %w", err)
	}
	return c, nil
}

func checkAction(field string, a v1alpha1.Action) error {
	switch a {
	case v1alpha1.ActionDeny, v1alpha1.ActionWarn, v1alpha1.ActionAudit:
		return nil
	}
	return fmt.Errorf("%s: %q is not one of Deny, Warn, Audit", field, a)
}

func selector(s *metav1.LabelSelector) (labels.Selector, error) {
	if s == nil {
		return labels.Everything(), nil
	}
	return metav1.LabelSelectorAsSelector(s)
}

// Step is a rollout step.
type Step struct {
	Action v1alpha1.Action
	From   time.Time
}

// ActionAt returns the action in force at t and the next step after t, if any.
func (c *Compiled) ActionAt(t time.Time) (v1alpha1.Action, *Step) {
	steps := slices.Clone(c.Spec.Rollout)
	slices.SortFunc(steps, func(a, b v1alpha1.RolloutStep) int { return a.From.Time.Compare(b.From.Time) })
	action := c.Spec.Action
	for _, s := range steps {
		if s.From.Time.After(t) {
			return action, &Step{Action: s.Action, From: s.From.Time}
		}
		action = s.Action
	}
	return action, nil
}

// StepAt returns the rollout step in force at t, or nil when spec.action applies.
func (c *Compiled) StepAt(t time.Time) *Step {
	var cur *Step
	for _, s := range c.Spec.Rollout {
		if !s.From.Time.After(t) && (cur == nil || s.From.Time.After(cur.From)) {
			cur = &Step{Action: s.Action, From: s.From.Time}
		}
	}
	return cur
}

// Selects reports whether the policy applies to an object in namespace ns. Namespaces listed in
// exempt (the manager's own, kube-system) never match.
func (c *Compiled) Selects(ns string, nsLabels, objLabels map[string]string, exempt []string) bool {
	if slices.Contains(exempt, ns) || slices.Contains(c.Spec.Match.ExcludedNamespaces, ns) {
		return false
	}
	return c.nsSelector.Matches(labels.Set(nsLabels)) && c.objSelector.Matches(labels.Set(objLabels))
}

// ExceptionFor returns the exception covering image (as written in the pod spec, or its
// repository@digest form) in namespace at t. Expired exceptions never apply.
func (c *Compiled) ExceptionFor(namespace string, images []string, t time.Time) *v1alpha1.Exception {
	for i := range c.Spec.Exceptions {
		e := &c.Spec.Exceptions[i]
		if e.Expires != nil && !t.Before(e.Expires.Time) {
			continue
		}
		if len(e.Namespaces) > 0 && !slices.Contains(e.Namespaces, namespace) {
			continue
		}
		if len(e.Images) > 0 && !anyImageMatches(c.exceptionImages[i], images) {
			continue
		}
		return e
	}
	return nil
}

// NextExpiry is the earliest exception expiry after t, for requeueing.
func (c *Compiled) NextExpiry(t time.Time) *time.Time {
	var next *time.Time
	for _, e := range c.Spec.Exceptions {
		if e.Expires != nil && e.Expires.Time.After(t) && (next == nil || e.Expires.Time.Before(*next)) {
			tt := e.Expires.Time
			next = &tt
		}
	}
	return next
}

func anyImageMatches(globs []*regexp.Regexp, images []string) bool {
	for _, g := range globs {
		for _, img := range images {
			if img != "" && g.MatchString(img) {
				return true
			}
		}
	}
	return false
}

// Default is the policy the CLI applies when given none: the built-in Kaspersky entry, Deny.
func Default() *v1alpha1.VendorPolicy {
	return &v1alpha1.VendorPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "VendorPolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: "builtin-kaspersky"},
		Spec: v1alpha1.VendorPolicySpec{
			Vendors: []v1alpha1.VendorSelector{{Catalog: "kaspersky"}},
			Action:  v1alpha1.ActionDeny,
		},
	}
}

// Decode reads one or more VendorPolicy YAML or JSON documents. Unknown fields are errors, so a
// typo in a policy file fails the CI gate instead of silently weakening it.
func Decode(data []byte) ([]*v1alpha1.VendorPolicy, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out []*v1alpha1.VendorPolicy
	for i := 0; ; i++ {
		doc, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		if len(bytes.TrimSpace(doc)) == 0 || isComment(doc) {
			continue
		}
		var p v1alpha1.VendorPolicy
		if err := yaml.UnmarshalStrict(doc, &p); err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		if p.Kind != "VendorPolicy" || p.APIVersion != v1alpha1.GroupVersion.String() {
			return nil, fmt.Errorf("document %d: kind %q apiVersion %q: want kind VendorPolicy, apiVersion %s", i+1, p.Kind, p.APIVersion, v1alpha1.GroupVersion)
		}
		out = append(out, &p)
	}
	if len(out) == 0 {
		return nil, errors.New("no VendorPolicy documents found")
	}
	return out, nil
}

func isComment(doc []byte) bool {
	for _, line := range bytes.Split(doc, []byte("\n")) {
		l := bytes.TrimSpace(line)
		// a document marker, alone or followed by a comment, is not content ("--- {...}" is)
		if rest, ok := bytes.CutPrefix(l, []byte("---")); ok && (len(rest) == 0 || rest[0] == ' ' || rest[0] == '\t') {
			l = bytes.TrimSpace(rest)
		}
		if len(l) > 0 && l[0] != '#' {
			return false
		}
	}
	return true
}

// UsesAttached reports whether the policy counts the SBOMs images carry (spec.sbom.attached is
// not Ignore).
func (c *Compiled) UsesAttached() bool {
	return c.Spec.SBOM.Attached != v1alpha1.AttachedSBOMIgnore
}

// Match runs the policy's vendors over inventories: the scanned ones, and the attached SBOMs'
// unless spec.sbom.attached is Ignore.
func (c *Compiled) Match(invs []match.Inventory) []match.Finding {
	if !c.UsesAttached() {
		invs = slices.DeleteFunc(slices.Clone(invs), func(inv match.Inventory) bool { return inv.Source != nil })
	}
	return match.MatchAll(invs, c.Vendors)
}
