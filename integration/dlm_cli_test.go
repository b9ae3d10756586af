package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// policyDetailsJSON is a policy every 12 hours from 03:00 keeping 7.
const policyDetailsJSON = `{
  "PolicyType": "EBS_SNAPSHOT_MANAGEMENT",
  "ResourceTypes": ["VOLUME"],
  "TargetTags": [{"Key": "backup", "Value": "nightly"}],
  "Schedules": [{
    "Name": "twice daily",
    "CopyTags": true,
    "TagsToAdd": [{"Key": "made-by", "Value": "dlm"}],
    "CreateRule": {"Interval": 12, "IntervalUnit": "HOURS", "Times": ["03:00"]},
    "RetainRule": {"Count": 7}
  }]
}`

type dlmPolicyOut struct {
	Policy struct {
		PolicyId, Description, State, PolicyArn string
		PolicyDetails                           struct {
			Schedules []struct {
				Name       string
				RetainRule struct{ Count int }
			}
		}
	}
}

type dlmPoliciesOut struct {
	Policies []struct{ PolicyId, State, PolicyType string }
}

// TestLifecyclePolicyVerbs: `cowvol dlm` on the socket and `aws dlm` on
// --listen (SigV4) manage the same policies; bad input is refused with
// DLM's exception and a plain message, and changes nothing.
func TestLifecyclePolicyVerbs(t *testing.T) {
	requirePrereqs(t)
	addr := freeLoopbackAddr(t)
	creds := writeCredentialsFile(t, sdkKeys...)
	d := startDaemon(t, withDaemonArgs("--listen", addr, "--credentials-file", creds, "--account-id", sdkAccountID))
	a := newAWSCLI(t, addr, sdkKeys[0].id, sdkKeys[0].secret)
	details := filepath.Join(t.TempDir(), "details.json")
	if err := os.WriteFile(details, []byte(policyDetailsJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	role := "arn:aws:iam::" + sdkAccountID + ":role/AWSDataLifecycleManagerDefaultRole"

	var viaCowvol, viaAWS string
	step(t, "cowvol dlm create-lifecycle-policy with file://", func(t *testing.T) {
		var out struct{ PolicyId string }
		d.mustJSON(t, d.mustCLI(t, "dlm", "create-lifecycle-policy", "--execution-role-arn", role, "--description", "twice daily",
			"--state", "ENABLED", "--policy-details", "file://"+details, "--tags", "owner=ops"), &out)
		if !strings.HasPrefix(out.PolicyId, "policy-") {
			t.Fatalf("PolicyId %q", out.PolicyId)
		}
		viaCowvol = out.PolicyId
	})
	step(t, "aws dlm create-lifecycle-policy over TCP", func(t *testing.T) {
		var out struct{ PolicyId string }
		a.mustJSON(t, &out, "dlm", "create-lifecycle-policy", "--execution-role-arn", role, "--description", "from aws",
			"--state", "DISABLED", "--policy-details", "file://"+details)
		viaAWS = out.PolicyId
	})
	step(t, "each sees the other's", func(t *testing.T) {
		var got dlmPolicyOut
		d.mustJSON(t, d.mustCLI(t, "dlm", "get-lifecycle-policy", "--policy-id", viaAWS), &got)
		if got.Policy.State != "DISABLED" || got.Policy.Description != "from aws" ||
			got.Policy.PolicyDetails.Schedules[0].RetainRule.Count != 7 || !strings.HasSuffix(got.Policy.PolicyArn, ":policy/"+viaAWS) {
			t.Fatalf("cowvol dlm get-lifecycle-policy: %+v", got)
		}
		var list dlmPoliciesOut
		a.mustJSON(t, &list, "dlm", "get-lifecycle-policies", "--state", "ENABLED")
		if len(list.Policies) != 1 || list.Policies[0].PolicyId != viaCowvol || list.Policies[0].PolicyType != "EBS_SNAPSHOT_MANAGEMENT" {
			t.Fatalf("aws dlm get-lifecycle-policies --state ENABLED: %+v", list)
		}
	})
	step(t, "update and delete", func(t *testing.T) {
		if out := d.mustCLI(t, "dlm", "update-lifecycle-policy", "--policy-id", viaAWS, "--state", "ENABLED"); out != "" {
			t.Fatalf("update printed %q", out)
		}
		var got dlmPolicyOut
		a.mustJSON(t, &got, "dlm", "get-lifecycle-policy", "--policy-id", viaAWS)
		if got.Policy.State != "ENABLED" {
			t.Fatalf("after update: %+v", got)
		}
		a.mustJSON(t, nil, "dlm", "delete-lifecycle-policy", "--policy-id", viaAWS)
		_, stderr, code := d.cli(t, "dlm", "get-lifecycle-policy", "--policy-id", viaAWS)
		if code == 0 || !strings.Contains(stderr, "An error occurred (ResourceNotFoundException) when calling the GetLifecyclePolicy operation") {
			t.Fatalf("get of the deleted policy: exit %d, %s", code, stderr)
		}
	})
	step(t, "tags: aws dlm tag-resource, cowvol dlm list-tags-for-resource and untag-resource", func(t *testing.T) {
		var got dlmPolicyOut
		d.mustJSON(t, d.mustCLI(t, "dlm", "get-lifecycle-policy", "--policy-id", viaCowvol), &got)
		arn := got.Policy.PolicyArn
		a.mustJSON(t, nil, "dlm", "tag-resource", "--resource-arn", arn, "--tags", "team=storage,tier=gold")
		var tags struct{ Tags map[string]string }
		d.mustJSON(t, d.mustCLI(t, "dlm", "list-tags-for-resource", "--resource-arn", arn), &tags)
		if len(tags.Tags) != 3 || tags.Tags["owner"] != "ops" || tags.Tags["team"] != "storage" || tags.Tags["tier"] != "gold" {
			t.Fatalf("cowvol dlm list-tags-for-resource after aws dlm tag-resource: %v", tags.Tags)
		}
		if out := d.mustCLI(t, "dlm", "untag-resource", "--resource-arn", arn, "--tag-keys", "owner", "--tag-keys", "tier"); out != "" {
			t.Fatalf("untag printed %q", out)
		}
		tags.Tags = nil
		a.mustJSON(t, &tags, "dlm", "list-tags-for-resource", "--resource-arn", arn)
		if len(tags.Tags) != 1 || tags.Tags["team"] != "storage" {
			t.Fatalf("aws dlm list-tags-for-resource after the untag: %v", tags.Tags)
		}
		a.mustFail(t, "InvalidRequestException", "dlm", "tag-resource", "--resource-arn", arn, "--tags", "aws:reserved=x")
	})
	step(t, "bad input is refused and changes nothing", func(t *testing.T) {
		bad := strings.Replace(policyDetailsJSON, `"Interval": 12`, `"Interval": 5`, 1)
		_, stderr, code := d.cli(t, "dlm", "create-lifecycle-policy", "--execution-role-arn", role, "--description", "bad",
			"--state", "ENABLED", "--policy-details", bad)
		if code == 0 || !strings.Contains(stderr, "(InvalidRequestException)") || !strings.Contains(stderr, "Interval 5") {
			t.Fatalf("interval 5: exit %d, %s", code, stderr)
		}
		archive := strings.Replace(policyDetailsJSON, `"RetainRule": {"Count": 7}`,
			`"RetainRule": {"Count": 7}, "FastRestoreRule": {"Count": 1, "AvailabilityZones": ["us-east-1a"]}`, 1)
		a.mustFail(t, "InvalidRequestException", "dlm", "create-lifecycle-policy", "--execution-role-arn", role,
			"--description", "bad", "--state", "ENABLED", "--policy-details", archive)
		_, stderr, code = d.cli(t, "dlm", "create-lifecycle-policy", "--state", "ENABLED", "--policy-details", "{not json")
		if code == 0 || !strings.Contains(stderr, "--policy-details") {
			t.Fatalf("invalid JSON: exit %d, %s", code, stderr)
		}
		var list dlmPoliciesOut
		d.mustJSON(t, d.mustCLI(t, "dlm", "get-lifecycle-policies"), &list)
		if len(list.Policies) != 1 || list.Policies[0].PolicyId != viaCowvol {
			t.Fatalf("policies after the refusals: %+v", list)
		}
	})
}
