package main

import (
	"runtime/debug"
	"strings"
)

// version is the module version and the VCS revision the binary was built
// from (`cowvol --version`), from the build information.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := []string{bi.Main.Version}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v = append(v, "revision "+s.Value)
		case "vcs.modified":
			if s.Value == "true" {
				v = append(v, "modified")
			}
		}
	}
	return strings.Join(v, " ")
}
