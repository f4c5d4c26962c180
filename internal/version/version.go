// Package version holds the build's version, set by the linker.
package version

// Version is stamped by `-ldflags -X`; "dev" for `go run` and tests.
var Version = "dev"
