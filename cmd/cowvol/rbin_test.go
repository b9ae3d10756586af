package main

import (
	"strings"
	"testing"

	"github.com/cowvol/cowvol/control"
)

func TestParseRuleStructs(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    control.ResourceTag
		wantErr bool
	}{
		{"ResourceTagKey=backup,ResourceTagValue=yes", control.ResourceTag{ResourceTagKey: "backup", ResourceTagValue: "yes"}, false},
		{"ResourceTagKey=backup", control.ResourceTag{ResourceTagKey: "backup"}, false},
		{"ResourceTagValue=a,b,ResourceTagKey=k", control.ResourceTag{ResourceTagKey: "k", ResourceTagValue: "a,b"}, false},
		{`{"ResourceTagKey":"k","ResourceTagValue":"v"}`, control.ResourceTag{ResourceTagKey: "k", ResourceTagValue: "v"}, false},
		{"Key=k,Value=v", control.ResourceTag{}, true},
		{"backup=yes", control.ResourceTag{}, true},
		{`{"ResourceTagKey":`, control.ResourceTag{}, true},
	} {
		var got control.ResourceTag
		err := parseStruct("--resource-tags", tc.in, &got)
		if (err != nil) != tc.wantErr || (!tc.wantErr && got != tc.want) {
			t.Errorf("parseStruct(%q) = %+v, %v; want %+v (error %v)", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
	items := splitStructs([]string{`[{"ResourceTagKey":"a"},{"ResourceTagKey":"b"}]`, "ResourceTagKey=c"})
	if len(items) != 3 || !strings.Contains(items[1], `"b"`) {
		t.Errorf("splitStructs = %q", items)
	}
}

// TestRbinVerbsRefuseBadInput: a bad command line is a usage error (exit
// 252) before any request is sent.
func TestRbinVerbsRefuseBadInput(t *testing.T) {
	for _, args := range [][]string{
		{"rbin", "create-rule", "--resource-type", "EBS_SNAPSHOT"},
		{"rbin", "create-rule", "--resource-type", "EBS_SNAPSHOT", "--retention-period", "RetentionPeriodValue=seven,RetentionPeriodUnit=DAYS"},
		{"rbin", "create-rule", "--resource-type", "EBS_SNAPSHOT", "--retention-period", "Days=7"},
		{"rbin", "create-rule", "--resource-type", "EBS_SNAPSHOT", "--retention-period", "RetentionPeriodValue=7,RetentionPeriodUnit=DAYS", "--resource-tags", "ResourceTagValue=x"},
		{"rbin", "get-rule"},
		{"rbin", "delete-rule"},
		{"rbin", "update-rule", "--description", "x"},
		{"rbin", "list-rules"},
		{"restore-snapshot-from-recycle-bin"},
		{"rbin", "tag-resource", "--tags", "Key=a,Value=b"},
		{"rbin", "tag-resource", "--resource-arn", "arn:aws:rbin:us-east-1:123456789012:rule/abcdefghijk"},
		{"rbin", "untag-resource", "--resource-arn", "arn:aws:rbin:us-east-1:123456789012:rule/abcdefghijk"},
		{"rbin", "list-tags-for-resource"},
		{"dlm", "tag-resource", "--resource-arn", "arn:aws:dlm:us-east-1:123456789012:policy/policy-1", "--tags", "novalue"},
		{"dlm", "untag-resource", "--resource-arn", "arn:aws:dlm:us-east-1:123456789012:policy/policy-1"},
		{"dlm", "list-tags-for-resource"},
	} {
		_, errOut, code := run(t, append(args, "--socket", "/nonexistent/cowvol.sock")...)
		if code != 252 || errOut == "" {
			t.Errorf("%v: exit %d, stderr %q; want a usage error", args, code, errOut)
		}
	}
}
