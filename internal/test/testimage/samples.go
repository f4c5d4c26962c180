package testimage

import (
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Maintainers used by the samples.
const (
	KasperskyMaintainer = "AO Kaspersky Lab <support@kaspersky.com>"
	DebianMaintainer    = "Debian Developers <debian-devel@lists.debian.org>"
	CheckmarxMaintainer = "Checkmarx <kics@checkmarx.com>"
)

// debianBase is the bottom layer of the Debian-like samples.
func debianBase(extra ...Deb) []File {
	pkgs := append([]Deb{
		{Name: "base-files", Version: "12.4+deb12u5", Maintainer: "Santiago Vila <sanvila@debian.org>"},
		{Name: "bash", Version: "5.2.15-2+b2", Maintainer: "Matthias Klose <doko@debian.org>"},
		{Name: "curl", Version: "7.88.1-10+deb12u5", Maintainer: DebianMaintainer},
	}, extra...)
	return []File{
		OSRelease("debian", "12"),
		DpkgStatus(pkgs...),
		{Path: "/bin/bash", Content: []byte("#!/bin/sh\n"), Mode: 0o755},
		{Path: "/etc/hostname", Content: []byte("sample\n")},
	}
}

// Clean is a Debian-like image with no banned software.
func Clean() (v1.Image, error) {
	return FromFiles(debianBase())
}

// KasperskyEndpoint is a Debian-like image with Kaspersky Endpoint Security for Linux installed
// from its .deb in a second layer.
func KasperskyEndpoint() (v1.Image, error) {
	return FromFiles(
		debianBase(),
		append(debianBase(Deb{Name: "kesl", Version: "12.1.0-1187", Maintainer: KasperskyMaintainer,
			Description: "Kaspersky Endpoint Security for Linux"})[1:2],
			DpkgFiles("kesl", "/opt/kaspersky/kesl/bin/kesl-control"),
			File{Path: "/opt/kaspersky/kesl/bin/kesl-control", Content: []byte("\x7fELF-not-really"), Mode: 0o755},
			File{Path: "/etc/opt/kaspersky/kesl.ini", Content: []byte("[General]\n")},
		),
	)
}

// KasperskyScanEngine is an image with Kaspersky Scan Engine unpacked from its tarball: files
// under /opt/kaspersky with no package record at all.
func KasperskyScanEngine() (v1.Image, error) {
	return FromFiles(
		debianBase(),
		[]File{
			{Path: "/opt/kaspersky/ScanEngine/bin/kavehost", Content: []byte("\x7fELF-not-really"), Mode: 0o755},
			{Path: "/opt/kaspersky/ScanEngine/bin/kavscanner", Content: []byte("\x7fELF-not-really"), Mode: 0o755},
			{Path: "/opt/kaspersky/ScanEngine/etc/kavehost.xml", Content: []byte("<Configuration/>")},
		},
	)
}

// CheckmarxKICS is a look-alike: Checkmarx's "kics" infrastructure-as-code scanner, packaged by
// Checkmarx. Not Kaspersky's KICS.
func CheckmarxKICS() (v1.Image, error) {
	return FromFiles(
		debianBase(Deb{Name: "kics", Version: "2.1.3", Maintainer: CheckmarxMaintainer,
			Description: "Find security vulnerabilities in infrastructure as code; not affiliated with Kaspersky"}),
		[]File{{Path: "/usr/bin/kics", Content: []byte("#!/bin/sh\n"), Mode: 0o755}},
	)
}

// KasperskyRemoved installed kesl in one layer and purged it in the next: the final filesystem
// has no Kaspersky software.
func KasperskyRemoved() (v1.Image, error) {
	return FromFiles(
		debianBase(Deb{Name: "kesl", Version: "12.1.0-1187", Maintainer: KasperskyMaintainer}),
		[]File{{Path: "/opt/kaspersky/kesl/bin/kesl-control", Content: []byte("x"), Mode: 0o755}},
		append(debianBase()[1:2], Whiteout("/opt/kaspersky")),
	)
}
