package main

import (
	"runtime/debug"
	"testing"
)

func TestFormatVersion(t *testing.T) {
	stamped := []debug.BuildSetting{{Key: "vcs.revision", Value: "abc"}, {Key: "vcs.modified", Value: "false"}}
	tests := []struct {
		name          string
		settings      []debug.BuildSetting
		rev, modified string
		want          string
	}{
		{"toolchain stamp", stamped, "", "", "v1.2.3 revision abc"},
		{"toolchain stamp wins over ldflags", stamped, "def", "true", "v1.2.3 revision abc"},
		{"ldflags only", nil, "def", "true", "v1.2.3 revision def modified"},
		{"no stamp", nil, "", "", "v1.2.3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bi := &debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}, Settings: tt.settings}
			if got := formatVersion(bi, tt.rev, tt.modified); got != tt.want {
				t.Errorf("formatVersion = %q, want %q", got, tt.want)
			}
		})
	}
}
