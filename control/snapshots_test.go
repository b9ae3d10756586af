package control

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cowvol/cowvol/cow"
	"github.com/cowvol/cowvol/cow/snapstore"
)

// waitCompleted polls the engine until snapshot id is completed.
func (e *testEnv) waitCompleted(t *testing.T, id string) {
	t.Helper()
	e.waitState(t, id, cow.SnapshotCompleted)
}

// waitState polls the engine until snapshot id is in state want.
func (e *testEnv) waitState(t *testing.T, id string, want cow.SnapshotState) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		si, err := e.engine.SnapshotInfo(id)
		if err != nil {
			t.Fatal(err)
		}
		if si.State == want {
			return
		}
	}
	t.Fatalf("snapshot %s not %s in 20s", id, want)
}

// snapshot creates a snapshot through the client.
func (e *testEnv) snapshot(t *testing.T, in CreateSnapshotInput) Snapshot {
	t.Helper()
	s, err := e.client.CreateSnapshot(context.Background(), in)
	if err != nil {
		t.Fatalf("CreateSnapshot %+v: %v", in, err)
	}
	return s
}

// write writes n bytes of a non-zero pattern at off of volume id.
func (e *testEnv) write(t *testing.T, id string, off int64, n int) {
	t.Helper()
	h, err := e.engine.OpenVolume(id)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	buf := make([]byte, n)
	for i := range buf {
		buf[i] = byte(i%251 + 1)
	}
	if _, err := h.WriteAt(buf, off); err != nil {
		t.Fatal(err)
	}
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
}

// failingStore is a snapshot store whose Puts fail while fail is set: the
// flusher retries, so the snapshots stay pending (or end in error past
// the engine's FlushDeadline).
type failingStore struct {
	*snapstore.Dir
	fail atomic.Bool
}

func newFailingStore(t *testing.T) *failingStore {
	t.Helper()
	d, err := snapstore.OpenDir(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	fs := &failingStore{Dir: d}
	fs.fail.Store(true)
	return fs
}

func (s *failingStore) Put(ctx context.Context, key string, data []byte) error {
	if s.fail.Load() {
		return errors.New("injected: store unavailable")
	}
	return s.Dir.Put(ctx, key, data)
}

// checkAPIError checks that err is the EC2 error code with status and a
// message containing msg.
func checkAPIError(t *testing.T, what string, err error, status int, code, msg string) {
	t.Helper()
	var ae *APIError
	if !errors.As(err, &ae) || ae.Code != code || ae.StatusCode != status || !strings.Contains(ae.Message, msg) {
		t.Errorf("%s: %v; want %d %s containing %q", what, err, status, code, msg)
	}
}

var (
	snapIDRE    = regexp.MustCompile(`snap-[0-9a-f]{17}`)
	timestampRE = `\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z`
)

func TestSnapshotWireFormat(t *testing.T) {
	env := newTestEnv(t)
	vol := env.create(t, CreateVolumeInput{Size: 30, BlockSize: 4096})
	env.write(t, vol.VolumeID, 0, 3*4096)
	status, h, body := env.post(t, "Action=CreateSnapshot"+v+"&VolumeId="+vol.VolumeID+"&Description=Daily+Backup"+
		"&TagSpecification.1.ResourceType=snapshot&TagSpecification.1.Tag.1.Key=purpose&TagSpecification.1.Tag.1.Value=backup")
	if status != 200 || h.Get("Content-Type") != "text/xml;charset=UTF-8" {
		t.Fatalf("CreateSnapshot: %d %s", status, body)
	}
	// The element names and order of the CreateSnapshot reference.
	want := regexp.MustCompile(`^<\?xml version="1.0" encoding="UTF-8"\?>\n` +
		`<CreateSnapshotResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>` + h.Get("X-Amzn-RequestId") + `</requestId>` +
		`<snapshotId>snap-[0-9a-f]{17}</snapshotId><volumeId>` + vol.VolumeID + `</volumeId><status>(pending|completed)</status>` +
		`<startTime>` + timestampRE + `</startTime><progress>\d{1,3}%</progress><ownerId>000000000000</ownerId>` +
		`<volumeSize>30</volumeSize><description>Daily Backup</description><encrypted>false</encrypted><storageTier>standard</storageTier>` +
		`<tagSet><item><key>purpose</key><value>backup</value></item></tagSet>(<completionTime>` + timestampRE + `</completionTime>)?</CreateSnapshotResponse>$`)
	if !want.MatchString(body) {
		t.Fatalf("CreateSnapshot answer:\n%s\ndoes not match\n%s", body, want)
	}
	for _, absent := range []string{"statusMessage", "outpostArn", "fullSnapshotSizeInBytes", "kmsKeyId", "dataEncryptionKeyId", "sseType"} {
		if strings.Contains(body, absent) {
			t.Errorf("CreateSnapshot answer has %s: %s", absent, body)
		}
	}
	id := snapIDRE.FindString(body)
	env.waitCompleted(t, id)

	status, h, body = env.post(t, "Action=DescribeSnapshots"+v+"&Owner.1=self")
	want = regexp.MustCompile(`^<\?xml version="1.0" encoding="UTF-8"\?>\n` +
		`<DescribeSnapshotsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>` + h.Get("X-Amzn-RequestId") + `</requestId>` +
		`<snapshotSet><item><snapshotId>` + id + `</snapshotId><volumeId>` + vol.VolumeID + `</volumeId><status>completed</status>` +
		`<startTime>` + timestampRE + `</startTime><progress>100%</progress><ownerId>000000000000</ownerId>` +
		`<volumeSize>30</volumeSize><description>Daily Backup</description><encrypted>false</encrypted><storageTier>standard</storageTier>` +
		`<tagSet><item><key>purpose</key><value>backup</value></item></tagSet>` +
		`<completionTime>` + timestampRE + `</completionTime><fullSnapshotSizeInBytes>12288</fullSnapshotSizeInBytes>` +
		`</item></snapshotSet></DescribeSnapshotsResponse>$`)
	if status != 200 || !want.MatchString(body) {
		t.Fatalf("DescribeSnapshots answer: %d\n%s\ndoes not match\n%s", status, body, want)
	}

	// No snapshots: an empty snapshotSet, no nextToken.
	status, _, body = env.post(t, "Action=DescribeSnapshots"+v+"&Filter.1.Name=status&Filter.1.Value.1=error")
	if status != 200 || !strings.Contains(body, "<snapshotSet></snapshotSet></DescribeSnapshotsResponse>") {
		t.Errorf("empty DescribeSnapshots: %d %s", status, body)
	}

	status, h, body = env.post(t, "Action=DeleteSnapshot"+v+"&SnapshotId="+id)
	if want := `<DeleteSnapshotResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>` + h.Get("X-Amzn-RequestId") +
		`</requestId><return>true</return></DeleteSnapshotResponse>`; status != 200 || !strings.HasSuffix(body, want) {
		t.Errorf("DeleteSnapshot: %d %s\nwant suffix %s", status, body, want)
	}
	if _, err := env.engine.SnapshotInfo(id); !errors.Is(err, cow.ErrSnapshotNotFound) {
		t.Errorf("after DeleteSnapshot: %v", err)
	}
}

// TestSnapshotClientRoundTrip: the typed client decodes every field.
func TestSnapshotClientRoundTrip(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	vol := env.create(t, CreateVolumeInput{SizeBytes: 1<<30 + 4096, BlockSize: 4096})
	env.write(t, vol.VolumeID, 8192, 4096)
	before := time.Now().UTC().Truncate(time.Millisecond)
	s := env.snapshot(t, CreateSnapshotInput{VolumeID: vol.VolumeID, Description: "d", Tags: []Tag{{"a", "1"}, {"b", ""}}})
	if !cow.ValidSnapshotID(s.SnapshotID) || s.VolumeID != vol.VolumeID || s.OwnerID != DefaultAccountID ||
		s.VolumeSize != 2 || s.Description != "d" || s.Encrypted || s.StorageTier != "standard" ||
		len(s.Tags) != 2 || s.Tags[1] != (Tag{"b", ""}) || s.StartTime.Before(before) || s.StartTime.After(time.Now()) {
		t.Errorf("CreateSnapshot = %+v", s)
	}
	env.waitCompleted(t, s.SnapshotID)
	out, err := env.client.DescribeSnapshots(ctx, DescribeSnapshotsInput{SnapshotIDs: []string{s.SnapshotID}})
	if err != nil || len(out.Snapshots) != 1 {
		t.Fatalf("DescribeSnapshots: %+v, %v", out, err)
	}
	d := out.Snapshots[0]
	if d.Status != "completed" || d.Progress != "100%" || d.CompletionTime == nil || d.CompletionTime.Before(d.StartTime.Time) ||
		d.FullSnapshotSizeInBytes == nil || *d.FullSnapshotSizeInBytes != 4096 || d.StatusMessage != "" || !d.StartTime.Equal(s.StartTime.Time) {
		t.Errorf("described %+v", d)
	}
	if err := env.client.DeleteSnapshot(ctx, s.SnapshotID, true); !isCode(err, CodeDryRunOperation) {
		t.Errorf("dry-run delete: %v", err)
	}
	if err := env.client.DeleteSnapshot(ctx, s.SnapshotID, false); err != nil {
		t.Errorf("delete: %v", err)
	}
	checkAPIError(t, "second delete", env.client.DeleteSnapshot(ctx, s.SnapshotID, false), 400, CodeInvalidSnapshotNotFound,
		"The snapshot '"+s.SnapshotID+"' does not exist.")
}

func TestSnapshotErrors(t *testing.T) {
	env := newTestEnv(t)
	vol := env.create(t, CreateVolumeInput{Size: 1})
	snap := env.snapshot(t, CreateSnapshotInput{VolumeID: vol.VolumeID})
	env.waitCompleted(t, snap.SnapshotID)
	const (
		missingSnap = "snap-00000000000000000"
		missingVol  = "vol-00000000000000000"
		otherArn    = "arn:aws:outposts:us-east-1:123456789012:outpost/op-0123456789abcdef0"
	)
	create := "Action=CreateSnapshot&VolumeId=" + vol.VolumeID
	tests := []struct {
		name, body string
		status     int
		code, msg  string // code "" means success; msg is then in the body
	}{
		{"create: no volume id", "Action=CreateSnapshot", 400, CodeMissingParameter, "VolumeId"},
		{"create: empty volume id", "Action=CreateSnapshot&VolumeId=", 400, CodeMissingParameter, "VolumeId"},
		{"create: malformed volume id", "Action=CreateSnapshot&VolumeId=vol-../x", 400, CodeInvalidVolumeIDMalformed, "vol-../x"},
		{"create: unknown volume", "Action=CreateSnapshot&VolumeId=" + missingVol, 400, CodeInvalidVolumeNotFound, "The volume '" + missingVol + "' does not exist."},
		{"create: 255 characters", create + "&DryRun=true&Description=" + strings.Repeat("x", 255), 412, CodeDryRunOperation, ""},
		{"create: long description", create + "&Description=" + strings.Repeat("x", 256), 400, CodeInvalidParameterValue, "255"},
		{"create: long multibyte description", create + "&Description=" + strings.Repeat("%C3%A9", 256), 400, CodeInvalidParameterValue, "255"},
		{"create: volume tag spec", create + "&TagSpecification.1.ResourceType=volume&TagSpecification.1.Tag.1.Key=a", 400, CodeInvalidParameterValue, "'volume' is not a valid taggable resource type"},
		{"create: snapshot tag spec twice", create + "&TagSpecification.1.ResourceType=snapshot&TagSpecification.2.ResourceType=snapshot", 400, CodeInvalidParameterValue, "more than once"},
		{"create: tag without key", create + "&TagSpecification.1.ResourceType=snapshot&TagSpecification.1.Tag.1.Value=v", 400, CodeMissingParameter, "TagSpecification.1.Tag.1.Key"},
		{"create: empty tag key", create + "&TagSpecification.1.ResourceType=snapshot&TagSpecification.1.Tag.1.Key=", 400, CodeInvalidParameterValue, "tag key"},
		{"create: unknown parameter", create + "&Encrypted=true", 400, CodeUnknownParameter, "Encrypted"},
		{"create: malformed outpost", create + "&OutpostArn=nope", 400, CodeInvalidParameterValue, "OutpostArn"},
		{"create: not an outpost arn", create + "&OutpostArn=arn:aws:s3:::bucket", 400, CodeInvalidParameterValue, "OutpostArn"},
		{"create: another outpost", create + "&OutpostArn=" + otherArn, 400, CodeInvalidParameterValue, "The snapshot must be created on the same Outpost as the volume"},
		{"create: dry run, another outpost", create + "&DryRun=true&OutpostArn=" + otherArn, 400, CodeInvalidParameterValue, "same Outpost"},
		{"create: dry run", create + "&DryRun=true&Description=x&TagSpecification.1.ResourceType=snapshot&TagSpecification.1.Tag.1.Key=k",
			412, CodeDryRunOperation, "Request would have succeeded, but DryRun flag is set."},
		{"create: dry run, unknown volume", "Action=CreateSnapshot&VolumeId=" + missingVol + "&DryRun=true", 400, CodeInvalidVolumeNotFound, missingVol},
		{"create: bad dry run", create + "&DryRun=1", 400, CodeInvalidParameterValue, "DryRun"},

		{"describe: unknown", "Action=DescribeSnapshots&SnapshotId.1=" + missingSnap, 400, CodeInvalidSnapshotNotFound, "The snapshot '" + missingSnap + "' does not exist."},
		{"describe: one of two unknown", "Action=DescribeSnapshots&SnapshotId.1=" + snap.SnapshotID + "&SnapshotId.2=" + missingSnap, 400, CodeInvalidSnapshotNotFound, missingSnap},
		{"describe: malformed", "Action=DescribeSnapshots&SnapshotId.1=snap-x", 400, CodeInvalidSnapshotIDMalformed, `"snap-x"`},
		{"describe: volume id as snapshot id", "Action=DescribeSnapshots&SnapshotId.1=" + vol.VolumeID, 400, CodeInvalidSnapshotIDMalformed, vol.VolumeID},
		{"describe: bad filter", "Action=DescribeSnapshots&Filter.1.Name=color&Filter.1.Value.1=red", 400, CodeInvalidParameterValue, "The filter 'color' is invalid"},
		{"describe: volume filter", "Action=DescribeSnapshots&Filter.1.Name=size&Filter.1.Value.1=1", 400, CodeInvalidParameterValue, "'size'"},
		{"describe: filter without value", "Action=DescribeSnapshots&Filter.1.Name=status", 400, CodeInvalidParameterValue, "at least one value"},
		{"describe: ids and max", "Action=DescribeSnapshots&SnapshotId.1=" + snap.SnapshotID + "&MaxResults=5", 400, CodeInvalidParameterCombination, "maxResults"},
		{"describe: max results low", "Action=DescribeSnapshots&MaxResults=4", 400, CodeInvalidParameterValue, "between 5 and 1000"},
		{"describe: max results high: 1000", "Action=DescribeSnapshots&MaxResults=1001", 200, "", snap.SnapshotID},
		{"describe: max results 1000", "Action=DescribeSnapshots&MaxResults=1000", 200, "", snap.SnapshotID},
		{"describe: bad token", "Action=DescribeSnapshots&NextToken=zzz", 400, CodeInvalidPaginationToken, "zzz"},
		{"describe: volume token", "Action=DescribeSnapshots&NextToken=dm9sLTAwMDAwMDAwMDAwMDAwMDAw", 400, CodeInvalidPaginationToken, ""},
		{"describe: restorable by", "Action=DescribeSnapshots&RestorableBy.1=self&RestorableBy.2=123456789012", 200, "", snap.SnapshotID},
		{"describe: unknown parameter", "Action=DescribeSnapshots&VolumeId.1=" + vol.VolumeID, 400, CodeUnknownParameter, "VolumeId.1"},
		{"describe: dry run", "Action=DescribeSnapshots&DryRun=true", 412, CodeDryRunOperation, ""},

		{"delete: no id", "Action=DeleteSnapshot", 400, CodeMissingParameter, "SnapshotId"},
		{"delete: malformed", "Action=DeleteSnapshot&SnapshotId=snap-XYZ", 400, CodeInvalidSnapshotIDMalformed, "snap-XYZ"},
		{"delete: unknown", "Action=DeleteSnapshot&SnapshotId=" + missingSnap, 400, CodeInvalidSnapshotNotFound, missingSnap},
		{"delete: dry run, unknown", "Action=DeleteSnapshot&SnapshotId=" + missingSnap + "&DryRun=true", 400, CodeInvalidSnapshotNotFound, missingSnap},
		{"delete: dry run", "Action=DeleteSnapshot&SnapshotId=" + snap.SnapshotID + "&DryRun=true", 412, CodeDryRunOperation, ""},

		{"volume: from unknown snapshot", "Action=CreateVolume&SnapshotId=" + missingSnap, 400, CodeInvalidSnapshotNotFound, missingSnap},
		{"volume: dry run from unknown snapshot", "Action=CreateVolume&DryRun=true&SnapshotId=" + missingSnap, 400, CodeInvalidSnapshotNotFound, missingSnap},
		{"volume: smaller than snapshot", "Action=CreateVolume&SnapshotId=" + snap.SnapshotID + "&SizeBytes=65536", 400, CodeInvalidParameterValue, "smaller"},
		{"volume: dry run smaller than snapshot", "Action=CreateVolume&DryRun=true&SnapshotId=" + snap.SnapshotID + "&SizeBytes=65536", 400, CodeInvalidParameterValue, "smaller"},
		{"volume: other block size", "Action=CreateVolume&SnapshotId=" + snap.SnapshotID + "&BlockSize=4096", 400, CodeInvalidParameterValue, "block size"},
		{"volume: dry run other block size", "Action=CreateVolume&DryRun=true&SnapshotId=" + snap.SnapshotID + "&BlockSize=4096", 400, CodeInvalidParameterValue, "block size"},
		{"volume: dry run from snapshot", "Action=CreateVolume&DryRun=true&SnapshotId=" + snap.SnapshotID, 412, CodeDryRunOperation, ""},
		{"volume: dry run from snapshot, larger", "Action=CreateVolume&DryRun=true&Size=2&SnapshotId=" + snap.SnapshotID, 412, CodeDryRunOperation, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, body := env.post(t, tt.body+v)
			text := body // the message, unescaped, for errors
			if tt.code != "" {
				var er errorResponse
				if err := xml.Unmarshal([]byte(body), &er); err != nil || len(er.Errors) != 1 || er.Errors[0].Code != tt.code {
					t.Fatalf("%s: %d %s\nwant %d %s", tt.body, status, body, tt.status, tt.code)
				}
				text = er.Errors[0].Message
			}
			if status != tt.status || !strings.Contains(text, tt.msg) {
				t.Errorf("%s: %d %s\nwant %d %s containing %q", tt.body, status, body, tt.status, tt.code, tt.msg)
			}
		})
	}
	// Nothing above made or removed a snapshot or a volume.
	out, err := env.client.DescribeSnapshots(context.Background(), DescribeSnapshotsInput{})
	if err != nil || len(out.Snapshots) != 1 {
		t.Fatalf("after the refused requests: %d snapshots, %v", len(out.Snapshots), err)
	}
	vols, err := env.client.DescribeVolumes(context.Background(), DescribeVolumesInput{})
	if err != nil || len(vols.Volumes) != 1 {
		t.Fatalf("after the refused requests: %d volumes, %v", len(vols.Volumes), err)
	}
}

// TestPendingSnapshots holds snapshots pending (the store refuses every
// Put) to check what EC2 refuses while a snapshot is pending.
func TestPendingSnapshots(t *testing.T) {
	store := newFailingStore(t)
	env := newTestEnvWith(t, cow.Options{SnapshotStore: store}, Options{})
	ctx := context.Background()
	vol := env.create(t, CreateVolumeInput{Size: 1})
	other := env.create(t, CreateVolumeInput{Size: 1})
	var ids []string
	for range cow.MaxPendingSnapshots {
		s := env.snapshot(t, CreateSnapshotInput{VolumeID: vol.VolumeID})
		if s.Status != "pending" || s.Progress != "0%" || s.CompletionTime != nil {
			t.Errorf("new snapshot: %+v", s)
		}
		ids = append(ids, s.SnapshotID)
	}

	_, err := env.client.CreateSnapshot(ctx, CreateSnapshotInput{VolumeID: vol.VolumeID, DryRun: true})
	checkAPIError(t, "dry run past the limit", err, 400, CodeConcurrentSnapshotLimit, vol.VolumeID)
	_, err = env.client.CreateSnapshot(ctx, CreateSnapshotInput{VolumeID: vol.VolumeID})
	checkAPIError(t, "past the limit", err, 400, CodeConcurrentSnapshotLimit, vol.VolumeID)
	// The limit is per volume.
	env.snapshot(t, CreateSnapshotInput{VolumeID: other.VolumeID})

	for _, dry := range []bool{true, false} {
		_, err = env.client.CreateVolume(ctx, CreateVolumeInput{SnapshotID: ids[0], DryRun: dry})
		checkAPIError(t, fmt.Sprintf("volume from a pending snapshot (dry run %v)", dry), err, 400, CodeIncorrectState,
			"Snapshot '"+ids[0]+"' is not 'completed'.")
	}
	err = env.client.DeleteVolume(ctx, vol.VolumeID, false)
	checkAPIError(t, "delete a volume with pending snapshots", err, 400, CodeIncorrectState, "5 pending snapshot(s)")
	var ae *APIError
	if errors.As(err, &ae) && strings.HasPrefix(ae.Message, "incorrect state") {
		t.Errorf("message keeps the sentinel's prefix: %q", ae.Message)
	}

	out, err := env.client.DescribeSnapshots(ctx, DescribeSnapshotsInput{Filters: []Filter{
		{Name: "status", Values: []string{"pending"}}, {Name: "volume-id", Values: []string{vol.VolumeID}}, {Name: "progress", Values: []string{"0%"}},
	}})
	if err != nil || len(out.Snapshots) != cow.MaxPendingSnapshots {
		t.Fatalf("pending snapshots of %s: %+v, %v", vol.VolumeID, out, err)
	}
	for _, s := range out.Snapshots {
		if s.CompletionTime != nil || s.FullSnapshotSizeInBytes != nil {
			t.Errorf("pending snapshot with completion fields: %+v", s)
		}
		// The store refuses puts: a statusMessage, if any, says why
		// the flush retries.
		if s.StatusMessage != "" && !strings.Contains(s.StatusMessage, "retrying") {
			t.Errorf("pending snapshot's statusMessage: %q", s.StatusMessage)
		}
	}

	// A pending snapshot can be deleted, and frees a place.
	if err := env.client.DeleteSnapshot(ctx, ids[0], false); err != nil {
		t.Fatalf("delete a pending snapshot: %v", err)
	}
	if _, err := env.client.CreateSnapshot(ctx, CreateSnapshotInput{VolumeID: vol.VolumeID, DryRun: true}); !isCode(err, CodeDryRunOperation) {
		t.Errorf("dry run under the limit: %v", err)
	}
	_, err = env.client.DescribeSnapshots(ctx, DescribeSnapshotsInput{SnapshotIDs: []string{ids[0]}})
	checkAPIError(t, "describe the deleted pending snapshot", err, 400, CodeInvalidSnapshotNotFound, ids[0])

	// Once the store works, they all complete.
	store.fail.Store(false)
	for _, id := range ids[1:] {
		env.waitCompleted(t, id)
	}
}

// TestSnapshotErrorState: a snapshot whose store keeps failing ends in
// state error, with a statusMessage that only DescribeSnapshots carries.
func TestSnapshotErrorState(t *testing.T) {
	store := newFailingStore(t)
	env := newTestEnvWith(t, cow.Options{SnapshotStore: store, FlushDeadline: 20 * time.Millisecond}, Options{})
	vol := env.create(t, CreateVolumeInput{Size: 1})
	s := env.snapshot(t, CreateSnapshotInput{VolumeID: vol.VolumeID})
	env.waitState(t, s.SnapshotID, cow.SnapshotError)
	status, _, body := env.post(t, "Action=DescribeSnapshots"+v+"&Filter.1.Name=status&Filter.1.Value.1=error")
	want := regexp.MustCompile(`<item><snapshotId>` + s.SnapshotID + `</snapshotId><volumeId>` + vol.VolumeID + `</volumeId>` +
		`<status>error</status><statusMessage>[^<]*injected: store unavailable[^<]*</statusMessage><startTime>`)
	if status != 200 || !want.MatchString(body) {
		t.Errorf("DescribeSnapshots of a failed snapshot:\n%s\ndoes not match %s", body, want)
	}
	if strings.Contains(body, "completionTime") || strings.Contains(body, "fullSnapshotSizeInBytes") {
		t.Errorf("failed snapshot with completion fields: %s", body)
	}
	_, err := env.client.CreateVolume(context.Background(), CreateVolumeInput{SnapshotID: s.SnapshotID})
	checkAPIError(t, "volume from a failed snapshot", err, 400, CodeIncorrectState, "Snapshot '"+s.SnapshotID+"' is not 'completed'.")
	// A failed snapshot can be deleted.
	if err := env.client.DeleteSnapshot(context.Background(), s.SnapshotID, false); err != nil {
		t.Errorf("delete a failed snapshot: %v", err)
	}
}

// TestSnapshotOutpost: on a daemon that is an Outpost, CreateSnapshot with
// its ARN stores locally and reports outpostArn; DescribeSnapshots
// filters on it.
func TestSnapshotOutpost(t *testing.T) {
	// The daemon's ARN is accepted as is, whatever its shape.
	const arn = "arn:aws:outposts:us-west-2:123456789012:outpost/op-0abc"
	local, err := snapstore.OpenDir(filepath.Join(t.TempDir(), "local"))
	if err != nil {
		t.Fatal(err)
	}
	env := newTestEnvWith(t, cow.Options{LocalSnapshotStore: local, OutpostArn: arn}, Options{AccountID: "123456789012"})
	vol := env.create(t, CreateVolumeInput{Size: 1})
	status, _, body := env.post(t, "Action=CreateSnapshot"+v+"&VolumeId="+vol.VolumeID+"&OutpostArn="+arn+"&DryRun=true")
	if status != 412 {
		t.Errorf("dry run on our Outpost: %d %s", status, body)
	}
	status, _, body = env.post(t, "Action=CreateSnapshot"+v+"&VolumeId="+vol.VolumeID+"&OutpostArn="+arn+
		"&TagSpecification.1.ResourceType=snapshot&TagSpecification.1.Tag.1.Key=k&TagSpecification.1.Tag.1.Value=v")
	if want := `<ownerId>123456789012</ownerId><volumeSize>1</volumeSize><description></description><encrypted>false</encrypted>` +
		`<storageTier>standard</storageTier><tagSet><item><key>k</key><value>v</value></item></tagSet><outpostArn>` + arn + `</outpostArn>`; status != 200 || !strings.Contains(body, want) {
		t.Fatalf("CreateSnapshot on the Outpost: %d %s\nwant %s", status, body, want)
	}
	onOutpost := snapIDRE.FindString(body)
	inRegion := env.snapshot(t, CreateSnapshotInput{VolumeID: vol.VolumeID})
	if inRegion.OutpostArn != "" {
		t.Errorf("regional snapshot has outpostArn %q", inRegion.OutpostArn)
	}
	env.waitCompleted(t, onOutpost)
	env.waitCompleted(t, inRegion.SnapshotID)
	for _, tt := range []struct {
		values []string
		want   string
	}{
		{[]string{arn}, onOutpost},
		{[]string{"arn:aws:outposts:*"}, onOutpost},
		{[]string{"arn:aws:outposts:eu-*"}, ""},
	} {
		out, err := env.client.DescribeSnapshots(context.Background(), DescribeSnapshotsInput{Filters: []Filter{{"outpost-arn", tt.values}}})
		got := ""
		if err == nil && len(out.Snapshots) == 1 {
			got = out.Snapshots[0].SnapshotID
		}
		if err != nil || len(out.Snapshots) > 1 || got != tt.want {
			t.Errorf("outpost-arn=%v: %+v, %v; want %q", tt.values, out.Snapshots, err, tt.want)
		}
	}
	// A restore from the local snapshot works like any other.
	rv, err := env.client.CreateVolume(context.Background(), CreateVolumeInput{SnapshotID: onOutpost})
	if err != nil || rv.SnapshotID != onOutpost {
		t.Errorf("volume from the Outpost snapshot: %+v, %v", rv, err)
	}
}

func TestDescribeSnapshotsFilters(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	v1 := env.create(t, CreateVolumeInput{Size: 1})
	v2 := env.create(t, CreateVolumeInput{Size: 3})
	a := env.snapshot(t, CreateSnapshotInput{VolumeID: v1.VolumeID, Description: "nightly db", Tags: []Tag{{"env", "prod"}}})
	b := env.snapshot(t, CreateSnapshotInput{VolumeID: v2.VolumeID, Description: "weekly", Tags: []Tag{{"env", "dev"}, {"team", "db"}}})
	c := env.snapshot(t, CreateSnapshotInput{VolumeID: v2.VolumeID})
	for _, s := range []Snapshot{a, b, c} {
		env.waitCompleted(t, s.SnapshotID)
	}
	all := []string{a.SnapshotID, b.SnapshotID, c.SnapshotID}
	// Start times have millisecond precision: snapshots taken within one
	// millisecond share b's.
	var sameStart []string
	for _, s := range []Snapshot{a, b, c} {
		if s.StartTime.String() == b.StartTime.String() {
			sameStart = append(sameStart, s.SnapshotID)
		}
	}
	tests := []struct {
		name    string
		filters []Filter
		owners  []string
		want    []string
	}{
		{"none", nil, nil, all},
		{"status", []Filter{{"status", []string{"completed"}}}, nil, all},
		{"status pending", []Filter{{"status", []string{"pending", "error"}}}, nil, nil},
		{"volume-id", []Filter{{"volume-id", []string{v2.VolumeID}}}, nil, []string{b.SnapshotID, c.SnapshotID}},
		{"snapshot-id", []Filter{{"snapshot-id", []string{a.SnapshotID, c.SnapshotID}}}, nil, []string{a.SnapshotID, c.SnapshotID}},
		{"snapshot-id wildcard", []Filter{{"snapshot-id", []string{"snap-*"}}}, nil, all},
		{"tag", []Filter{{"tag:env", []string{"prod"}}}, nil, []string{a.SnapshotID}},
		{"tag wildcard", []Filter{{"tag:env", []string{"*"}}}, nil, []string{a.SnapshotID, b.SnapshotID}},
		{"tag ?", []Filter{{"tag:env", []string{"d?v"}}}, nil, []string{b.SnapshotID}},
		{"tag-key", []Filter{{"tag-key", []string{"team"}}}, nil, []string{b.SnapshotID}},
		{"description", []Filter{{"description", []string{"*db*"}}}, nil, []string{a.SnapshotID}},
		{"description empty", []Filter{{"description", []string{""}}}, nil, []string{c.SnapshotID}},
		{"owner-id", []Filter{{"owner-id", []string{DefaultAccountID}}}, nil, all},
		{"owner-id other", []Filter{{"owner-id", []string{"123456789012"}}}, nil, nil},
		{"start-time", []Filter{{"start-time", []string{b.StartTime.String()}}}, nil, sameStart},
		{"progress", []Filter{{"progress", []string{"100%"}}}, nil, all},
		{"storage-tier", []Filter{{"storage-tier", []string{"standard"}}}, nil, all},
		{"storage-tier archive", []Filter{{"storage-tier", []string{"archive"}}}, nil, nil},
		{"volume-size", []Filter{{"volume-size", []string{"3"}}}, nil, []string{b.SnapshotID, c.SnapshotID}},
		{"encrypted", []Filter{{"encrypted", []string{"false"}}}, nil, all},
		{"encrypted true", []Filter{{"encrypted", []string{"true"}}}, nil, nil},
		{"outpost-arn", []Filter{{"outpost-arn", []string{"*"}}}, nil, all}, // "" matches *
		{"two filters", []Filter{{"volume-id", []string{v2.VolumeID}}, {"tag-key", []string{"env"}}}, nil, []string{b.SnapshotID}},
		{"owner self", nil, []string{"self"}, all},
		{"owner account", nil, []string{DefaultAccountID}, all},
		{"owner amazon", nil, []string{"amazon"}, nil},
		{"owner other account", nil, []string{"123456789012"}, nil},
		{"owner amazon or self", nil, []string{"amazon", "self"}, all},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := env.client.DescribeSnapshots(ctx, DescribeSnapshotsInput{Filters: tt.filters, OwnerIDs: tt.owners})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range out.Snapshots {
				got = append(got, s.SnapshotID)
			}
			want := append([]string(nil), tt.want...)
			sortStrings(want)
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("got %v, want %v", got, want)
			}
		})
	}

	// DescribeVolumes' snapshot-id filter finds the volumes made from a snapshot.
	rv := env.create(t, CreateVolumeInput{SnapshotID: b.SnapshotID})
	if rv.SnapshotID != b.SnapshotID || rv.Size != 3 || rv.Status != "available" {
		t.Errorf("volume from %s: %+v", b.SnapshotID, rv)
	}
	vols, err := env.client.DescribeVolumes(ctx, DescribeVolumesInput{Filters: []Filter{{"snapshot-id", []string{b.SnapshotID}}}})
	if err != nil || len(vols.Volumes) != 1 || vols.Volumes[0].VolumeID != rv.VolumeID {
		t.Errorf("volumes from %s: %+v, %v", b.SnapshotID, vols, err)
	}
}

func TestDescribeSnapshotsPagination(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	vols := []Volume{env.create(t, CreateVolumeInput{Size: 1}), env.create(t, CreateVolumeInput{Size: 1})}
	created := map[string]bool{}
	for i := range 12 {
		// Snapshots of an empty volume complete at once; wait anyway
		// so the pending limit never bites.
		s := env.snapshot(t, CreateSnapshotInput{VolumeID: vols[i%2].VolumeID})
		env.waitCompleted(t, s.SnapshotID)
		created[s.SnapshotID] = true
	}
	var seen []string
	in := DescribeSnapshotsInput{MaxResults: 5}
	pages := 0
	for {
		out, err := env.client.DescribeSnapshots(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if len(out.Snapshots) > 5 {
			t.Fatalf("page of %d", len(out.Snapshots))
		}
		for _, s := range out.Snapshots {
			seen = append(seen, s.SnapshotID)
		}
		if out.NextToken == "" {
			break
		}
		in.NextToken = out.NextToken
	}
	if pages != 3 || len(seen) != 12 {
		t.Fatalf("%d pages, %d snapshots", pages, len(seen))
	}
	for i, id := range seen {
		if !created[id] || (i > 0 && seen[i-1] >= id) {
			t.Fatalf("snapshots not each once in ID order: %v", seen)
		}
	}
	// Filters apply before paging: pages of one volume's snapshots.
	in = DescribeSnapshotsInput{MaxResults: 5, Filters: []Filter{{"volume-id", []string{vols[0].VolumeID}}}}
	first, err := env.client.DescribeSnapshots(ctx, in)
	if err != nil || len(first.Snapshots) != 5 || first.NextToken == "" {
		t.Fatalf("first filtered page: %+v, %v", first, err)
	}
	in.NextToken = first.NextToken
	second, err := env.client.DescribeSnapshots(ctx, in)
	if err != nil || len(second.Snapshots) != 1 || second.NextToken != "" {
		t.Fatalf("second filtered page: %+v, %v", second, err)
	}
	// A page boundary survives the deletion of the snapshot it names.
	if err := env.client.DeleteSnapshot(ctx, first.Snapshots[4].SnapshotID, false); err != nil {
		t.Fatal(err)
	}
	again, err := env.client.DescribeSnapshots(ctx, in)
	if err != nil || len(again.Snapshots) != 1 || again.Snapshots[0].SnapshotID != second.Snapshots[0].SnapshotID {
		t.Errorf("page after deleting its boundary: %+v, %v", again, err)
	}
}

// TestCreateVolumeFromSnapshot: Size defaults to the snapshot's, may be
// larger, and the volume carries the snapshot's data.
func TestCreateVolumeFromSnapshot(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	vol := env.create(t, CreateVolumeInput{SizeBytes: 1 << 20, BlockSize: 4096})
	env.write(t, vol.VolumeID, 4096, 4096)
	s := env.snapshot(t, CreateSnapshotInput{VolumeID: vol.VolumeID})
	env.waitCompleted(t, s.SnapshotID)

	status, _, body := env.post(t, "Action=CreateVolume"+v+"&SnapshotId="+s.SnapshotID)
	if want := `<size>1</size><snapshotId>` + s.SnapshotID + `</snapshotId><availabilityZone>us-east-1a</availabilityZone><status>available</status>`; status != 200 || !strings.Contains(body, want) {
		t.Fatalf("CreateVolume from snapshot: %d %s\nwant %s", status, body, want)
	}
	if want := `<sizeBytes>1048576</sizeBytes><blockSize>4096</blockSize>`; !strings.Contains(body, want) {
		t.Errorf("CreateVolume from snapshot: %s\nwant %s", body, want)
	}
	restored := regexp.MustCompile(`vol-[0-9a-f]{17}`).FindString(body)
	h, err := env.engine.OpenVolume(restored)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4096)
	if _, err := h.ReadAt(got, 4096); err != nil || got[0] != 1 || got[4095] != byte(4095%251+1) {
		t.Errorf("restored data: %v, %d %d", err, got[0], got[4095])
	}
	h.Close()

	larger, err := env.client.CreateVolume(ctx, CreateVolumeInput{SnapshotID: s.SnapshotID, Size: 2})
	if err != nil || larger.Size != 2 || larger.SizeBytes != 2<<30 || larger.SnapshotID != s.SnapshotID {
		t.Errorf("larger volume from snapshot: %+v, %v", larger, err)
	}
	// The snapshot can be deleted while volumes made from it live on.
	if err := env.client.DeleteSnapshot(ctx, s.SnapshotID, false); err != nil {
		t.Fatalf("delete the snapshot: %v", err)
	}
	if err := env.client.DeleteVolume(ctx, restored, false); err != nil {
		t.Errorf("delete the restored volume: %v", err)
	}
}

// TestEncryptionWireFormat: an encrypted volume, its snapshot and a copy
// carry encrypted, kmsKeyId, dataEncryptionKeyId (DescribeSnapshots only)
// and sseType where EC2 puts them; CopySnapshot answers its snapshotId and
// tagSet.
func TestEncryptionWireFormat(t *testing.T) {
	env := newTestEnv(t)
	_, h, body := env.post(t, "Action=CreateVolume"+v+"&Size=1&Encrypted=true")
	if h.Get("X-Amzn-RequestId") == "" {
		t.Errorf("CreateVolume answered no X-Amzn-RequestId")
	}
	arn := regexp.MustCompile(`<kmsKeyId>(arn:aws:kms:us-east-1:000000000000:key/[0-9a-f-]{36})</kmsKeyId>`).FindStringSubmatch(body)
	if arn == nil || !strings.Contains(body, "<encrypted>true</encrypted><kmsKeyId>") {
		t.Fatalf("CreateVolume Encrypted=true: %s", body)
	}
	volID := regexp.MustCompile(`vol-[0-9a-f]{17}`).FindString(body)
	_, _, body = env.post(t, "Action=DescribeVolumes"+v+"&VolumeId.1="+volID)
	if !strings.Contains(body, "<encrypted>true</encrypted><kmsKeyId>"+arn[1]+"</kmsKeyId>") {
		t.Fatalf("DescribeVolumes of an encrypted volume: %s", body)
	}

	_, h, body = env.post(t, "Action=CreateSnapshot"+v+"&VolumeId="+volID)
	if !strings.Contains(body, "<encrypted>true</encrypted><kmsKeyId>"+arn[1]+"</kmsKeyId><storageTier>standard</storageTier><sseType>sse-kms</sseType>") ||
		strings.Contains(body, "dataEncryptionKeyId") {
		t.Fatalf("CreateSnapshot of an encrypted volume (%s): %s", h.Get("X-Amzn-RequestId"), body)
	}
	snapID := snapIDRE.FindString(body)
	env.waitCompleted(t, snapID)
	_, _, body = env.post(t, "Action=DescribeSnapshots"+v+"&SnapshotId.1="+snapID)
	dek := regexp.MustCompile(`<dataEncryptionKeyId>([0-9a-f-]{36})</dataEncryptionKeyId>`).FindStringSubmatch(body)
	if dek == nil || !strings.Contains(body, "<encrypted>true</encrypted><kmsKeyId>"+arn[1]+"</kmsKeyId><dataEncryptionKeyId>") {
		t.Fatalf("DescribeSnapshots of an encrypted snapshot: %s", body)
	}

	_, h, body = env.post(t, "Action=CopySnapshot"+v+"&SourceSnapshotId="+snapID+"&SourceRegion=us-east-1&Description=copy"+
		"&TagSpecification.1.ResourceType=snapshot&TagSpecification.1.Tag.1.Key=k&TagSpecification.1.Tag.1.Value=v")
	want := regexp.MustCompile(`^<\?xml version="1.0" encoding="UTF-8"\?>\n` +
		`<CopySnapshotResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>` + h.Get("X-Amzn-RequestId") + `</requestId>` +
		`<snapshotId>(snap-[0-9a-f]{17})</snapshotId><tagSet><item><key>k</key><value>v</value></item></tagSet></CopySnapshotResponse>$`)
	m := want.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("CopySnapshot answer:\n%s\ndoes not match\n%s", body, want)
	}
	env.waitCompleted(t, m[1])
	_, _, body = env.post(t, "Action=DescribeSnapshots"+v+"&SnapshotId.1="+m[1])
	if !strings.Contains(body, "<volumeId>vol-ffffffff</volumeId>") || !strings.Contains(body, "<kmsKeyId>"+arn[1]+"</kmsKeyId>") ||
		strings.Contains(body, dek[1]) || !strings.Contains(body, "<dataEncryptionKeyId>") {
		t.Fatalf("DescribeSnapshots of the copy (want the source's key, a data key of its own): %s", body)
	}
	// An unencrypted snapshot says nothing of keys.
	plain := env.create(t, CreateVolumeInput{Size: 1})
	_, _, body = env.post(t, "Action=CreateSnapshot"+v+"&VolumeId="+plain.VolumeID)
	for _, absent := range []string{"kmsKeyId", "sseType", "dataEncryptionKeyId"} {
		if strings.Contains(body, absent) {
			t.Errorf("CreateSnapshot of a plaintext volume has %s: %s", absent, body)
		}
	}
}
