// Command embargo is Embargo's CI gate: it finds banned vendors' software (Kaspersky first, per
// US DHS BOD 17-01) in container images and SBOM files, and exits non-zero when a policy denies
// what it found.
//
//	embargo scan [flags] IMAGE...
//	embargo scan --sbom [flags] FILE...
//	embargo catalog list
//	embargo catalog show ID
//	embargo version
//
// Exit codes: 0 nothing denied, 1 an enforced Deny finding, 2 an error.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// Exit codes.
const (
	exitOK    = 0
	exitDeny  = 1
	exitError = 2
)

const topUsage = `Embargo finds banned vendors' software (Kaspersky first, per US DHS BOD 17-01)
in container images and SBOM files.

Usage:
  embargo scan [flags] IMAGE...        scan images in registries
  embargo scan --sbom [flags] FILE...  check SPDX, CycloneDX or syft JSON SBOMs
  embargo catalog list                 list the built-in banned vendors
  embargo catalog show ID              show a vendor's legal basis and rules
  embargo version                      print the version

Run 'embargo COMMAND --help' for a command's flags and examples.

Exit codes:
  0  no enforced Deny finding
  1  at least one enforced Deny finding
  2  error (bad flags, bad policy, unreachable registry, unreadable SBOM)
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, topUsage)
		return exitError
	}
	switch args[0] {
	case "scan":
		return runScan(args[1:], stdout, stderr)
	case "catalog":
		return runCatalog(args[1:], stdout, stderr)
	case "version", "--version", "-version":
		return runVersion(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			return run([]string{args[1], "--help"}, stdout, stderr)
		}
		fmt.Fprint(stdout, topUsage)
		return exitOK
	}
	return fail(stderr, fmt.Errorf("unknown command %q (run 'embargo --help')", args[0]))
}

// fail prints err as the one line "embargo: <reason>" and returns exitError.
func fail(stderr io.Writer, err error) int {
	fmt.Fprintln(stderr, "embargo: "+oneLine(err.Error()))
	return exitError
}

// oneLine folds a message onto one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// newFlagSet returns a flag set that reports errors through the caller, not by printing;
// usage is printed on --help only.
func newFlagSet(name, usage string, stdout io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	helps[fs] = func() {
		fmt.Fprint(stdout, usage)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	return fs
}

// helps prints each flag set's help.
var helps = map[*flag.FlagSet]func(){}

// parseFlags parses flags anywhere among the arguments (`scan IMAGE --policy p.yaml` works);
// arguments after "--" are never flags. It returns the positional arguments, or done=true with
// the exit code when the caller should stop (help was asked for, or the flags were wrong).
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) (pos []string, done bool, code int) {
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				helps[fs]()
				return nil, true, exitOK
			}
			return nil, true, fail(stderr, fmt.Errorf("%s: %v (run 'embargo %s --help')", fs.Name(), err, fs.Name()))
		}
		rest := fs.Args()
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), false, exitOK
		}
		if len(rest) == 0 {
			return pos, false, exitOK
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// listFlag is a repeatable flag; values may also be comma-separated when split is set.
type listFlag struct {
	values []string
	split  bool
}

func (l *listFlag) String() string { return strings.Join(l.values, ",") }

func (l *listFlag) Set(v string) error {
	if !l.split {
		l.values = append(l.values, v)
		return nil
	}
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			l.values = append(l.values, s)
		}
	}
	return nil
}
