package control

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cowvol/cowvol/cow"
)

// waitCompleted polls the engine until snapshot id is completed.
func (e *testEnv) waitCompleted(t *testing.T, id string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		si, err := e.engine.SnapshotInfo(id)
		if err != nil {
			t.Fatal(err)
		}
		if si.State == cow.SnapshotCompleted {
			return
		}
	}
	t.Fatalf("snapshot %s not completed in 20s", id)
}

func TestSnapshotWireFormat(t *testing.T) {
	env := newTestEnv(t)
	vol := env.create(t, CreateVolumeInput{Size: 30})
	status, h, body := env.post(t, "Action=CreateSnapshot"+v+"&VolumeId="+vol.VolumeID+"&Description=Daily+Backup"+
		"&TagSpecification.1.ResourceType=snapshot&TagSpecification.1.Tag.1.Key=purpose&TagSpecification.1.Tag.1.Value=backup")
	if status != 200 {
		t.Fatalf("CreateSnapshot: %d %s", status, body)
	}
	// The element names and order of the CreateSnapshot reference.
	want := regexp.MustCompile(`^<\?xml version="1.0" encoding="UTF-8"\?>\n` +
		`<CreateSnapshotResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>` + h.Get("X-Amzn-RequestId") + `</requestId>` +
		`<snapshotId>snap-[0-9a-f]{17}</snapshotId><volumeId>` + vol.VolumeID + `</volumeId><status>(pending|completed)</status>` +
		`<startTime>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z</startTime><progress>\d{1,3}%</progress><ownerId>000000000000</ownerId>` +
		`<volumeSize>30</volumeSize><description>Daily Backup</description><encrypted>false</encrypted><storageTier>standard</storageTier>` +
		`<tagSet><item><key>purpose</key><value>backup</value></item></tagSet>(<completionTime>[^<]+</completionTime><fullSnapshotSizeInBytes>0</fullSnapshotSizeInBytes>)?</CreateSnapshotResponse>$`)
	if !want.MatchString(body) {
		t.Fatalf("CreateSnapshot answer:\n%s\ndoes not match\n%s", body, want)
	}
	if strings.Contains(body, "statusMessage") || strings.Contains(body, "outpostArn") {
		t.Errorf("CreateSnapshot answer has DescribeSnapshots-only or unset fields: %s", body)
	}
	id := regexp.MustCompile(`snap-[0-9a-f]{17}`).FindString(body)
	env.waitCompleted(t, id)

	status, _, body = env.post(t, "Action=DescribeSnapshots"+v+"&Owner.1=self")
	for _, w := range []string{
		`<snapshotSet><item><snapshotId>` + id + `</snapshotId>`,
		`<status>completed</status>`, `<progress>100%</progress>`,
		`<completionTime>`, `<fullSnapshotSizeInBytes>0</fullSnapshotSizeInBytes>`,
	} {
		if status != 200 || !strings.Contains(body, w) {
			t.Errorf("DescribeSnapshots lacks %s: %d %s", w, status, body)
		}
	}
	status, _, body = env.post(t, "Action=DeleteSnapshot"+v+"&SnapshotId="+id)
	if status != 200 || !strings.Contains(body, "<return>true</return>") {
		t.Errorf("DeleteSnapshot: %d %s", status, body)
	}
}

func TestSnapshotErrors(t *testing.T) {
	env := newTestEnv(t)
	vol := env.create(t, CreateVolumeInput{Size: 1})
	snap, err := env.client.CreateSnapshot(context.Background(), CreateSnapshotInput{VolumeID: vol.VolumeID})
	if err != nil {
		t.Fatal(err)
	}
	env.waitCompleted(t, snap.SnapshotID)
	tests := []struct {
		name, body string
		status     int
		code, msg  string
	}{
		{"no volume id", "Action=CreateSnapshot", 400, CodeMissingParameter, "VolumeId"},
		{"malformed volume id", "Action=CreateSnapshot&VolumeId=vol-../x", 400, CodeInvalidVolumeIDMalformed, ""},
		{"unknown volume", "Action=CreateSnapshot&VolumeId=vol-00000000000000000", 400, CodeInvalidVolumeNotFound, "vol-00000000000000000"},
		{"long description", "Action=CreateSnapshot&VolumeId=" + vol.VolumeID + "&Description=" + strings.Repeat("x", 256), 400, CodeInvalidParameterValue, "255"},
		{"volume tag spec", "Action=CreateSnapshot&VolumeId=" + vol.VolumeID + "&TagSpecification.1.ResourceType=volume&TagSpecification.1.Tag.1.Key=a", 400, CodeInvalidParameterValue, "taggable"},
		{"malformed outpost", "Action=CreateSnapshot&VolumeId=" + vol.VolumeID + "&OutpostArn=nope", 400, CodeInvalidParameterValue, "Outpost"},
		{"another outpost", "Action=CreateSnapshot&VolumeId=" + vol.VolumeID + "&OutpostArn=arn:aws:outposts:us-east-1:123456789012:outpost/op-0123456789abcdef0", 400, CodeInvalidParameterValue, "same Outpost"},
		{"dry run", "Action=CreateSnapshot&VolumeId=" + vol.VolumeID + "&DryRun=true", 412, CodeDryRunOperation, "DryRun flag is set"},
		{"dry run, unknown volume", "Action=CreateSnapshot&VolumeId=vol-00000000000000000&DryRun=true", 400, CodeInvalidVolumeNotFound, ""},
		{"describe unknown", "Action=DescribeSnapshots&SnapshotId.1=snap-00000000000000000", 400, CodeInvalidSnapshotNotFound, "snap-00000000000000000"},
		{"describe malformed", "Action=DescribeSnapshots&SnapshotId.1=snap-x", 400, CodeInvalidSnapshotIDMalformed, ""},
		{"describe bad filter", "Action=DescribeSnapshots&Filter.1.Name=color&Filter.1.Value.1=red", 400, CodeInvalidParameterValue, "color"},
		{"describe ids and max", "Action=DescribeSnapshots&SnapshotId.1=" + snap.SnapshotID + "&MaxResults=5", 400, CodeInvalidParameterCombination, ""},
		{"describe bad token", "Action=DescribeSnapshots&NextToken=zzz", 400, CodeInvalidPaginationToken, ""},
		{"delete unknown", "Action=DeleteSnapshot&SnapshotId=snap-00000000000000000", 400, CodeInvalidSnapshotNotFound, ""},
		{"delete dry run", "Action=DeleteSnapshot&SnapshotId=" + snap.SnapshotID + "&DryRun=true", 412, CodeDryRunOperation, ""},
		{"volume from unknown snapshot", "Action=CreateVolume&SnapshotId=snap-00000000000000000", 400, CodeInvalidSnapshotNotFound, ""},
		{"volume smaller than snapshot", "Action=CreateVolume&SnapshotId=" + snap.SnapshotID + "&SizeBytes=65536", 400, CodeInvalidParameterValue, "smaller"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, body := env.post(t, tt.body+v)
			if status != tt.status || !strings.Contains(body, "<Code>"+tt.code+"</Code>") || !strings.Contains(body, tt.msg) {
				t.Errorf("%s: %d %s\nwant %d %s containing %q", tt.body, status, body, tt.status, tt.code, tt.msg)
			}
		})
	}
	// Nothing above made or removed a snapshot.
	out, err := env.client.DescribeSnapshots(context.Background(), DescribeSnapshotsInput{})
	if err != nil || len(out.Snapshots) != 1 {
		t.Fatalf("after the refused requests: %d snapshots, %v", len(out.Snapshots), err)
	}
}

func TestSnapshotLimitAndRestore(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	vol := env.create(t, CreateVolumeInput{Size: 1})
	var ids []string
	for range cow.MaxPendingSnapshots + 3 {
		s, err := env.client.CreateSnapshot(ctx, CreateSnapshotInput{VolumeID: vol.VolumeID})
		var ae *APIError
		if errors.As(err, &ae) && ae.Code == CodeConcurrentSnapshotLimit {
			continue // the flusher is fast on an empty volume: the limit may not bite
		}
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, s.SnapshotID)
	}
	for _, id := range ids {
		env.waitCompleted(t, id)
	}
	// Pagination and filters.
	page, err := env.client.DescribeSnapshots(ctx, DescribeSnapshotsInput{MaxResults: 5})
	if err != nil || len(page.Snapshots) != 5 || page.NextToken == "" {
		t.Fatalf("first page: %d, %q, %v", len(page.Snapshots), page.NextToken, err)
	}
	rest, err := env.client.DescribeSnapshots(ctx, DescribeSnapshotsInput{MaxResults: 5, NextToken: page.NextToken})
	if err != nil || len(rest.Snapshots) != len(ids)-5 {
		t.Fatalf("second page: %d, %v", len(rest.Snapshots), err)
	}
	got, _ := env.client.DescribeSnapshots(ctx, DescribeSnapshotsInput{Filters: []Filter{{Name: "status", Values: []string{"pend*"}}}})
	if len(got.Snapshots) != 0 {
		t.Errorf("status=pend* matched %d completed snapshots", len(got.Snapshots))
	}
	got, _ = env.client.DescribeSnapshots(ctx, DescribeSnapshotsInput{OwnerIDs: []string{"amazon"}})
	if len(got.Snapshots) != 0 {
		t.Errorf("owner amazon matched %d snapshots", len(got.Snapshots))
	}
	// A volume from a snapshot takes its size.
	rv, err := env.client.CreateVolume(ctx, CreateVolumeInput{SnapshotID: ids[0]})
	if err != nil || rv.SnapshotID != ids[0] || rv.Size != 1 {
		t.Fatalf("CreateVolume from snapshot: %+v, %v", rv, err)
	}
	// The restored volume can be deleted like any other.
	if err := env.client.DeleteVolume(ctx, rv.VolumeID, false); err != nil {
		t.Fatalf("delete restored volume: %v", err)
	}
}
