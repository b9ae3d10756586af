package control

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestFastSnapshotRestoresWire: bad requests are refused with EC2's codes
// and change nothing; Enable answers per snapshot (successful, and
// unsuccessful for one that does not exist); Describe's filters select by
// state and refuse unknown ones; Disable answers disabling.
func TestFastSnapshotRestoresWire(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	vol := env.create(t, CreateVolumeInput{Size: 1}).VolumeID
	snap, err := env.client.CreateSnapshot(ctx, CreateSnapshotInput{VolumeID: vol})
	if err != nil {
		t.Fatal(err)
	}
	for si, _ := env.engine.SnapshotInfo(snap.SnapshotID); si.State != "completed"; si, _ = env.engine.SnapshotInfo(snap.SnapshotID) {
		time.Sleep(5 * time.Millisecond)
	}
	id := snap.SnapshotID
	for _, tc := range []struct {
		name, body, code, msg string
	}{
		{"no zone", "Action=EnableFastSnapshotRestores" + v + "&SourceSnapshotId.1=" + id, CodeMissingParameter, "AvailabilityZone"},
		{"no snapshot", "Action=EnableFastSnapshotRestores" + v + "&AvailabilityZone.1=us-east-1a", CodeMissingParameter, "SourceSnapshotId"},
		{"another zone", "Action=EnableFastSnapshotRestores" + v + "&AvailabilityZone.1=us-west-2a&SourceSnapshotId.1=" + id, CodeInvalidParameterValue, "us-west-2a"},
		{"malformed ID", "Action=EnableFastSnapshotRestores" + v + "&AvailabilityZone.1=us-east-1a&SourceSnapshotId.1=" + id + "&SourceSnapshotId.2=snap-x", "InvalidSnapshotID.Malformed", "snap-x"},
		{"disable, another zone", "Action=DisableFastSnapshotRestores" + v + "&AvailabilityZone.1=eu-west-1a&SourceSnapshotId.1=" + id, CodeInvalidParameterValue, "eu-west-1a"},
		{"describe, unknown filter", "Action=DescribeFastSnapshotRestores" + v + "&Filter.1.Name=volume-id&Filter.1.Value.1=x", CodeInvalidParameterValue, "volume-id"},
		{"describe, IDs", "Action=DescribeFastSnapshotRestores" + v + "&SourceSnapshotId.1=" + id, CodeUnknownParameter, "SourceSnapshotId"},
	} {
		status, _, body := env.post(t, tc.body)
		if status != 400 || !strings.Contains(body, "<Code>"+tc.code+"</Code>") || !strings.Contains(body, tc.msg) {
			t.Errorf("%s: HTTP %d %s, want 400 %s mentioning %q", tc.name, status, body, tc.code, tc.msg)
		}
	}
	if got, err := env.client.DescribeFastSnapshotRestores(ctx, DescribeFastSnapshotRestoresInput{}); err != nil || len(got.FastSnapshotRestores) != 0 {
		t.Fatalf("after refused calls: %+v, %v", got, err)
	}

	res, err := env.client.EnableFastSnapshotRestores(ctx, FastSnapshotRestoresInput{AvailabilityZones: []string{"use1-az1"}, SnapshotIDs: []string{id, "snap-0123456789abcdef0"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Successful) != 1 || res.Successful[0].SnapshotID != id || res.Successful[0].AvailabilityZone != "us-east-1a" || res.Successful[0].EnablingTime == nil {
		t.Fatalf("successful: %+v", res.Successful)
	}
	if len(res.Unsuccessful) != 1 || len(res.Unsuccessful[0].Errors) != 1 || res.Unsuccessful[0].Errors[0].Code != CodeInvalidSnapshotNotFound {
		t.Fatalf("unsuccessful: %+v", res.Unsuccessful)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, err := env.client.DescribeFastSnapshotRestores(ctx, DescribeFastSnapshotRestoresInput{Filters: []Filter{{Name: "state", Values: []string{"enabled"}}}})
		if err != nil {
			t.Fatal(err)
		}
		if len(got.FastSnapshotRestores) == 1 && got.FastSnapshotRestores[0].EnabledTime != nil && got.FastSnapshotRestores[0].OptimizingTime != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never enabled: %+v", got)
		}
		time.Sleep(5 * time.Millisecond)
	}
	res, err = env.client.DisableFastSnapshotRestores(ctx, FastSnapshotRestoresInput{AvailabilityZones: []string{"us-east-1a"}, SnapshotIDs: []string{id}})
	if err != nil || len(res.Successful) != 1 || res.Successful[0].State != "disabling" && res.Successful[0].State != "disabled" {
		t.Fatalf("disable: %+v, %v", res, err)
	}
}
