// Command image assembles Embargo's OCI image index from binaries `make image` cross-compiled
// into bin/<os>_<arch>/, writes it as an OCI layout (bin/image) and optionally pushes it.
// No container engine is needed. See internal/imagebuild; `make image` is how it is run.
//
//	go run ./hack/image -created 1796074606 -version v0.1.0 -revision $(git rev-parse HEAD) \
//	    [-platforms linux/amd64,linux/arm64] [-push REGISTRY/embargo:TAG [-insecure]]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/embargo-dev/embargo/internal/imagebuild"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		binDir    = flag.String("bin", "bin", "directory with <os>_<arch>[_<variant>]/{manager,embargo} for each platform")
		platforms = flag.String("platforms", "linux/amd64,linux/arm64", "os/arch[/variant],... of the index")
		out       = flag.String("out", "bin/image", "OCI layout directory to write (replaced)")
		caCerts   = flag.String("ca-certs", "/etc/ssl/certs/ca-certificates.crt", "PEM CA bundle to ship (Debian's ca-certificates)")
		created   = flag.String("created", os.Getenv("SOURCE_DATE_EPOCH"), "image and file timestamp, Unix seconds: the commit time (default $SOURCE_DATE_EPOCH)")
		version   = flag.String("version", "", "org.opencontainers.image.version")
		revision  = flag.String("revision", "", "org.opencontainers.image.revision (git commit)")
		tag       = flag.String("tag", "", "tag recorded in the layout's index.json (org.opencontainers.image.ref.name)")
		push      = flag.String("push", "", "also push the index to this reference, e.g. registry.example.com/embargo:v0.1.0")
		insecure  = flag.Bool("insecure", false, "with -push: allow plain HTTP and unverified TLS")
	)
	flag.Parse()
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	if *created == "" {
		return fmt.Errorf("-created (or SOURCE_DATE_EPOCH) is required: the commit time, `git log -1 --format=%%ct`")
	}
	secs, err := strconv.ParseInt(*created, 10, 64)
	if err != nil {
		return fmt.Errorf("-created %q: want Unix seconds", *created)
	}

	spec := imagebuild.Spec{
		Entrypoint: "/manager",
		CACerts:    *caCerts,
		Title:      "embargo",
		Version:    *version,
		Revision:   *revision,
		Created:    time.Unix(secs, 0),
	}
	var names []string
	for _, s := range strings.Split(*platforms, ",") {
		p, err := v1.ParsePlatform(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("-platforms: %w", err)
		}
		dir := filepath.Join(*binDir, strings.ReplaceAll(p.String(), "/", "_"))
		spec.Platforms = append(spec.Platforms, imagebuild.Platform{
			Platform: *p,
			Binaries: map[string]string{
				"/manager": filepath.Join(dir, "manager"),
				"/embargo": filepath.Join(dir, "embargo"),
			},
		})
		names = append(names, p.String())
	}

	start := time.Now()
	idx, err := imagebuild.Build(spec)
	if err != nil {
		return err
	}
	if err := imagebuild.WriteLayout(*out, idx, *tag); err != nil {
		return err
	}
	d, err := idx.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("%s: OCI image index %s (%s) in %s\n", *out, d, strings.Join(names, ", "), time.Since(start).Round(100*time.Millisecond))

	if *push == "" {
		return nil
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	pushed, err := imagebuild.PushLayout(ctx, *out, *push, *insecure)
	if err != nil {
		return err
	}
	fmt.Printf("pushed %s (%s)\n", *push, pushed)
	return nil
}
