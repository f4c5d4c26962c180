// Command testregistry serves a synthetic image (testimage.Synthetic) from an in-process OCI
// registry on 127.0.0.1 for benchmark scripts: it prints the image's tag reference on stdout
// once pushed, then serves until interrupted.
//
//	go run ./hack/testregistry -packages 1000 -bytes 104857600
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	ti "github.com/embargo-dev/embargo/internal/test/testimage"
)

func main() {
	packages := flag.Int("packages", 1000, "dpkg packages in the image (one of them kesl)")
	size := flag.Int64("bytes", 100<<20, "content bytes of the image's files")
	seed := flag.Int64("seed", 1, "seed of the image's content and layout")
	repo := flag.String("repo", "bench/synthetic:1", "repository and tag to push to")
	flag.Parse()
	if err := run(*packages, *size, *seed, *repo); err != nil {
		fmt.Fprintln(os.Stderr, "testregistry:", err)
		os.Exit(1)
	}
}

func run(packages int, size, seed int64, repo string) error {
	img, err := ti.Synthetic(packages, size, seed)
	if err != nil {
		return err
	}
	reg, err := ti.NewRegistry()
	if err != nil {
		return err
	}
	defer reg.Close()
	if _, err := reg.Push(repo, img); err != nil {
		return err
	}
	fmt.Println(reg.Ref(repo))
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	return nil
}
