package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

// TestDescribeVolumeStatusVerb: describe-volume-status prints aws-style
// JSON (an ok volume here; integration/volume_status_test.go has an
// impaired one), pages, filters, and refuses bad input plainly.
func TestDescribeVolumeStatusVerb(t *testing.T) {
	sock := startDaemon(t)
	s := []string{"--socket", sock}
	var vol map[string]any
	json.Unmarshal([]byte(runOK(t, append(s, "create-volume", "--size", "1")...)), &vol)
	id := vol["VolumeId"].(string)

	out := runOK(t, append(s, "describe-volume-status", "--volume-ids", id)...)
	want := `{
    "VolumeStatuses": [
        {
            "Actions": [],
            "AvailabilityZone": "us-east-1a",
            "Events": [],
            "VolumeId": "` + id + `",
            "VolumeStatus": {
                "Details": [
                    {
                        "Name": "io-enabled",
                        "Status": "passed"
                    },
                    {
                        "Name": "io-performance",
                        "Status": "not-applicable"
                    }
                ],
                "Status": "ok"
            }
        }
    ]
}
`
	if out != want {
		t.Errorf("describe-volume-status:\n%s\nwant\n%s", out, want)
	}
	if out := runOK(t, append(s, "describe-volume-status", "--filters", "Name=volume-status.status,Values=impaired")...); out != "{\n    \"VolumeStatuses\": []\n}\n" {
		t.Errorf("filtered on impaired: %s", out)
	}
	if out := runOK(t, append(s, "describe-volume-status", "--filter", "volume-status.details-status=passed", "--max-results", "5")...); !strings.Contains(out, id) {
		t.Errorf("filtered on passed: %s", out)
	}

	for _, tc := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"--volume-ids", "vol-1"}, 254, `^An error occurred \(InvalidVolumeID.Malformed\) when calling the DescribeVolumeStatus operation: `},
		{[]string{"--filter", "tag:team=db"}, 254, `^An error occurred \(InvalidParameterValue\) when calling the DescribeVolumeStatus operation: The filter 'tag:team' is invalid\n$`},
		{[]string{"--max-results", "4"}, 254, `^An error occurred \(InvalidParameterValue\) when calling the DescribeVolumeStatus operation: .*between 5 and 1000`},
		{[]string{"--filters", "status=x"}, 252, `^cowvol: --filters: "status=x" is not Name=NAME,Values=V1,V2\n$`},
		{[]string{"--dry-run"}, 254, `^An error occurred \(DryRunOperation\) when calling the DescribeVolumeStatus operation`},
	} {
		_, errOut, code := run(t, append(append(s, "describe-volume-status"), tc.args...)...)
		if code != tc.code || !regexp.MustCompile(tc.stderr).MatchString(errOut) {
			t.Errorf("describe-volume-status %v: exit %d, stderr %q; want %d, %s", tc.args, code, errOut, tc.code, tc.stderr)
		}
	}
}
