package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"strings"
	"text/tabwriter"

	"go.yaml.in/yaml/v3"

	"github.com/embargo-dev/embargo/internal/catalog"
	"github.com/embargo-dev/embargo/internal/version"
)

const catalogUsage = `Usage:
  embargo catalog list      list the built-in banned vendors (ID, VENDOR, SCOPE)
  embargo catalog show ID   show a vendor's aliases, scope, legal basis, coverage and rules

The IDs name vendors in policies (spec.vendors[].catalog) and in 'embargo scan --catalog'.

Examples:
  embargo catalog list
  embargo catalog show kaspersky

Exit codes: 0 success, 2 error (unknown command or ID).
`

func runCatalog(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("catalog", catalogUsage, stdout)
	pos, done, code := parseFlags(fs, args, stderr)
	if done {
		return code
	}
	cat := catalog.Default()
	if len(pos) == 0 {
		fmt.Fprint(stderr, catalogUsage)
		return exitError
	}
	switch pos[0] {
	case "list", "ls":
		if len(pos) > 1 {
			return fail(stderr, fmt.Errorf("catalog list takes no arguments"))
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tVENDOR\tSCOPE")
		for _, e := range cat.Entries {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", e.ID, oneLine(e.Vendor), oneLine(e.Scope))
		}
		if err := tw.Flush(); err != nil {
			return fail(stderr, err)
		}
		return exitOK
	case "show":
		if len(pos) != 2 {
			return fail(stderr, fmt.Errorf("catalog show takes one ID (have: %s)", strings.Join(cat.IDs(), ", ")))
		}
		e, ok := cat.Get(pos[1])
		if !ok {
			return fail(stderr, fmt.Errorf("catalog: no entry %q (have: %s)", pos[1], strings.Join(cat.IDs(), ", ")))
		}
		rules, err := blockYAML(e.Rules)
		if err != nil {
			return fail(stderr, err)
		}
		var b strings.Builder
		fmt.Fprintf(&b, "ID:       %s\n", e.ID)
		fmt.Fprintf(&b, "Vendor:   %s\n", e.Vendor)
		if len(e.Aliases) > 0 {
			fmt.Fprintf(&b, "Aliases:  %s\n", strings.Join(e.Aliases, "; "))
		}
		fmt.Fprintf(&b, "Scope:    %s\n", oneLine(e.Scope))
		fmt.Fprintf(&b, "Catalog:  %s\n", cat.Version)
		b.WriteString("Basis:\n")
		for _, l := range e.Basis {
			fmt.Fprintf(&b, "  - %s\n", oneLine(l))
		}
		b.WriteString("Coverage:\n")
		for _, l := range strings.Split(strings.TrimSpace(e.Coverage), "\n") {
			fmt.Fprintf(&b, "  %s\n", l)
		}
		b.WriteString("Rules:\n")
		for _, l := range strings.Split(strings.TrimRight(string(rules), "\n"), "\n") {
			fmt.Fprintf(&b, "  %s\n", l)
		}
		fmt.Fprint(stdout, b.String())
		return exitOK
	}
	return fail(stderr, fmt.Errorf("unknown catalog command %q (run 'embargo catalog --help')", pos[0]))
}

const versionUsage = `Usage:
  embargo version

Prints the version of embargo, of its built-in vendor catalog and of Go.

Example:
  embargo version
`

func runVersion(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("version", versionUsage, stdout)
	pos, done, code := parseFlags(fs, args, stderr)
	if done {
		return code
	}
	if len(pos) > 0 {
		return fail(stderr, fmt.Errorf("version takes no arguments"))
	}
	fmt.Fprintf(stdout, "embargo %s (catalog %s, %s %s/%s)\n", version.Version, catalog.Default().Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return exitOK
}

// blockYAML renders v as block-style YAML in its JSON field order, without folding long
// strings (a folded regular expression is hard to read and easy to mis-copy).
func blockYAML(v any) ([]byte, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var n yaml.Node
	if err := yaml.Unmarshal(data, &n); err != nil {
		return nil, err
	}
	var unflow func(*yaml.Node)
	unflow = func(n *yaml.Node) {
		n.Style &^= yaml.FlowStyle
		if n.Kind == yaml.ScalarNode && n.Style&yaml.DoubleQuotedStyle != 0 {
			n.Style &^= yaml.DoubleQuotedStyle // the encoder quotes again where YAML needs it
		}
		for _, c := range n.Content {
			unflow(c)
		}
	}
	unflow(&n)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
