package integration

import "testing"

// Helpers for the snapshot tests (create-snapshot, describe-snapshots, wait).

// snapshot is a snapshot as create-snapshot and describe-snapshots print it.
type snapshot struct {
	SnapshotId   string
	VolumeId     string
	State        string
	StateMessage string // the wire's statusMessage: why it failed (or retries)
	Progress     string
	VolumeSize   int64
	StartTime    string
	Description  string
	OwnerId      string
	Tags         []tag

	Encrypted           bool
	KmsKeyId            string
	DataEncryptionKeyId string
	SseType             string
}

// createSnapshot runs `create-snapshot --volume-id ID [args...]` and returns
// the snapshot it printed.
func (d *daemon) createSnapshot(t testing.TB, volumeID string, args ...string) snapshot {
	t.Helper()
	var s snapshot
	d.mustJSON(t, d.mustCLI(t, append([]string{"create-snapshot", "--volume-id", volumeID}, args...)...), &s)
	if !validID("snap-", s.SnapshotId) {
		t.Fatalf("create-snapshot printed SnapshotId %q, want snap- and 17 lowercase hex digits", s.SnapshotId)
	}
	return s
}

// describeSnapshots runs `describe-snapshots [args...]` and returns the snapshots.
func (d *daemon) describeSnapshots(t testing.TB, args ...string) []snapshot {
	t.Helper()
	var out struct{ Snapshots []snapshot }
	d.mustJSON(t, d.mustCLI(t, append([]string{"describe-snapshots"}, args...)...), &out)
	return out.Snapshots
}

// waitSnapshotCompleted runs `wait snapshot-completed --snapshot-ids ID`.
func (d *daemon) waitSnapshotCompleted(t testing.TB, id string) {
	t.Helper()
	d.mustCLI(t, "wait", "snapshot-completed", "--snapshot-ids", id)
}
