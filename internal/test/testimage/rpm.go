package testimage

import (
	"bytes"
	"compress/gzip"
	_ "embed"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

//go:embed testdata/rpmdb.sqlite.gz
var rpmdbGz []byte

// RPMDB is /var/lib/rpm/rpmdb.sqlite holding kesl (Vendor "AO Kaspersky Lab"), bash (Red Hat)
// and kaspersky-compare (Jane Doe); see testdata/README.md for how it was made.
func RPMDB() (File, error) {
	zr, err := gzip.NewReader(bytes.NewReader(rpmdbGz))
	if err != nil {
		return File{}, err
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		return File{}, err
	}
	return File{Path: "/var/lib/rpm/rpmdb.sqlite", Content: data}, nil
}

// RedHatWithKESL is a RHEL-like image whose rpm database lists kesl from AO Kaspersky Lab.
func RedHatWithKESL() (v1.Image, error) {
	db, err := RPMDB()
	if err != nil {
		return nil, err
	}
	return FromFiles([]File{OSRelease("rhel", "9.4"), db})
}
