package main

import (
	"runtime/debug"
	"strings"
)

// The VCS stamp `make build` passes with -ldflags -X when the Go toolchain
// does not stamp one itself: go build stamps vcs.revision only when the
// module's root holds a .git directory, not in a git worktree (whose .git
// is a file), nor under GOFLAGS=-buildvcs=false.
var (
	buildRevision string // git rev-parse HEAD
	buildModified string // "true" when the work tree had changes
)

// version is the module version and the VCS revision the binary was built
// from (`cowvol --version`), from the build information, else from the
// stamp make passed.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	return formatVersion(bi, buildRevision, buildModified)
}

// formatVersion is "<module version> revision <rev>[ modified]": the
// revision from bi's settings, else rev and modified.
func formatVersion(bi *debug.BuildInfo, rev, modified string) string {
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	v := []string{bi.Main.Version}
	if rev != "" {
		v = append(v, "revision "+rev)
	}
	if modified == "true" {
		v = append(v, "modified")
	}
	return strings.Join(v, " ")
}
