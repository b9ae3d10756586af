package main

import (
	"encoding/json"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// TestGlobalFlagsAfterTheVerb: --socket, the timeouts, --query and
// --output may follow the verb (and the subverb of wait); after it, they
// win over the same flag before it.
func TestGlobalFlagsAfterTheVerb(t *testing.T) {
	sock := startDaemon(t)
	id := strings.TrimSpace(runOK(t, "create-volume", "--size", "1GiB", "--socket", sock, "--query", "VolumeId", "--output", "text"))
	if !regexp.MustCompile(`^vol-[0-9a-f]{17}$`).MatchString(id) {
		t.Fatalf("create-volume --query VolumeId --output text printed %q, want the volume ID alone", id)
	}
	out := runOK(t, "--socket", "/nonexistent/cowvol.sock", "--output", "text", "describe-volumes", "--socket", sock,
		"--cli-read-timeout", "30", "--query", "Volumes[*].[VolumeId,State]")
	if out != id+"\tavailable\n" {
		t.Errorf("describe-volumes with global flags after the verb: %q", out)
	}
	if out := runOK(t, "describe-volumes", "--socket", sock, "--query", "Volumes[0].VolumeId"); out != `"`+id+`"`+"\n" {
		t.Errorf("--query without --output text: %q, want the JSON string", out)
	}
	snap := strings.TrimSpace(runOK(t, "create-snapshot", "--volume-id", id, "--socket", sock, "--query", "SnapshotId", "--output", "text"))
	if _, errOut, code := run(t, "wait", "snapshot-completed", "--snapshot-ids", snap, "--socket", sock); code != 0 {
		t.Errorf("wait snapshot-completed --socket after the subverb: exit %d, %q", code, errOut)
	}
	if _, errOut, code := run(t, "describe-volumes", "--socket", sock, "--cli-connect-timeout", "soon"); code != exitUsage ||
		!strings.Contains(errOut, "--cli-connect-timeout") {
		t.Errorf("a bad timeout after the verb: exit %d, %q", code, errOut)
	}
	if _, errOut, code := run(t, "describe-volumes", "--socket", "/nonexistent/cowvol.sock"); code != exitUnreachable ||
		!strings.Contains(errOut, "/nonexistent/cowvol.sock") {
		t.Errorf("--socket after the verb is not the one used: exit %d, %q", code, errOut)
	}
}

// TestZoneAndAttributeVerbs: the verbs of DescribeAvailabilityZones,
// DescribeRegions and the attribute calls print what aws prints, and
// their refusals come through as aws reports errors.
func TestZoneAndAttributeVerbs(t *testing.T) {
	sock := startDaemon(t)
	s := []string{"--socket", sock}
	var zones struct{ AvailabilityZones []map[string]any }
	if err := json.Unmarshal([]byte(runOK(t, append(s, "describe-availability-zones")...)), &zones); err != nil || len(zones.AvailabilityZones) != 1 {
		t.Fatalf("describe-availability-zones: %+v, %v", zones, err)
	}
	want := map[string]any{"State": "available", "OptInStatus": "opt-in-not-required", "Messages": []any{}, "RegionName": "us-east-1",
		"ZoneName": "us-east-1a", "ZoneId": "use1-az1", "GroupName": "us-east-1-zg-1", "NetworkBorderGroup": "us-east-1", "ZoneType": "availability-zone"}
	if got := zones.AvailabilityZones[0]; !reflect.DeepEqual(got, want) {
		t.Errorf("zone %v, want %v", got, want)
	}
	if out := runOK(t, append(s, "describe-regions", "--query", "Regions[*].[RegionName,OptInStatus]", "--output", "text")...); out != "us-east-1\topt-in-not-required\n" {
		t.Errorf("describe-regions: %q", out)
	}
	vol := strings.TrimSpace(runOK(t, append(s, "create-volume", "--size", "1GiB", "--query", "VolumeId", "--output", "text")...))
	snap := strings.TrimSpace(runOK(t, append(s, "create-snapshot", "--volume-id", vol, "--query", "SnapshotId", "--output", "text")...))
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"describe-volume-attribute", "--volume-id", vol, "--attribute", "autoEnableIO"},
			"{\n    \"AutoEnableIO\": {\n        \"Value\": true\n    },\n    \"VolumeId\": \"" + vol + "\"\n}\n"},
		{[]string{"describe-volume-attribute", "--volume-id", vol, "--attribute", "productCodes"},
			"{\n    \"ProductCodes\": [],\n    \"VolumeId\": \"" + vol + "\"\n}\n"},
		{[]string{"describe-snapshot-attribute", "--snapshot-id", snap, "--attribute", "createVolumePermission"},
			"{\n    \"CreateVolumePermissions\": [],\n    \"SnapshotId\": \"" + snap + "\"\n}\n"},
		{[]string{"describe-snapshot-attribute", "--snapshot-id", snap, "--attribute", "productCodes"},
			"{\n    \"ProductCodes\": [],\n    \"SnapshotId\": \"" + snap + "\"\n}\n"},
	} {
		if out := runOK(t, append(s, tc.args...)...); out != tc.want {
			t.Errorf("%v:\n%s\nwant\n%s", tc.args, out, tc.want)
		}
	}
	for _, tc := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"modify-snapshot-attribute", "--snapshot-id", "snap-00000000000000000", "--attribute", "createVolumePermission", "--operation-type", "add", "--user-ids", "111122223333"},
			exitAPIError, `^An error occurred \(InvalidSnapshot.NotFound\) when calling the ModifySnapshotAttribute operation`},
		{[]string{"modify-snapshot-attribute", "--snapshot-id", snap, "--operation-type", "grant", "--group-names", "all"},
			exitUsage, `--operation-type "grant": want add or remove`},
		{[]string{"modify-snapshot-attribute", "--snapshot-id", snap, "--operation-type", "add"},
			exitUsage, `--user-ids or --group-names all`},
		{[]string{"describe-volume-attribute", "--volume-id", vol},
			exitUsage, `--attribute is required`},
		{[]string{"describe-volume-attribute", "--volume-id", vol, "--attribute", "iops"},
			exitAPIError, `\(InvalidParameterValue\) when calling the DescribeVolumeAttribute operation: Value \(iops\) for parameter attribute is invalid`},
		{[]string{"describe-snapshot-attribute", "--snapshot-id", "snap-00000000000000000", "--attribute", "productCodes"},
			exitAPIError, `\(InvalidSnapshot.NotFound\)`},
		{[]string{"describe-availability-zones", "--zone-names", "local"},
			exitAPIError, `Invalid availability zone: \[local\]. Valid zones: us-east-1a.`},
		{[]string{"create-volume", "--size", "1GiB", "--availability-zone", "us-east-1b"},
			exitAPIError, `\(InvalidParameterValue\) when calling the CreateVolume operation: Invalid availability zone: \[us-east-1b\]. Valid zones: us-east-1a.`},
		{[]string{"describe-regions", "--region-names", "eu-west-1"},
			exitAPIError, `Invalid region: \[eu-west-1\]. This daemon serves region us-east-1 only.`},
		{[]string{"describe-regions", "--dry-run"},
			exitAPIError, `\(DryRunOperation\)`},
	} {
		_, errOut, code := run(t, append(s, tc.args...)...)
		if code != tc.code || !regexp.MustCompile(tc.stderr).MatchString(errOut) {
			t.Errorf("%v: exit %d, stderr %q; want %d, %s", tc.args, code, errOut, tc.code, tc.stderr)
		}
	}
}
