package match_test

import (
	"fmt"
	"testing"

	"github.com/embargo-dev/embargo/internal/catalog"
	"github.com/embargo-dev/embargo/internal/match"
)

// benchInventory is a Debian-like image: n dpkg packages whose maintainers repeat, as in a real
// status file (~700 packages, a few hundred maintainers), each with a generated CPE.
func benchInventory(n int) match.Inventory {
	inv := match.Inventory{Platform: "linux/amd64"}
	for i := range n {
		name := fmt.Sprintf("lib%03dpkg", i)
		m := fmt.Sprintf("Debian Team %d <team%d@lists.debian.org>", i%120, i%120)
		if i%7 == 0 {
			m = "Debian QA Group <packages@qa.debian.org>"
		}
		inv.Packages = append(inv.Packages, match.Package{
			Name: name, Version: "1.2.3-4", Type: "deb", PURL: "pkg:deb/debian/" + name + "@1.2.3-4?arch=amd64&distro=debian-12",
			Fields: []match.Field{{Name: "dpkg Maintainer", Value: m}},
			CPEs:   []match.CPE{{Vendor: name, Product: name}},
		})
	}
	return inv
}

// BenchmarkMatchAll: one Debian-like image against every built-in catalog entry, as the
// ImageScans controller matches each record (go test ./internal/match/ -run '^$' -bench MatchAll).
func BenchmarkMatchAll(b *testing.B) {
	var vendors []*match.Vendor
	for _, e := range catalog.Default().Entries {
		v, err := e.Compile()
		if err != nil {
			b.Fatal(err)
		}
		vendors = append(vendors, v)
	}
	invs := []match.Inventory{benchInventory(700)}
	b.ReportAllocs()
	for b.Loop() {
		if fs := match.MatchAll(invs, vendors); len(fs) != 0 {
			b.Fatalf("%d findings in a clean image", len(fs))
		}
	}
}
