package main

import (
	"strings"
	"testing"
)

// TestBadCommandLines: flag errors name flags with two dashes, as they are
// typed, and suggest the flag or verb a typo was probably meant to be.
func TestBadCommandLines(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		stderr string
	}{
		{[]string{"create-volume", "--sise", "1"}, "cowvol: create-volume: unknown flag --sise (did you mean --size?)\n"},
		{[]string{"describe-volumes", "--volume-id", "vol-1"}, "cowvol: describe-volumes: unknown flag --volume-id (did you mean --volume-ids?)\n"},
		{[]string{"create-volume", "--frobnicate", "1"}, "cowvol: create-volume: unknown flag --frobnicate\n"},
		{[]string{"create-volume", "--size"}, "cowvol: create-volume: flag --size needs a value\n"},
		{[]string{"describe-volumes", "--max-results", "abc"}, "cowvol: describe-volumes: invalid value \"abc\" for flag --max-results: parse error\n"},
		{[]string{"--sockit", "x", "describe-volumes"}, "cowvol: unknown flag --sockit (did you mean --socket?)\n"},
		{[]string{"wait", "snapshot-completed", "--snapshot-id", "snap-1"}, "cowvol: wait snapshot-completed: unknown flag --snapshot-id (did you mean --snapshot-ids?)\n"},
		{[]string{"create-volum", "--size", "1"}, "cowvol: unknown command \"create-volum\" (did you mean create-volume? see cowvol --help)\n"},
		{[]string{"frobnicate"}, "cowvol: unknown command \"frobnicate\" (see cowvol --help)\n"},
		{[]string{"describe-volumes", "--output", "yaml"}, "cowvol: --output: \"yaml\" is not a format cowvol prints: json or text\n"},
		{[]string{"describe-volumes", "--query", "Volumes["}, "cowvol: Bad value for --query Volumes[: at character 9: missing ']'\n"},
		{[]string{"describe-volumes", "--cli-read-timeout", "-1"}, "cowvol: --cli-read-timeout: -1 is negative\n"},
	} {
		out, errOut, code := run(t, tc.args...)
		if code != exitUsage || errOut != tc.stderr || out != "" {
			t.Errorf("cowvol %s: exit %d, stderr %q, stdout %q; want %d, %q", strings.Join(tc.args, " "), code, errOut, out, exitUsage, tc.stderr)
		}
	}
}

func TestNearest(t *testing.T) {
	flags := []string{"size", "size-bytes", "volume-id", "volume-ids", "socket", "snapshot-id", "dry-run"}
	for s, want := range map[string]string{
		"sise":      "size",
		"volume-id": "volume-ids", // itself excluded: the nearest other
		"sockt":     "socket",
		"dryrun":    "dry-run",
		"snap":      "snapshot-id", // a prefix
		"zzz":       "",
		"x":         "",
	} {
		if got := nearest(s, flags); got != want {
			t.Errorf("nearest(%q) = %q, want %q", s, got, want)
		}
	}
}
