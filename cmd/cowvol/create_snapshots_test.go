package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

// TestCreateSnapshotsVerb: create-snapshots snapshots the volumes named,
// prints them as aws does, and refuses bad flags and unknown instances.
func TestCreateSnapshotsVerb(t *testing.T) {
	sock := startDaemon(t)
	s := []string{"--socket", sock}
	a := strings.TrimSpace(runOK(t, append(s, "create-volume", "--size", "1GiB", "--tag", "Name=a", "--query", "VolumeId", "--output", "text")...))
	b := strings.TrimSpace(runOK(t, append(s, "create-volume", "--size", "1GiB", "--query", "VolumeId", "--output", "text")...))
	var out struct {
		Snapshots []struct {
			SnapshotId, VolumeId, State, Description string
			Tags                                     []struct{ Key, Value string }
		}
	}
	raw := runOK(t, append(s, "create-snapshots", "--volume-ids", a+","+b, "--description", "set", "--copy-tags-from-source", "volume", "--tag", "k=v")...)
	if err := json.Unmarshal([]byte(raw), &out); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
	if len(out.Snapshots) != 2 || out.Snapshots[0].VolumeId != a || out.Snapshots[1].VolumeId != b ||
		len(out.Snapshots[0].Tags) != 2 || len(out.Snapshots[1].Tags) != 1 || out.Snapshots[0].Description != "set" {
		t.Fatalf("create-snapshots printed %s", raw)
	}
	for _, tc := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"create-snapshots"}, exitUsage, `one of them`},
		{[]string{"create-snapshots", "--volume-ids", a, "--instance-specification", "InstanceId=i-0123456789abcdef0"}, exitUsage, `one of them`},
		{[]string{"create-snapshots", "--instance-specification", "Instance=i-1"}, exitUsage, `not InstanceId=ID`},
		{[]string{"create-snapshots", "--instance-specification", "InstanceId=i-00000000000000000,ExcludeBootVolume=true,ExcludeDataVolumeIds=[" + a + "]"},
			exitAPIError, `\(InvalidInstanceID.NotFound\) when calling the CreateSnapshots operation`},
		{[]string{"create-snapshots", "--volume-ids", a, "--copy-tags-from-source", "instance"}, exitUsage, `want volume`},
		{[]string{"create-snapshots", "--volume-ids", a + ",vol-00000000000000000"}, exitAPIError, `\(InvalidVolume.NotFound\)`},
		{[]string{"create-snapshots", "--volume-ids", a, "--dry-run"}, exitAPIError, `\(DryRunOperation\)`},
	} {
		_, errOut, code := run(t, append(s, tc.args...)...)
		if code != tc.code || !regexp.MustCompile(tc.stderr).MatchString(errOut) {
			t.Errorf("%v: exit %d, stderr %q; want %d, %s", tc.args, code, errOut, tc.code, tc.stderr)
		}
	}
}
