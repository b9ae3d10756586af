package main

import (
	"regexp"
	"strings"
	"testing"
)

// TestTagVerbs: create-tags, describe-tags, delete-tags and
// modify-snapshot-attribute take aws's flags and print what aws prints;
// refusals come through as aws reports them.
func TestTagVerbs(t *testing.T) {
	sock := startDaemon(t)
	s := []string{"--socket", sock}
	vol := strings.TrimSpace(runOK(t, append(s, "create-volume", "--size", "1GiB", "--query", "VolumeId", "--output", "text")...))
	snap := strings.TrimSpace(runOK(t, append(s, "create-snapshot", "--volume-id", vol, "--query", "SnapshotId", "--output", "text")...))
	if out := runOK(t, append(s, "create-tags", "--resources", vol, snap, "--tags", "Key=Name,Value=db", "Key=empty,Value=")...); out != "" {
		t.Errorf("create-tags printed %q", out)
	}
	runOK(t, append(s, "create-tags", "--resources", vol, "--tag", "env=prod")...)
	want := "{\n    \"Tags\": [\n" +
		"        {\n            \"Key\": \"Name\",\n            \"ResourceId\": \"" + snap + "\",\n            \"ResourceType\": \"snapshot\",\n            \"Value\": \"db\"\n        },\n" +
		"        {\n            \"Key\": \"empty\",\n            \"ResourceId\": \"" + snap + "\",\n            \"ResourceType\": \"snapshot\",\n            \"Value\": \"\"\n        }\n    ]\n}\n"
	if out := runOK(t, append(s, "describe-tags", "--filters", "Name=resource-type,Values=snapshot")...); out != want {
		t.Errorf("describe-tags:\n%s\nwant\n%s", out, want)
	}
	if out := runOK(t, append(s, "describe-tags", "--filter", "resource-id="+vol, "--query", "Tags[*].[Key,Value]", "--output", "text")...); out != "Name\tdb\nempty\t\nenv\tprod\n" {
		t.Errorf("describe-tags of the volume: %q", out)
	}
	runOK(t, append(s, "delete-tags", "--resources", vol, "--tags", "Key=Name,Value=other", "Key=env")...)
	runOK(t, append(s, "delete-tags", "--resources", snap)...)
	if out := runOK(t, append(s, "describe-tags", "--query", "Tags[*].[ResourceId,Key]", "--output", "text")...); out != vol+"\tName\n"+vol+"\tempty\n" {
		t.Errorf("after delete-tags: %q", out)
	}
	runOK(t, append(s, "modify-snapshot-attribute", "--snapshot-id", snap, "--attribute", "createVolumePermission", "--operation-type", "add", "--user-ids", "111122223333", "--group-names", "all")...)
	if out := runOK(t, append(s, "describe-snapshot-attribute", "--snapshot-id", snap, "--attribute", "createVolumePermission", "--query", "CreateVolumePermissions[*].[Group,UserId]", "--output", "text")...); out != "all\tNone\nNone\t111122223333\n" {
		t.Errorf("describe-snapshot-attribute after sharing: %q", out)
	}
	if out := runOK(t, append(s, "describe-snapshots", "--restorable-by-user-ids", "999999999999", "--query", "Snapshots[*].SnapshotId", "--output", "text")...); out != snap+"\n" {
		t.Errorf("describe-snapshots --restorable-by-user-ids of another account, snapshot shared with all: %q", out)
	}
	for _, tc := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"create-tags", "--resources", vol, "--tags", "Key=aws:x,Value=1"}, exitAPIError, `\(InvalidParameterValue\) when calling the CreateTags operation: .*aws:`},
		{[]string{"create-tags", "--resources", "vol-00000000000000000", "--tag", "a=b"}, exitAPIError, `\(InvalidVolume.NotFound\)`},
		{[]string{"create-tags", "--resources", "ami-1", "--tag", "a=b"}, exitAPIError, `\(InvalidID\)`},
		{[]string{"create-tags", "--resources", vol}, exitUsage, `--tags is required`},
		{[]string{"create-tags", "--tag", "a=b"}, exitUsage, `--resources is required`},
		{[]string{"create-tags", "--resources", vol, "--tags", "Name=x"}, exitUsage, `not Key=KEY,Value=VALUE`},
		{[]string{"create-tags", "--resources", vol, "--tag", "a=b", "--dry-run"}, exitAPIError, `\(DryRunOperation\)`},
		{[]string{"delete-tags", "--resources", vol, "--tags", "Key=aws:x"}, exitAPIError, `\(InvalidParameterValue\)`},
		{[]string{"describe-tags", "--filter", "owner=x"}, exitAPIError, `The filter 'owner' is invalid`},
	} {
		_, errOut, code := run(t, append(s, tc.args...)...)
		if code != tc.code || !regexp.MustCompile(tc.stderr).MatchString(errOut) {
			t.Errorf("%v: exit %d, stderr %q; want %d, %s", tc.args, code, errOut, tc.code, tc.stderr)
		}
	}
}
