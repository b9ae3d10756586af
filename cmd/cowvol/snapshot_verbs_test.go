package main

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
)

func TestSnapshotVerbs(t *testing.T) {
	sock := startDaemon(t)
	var vol struct{ VolumeId string }
	json.Unmarshal([]byte(runOK(t, "--socket", sock, "create-volume", "--size", "1GiB")), &vol)

	var snap map[string]any
	out, progress, code := run(t, "--socket", sock, "create-snapshot", "--volume-id", vol.VolumeId, "--description", "nightly", "--tag", "k=a,b", "--wait")
	if err := json.Unmarshal([]byte(out), &snap); err != nil || code != 0 {
		t.Fatalf("create-snapshot --wait: exit %d, %v", code, err)
	}
	if !strings.Contains(progress, "completed 100%") {
		t.Errorf("create-snapshot --wait showed no progress on stderr: %q", progress)
	}
	want := []string{"CompletionTime", "Description", "Encrypted", "FullSnapshotSizeInBytes", "OwnerId", "Progress",
		"SnapshotId", "StartTime", "State", "StorageTier", "Tags", "VolumeId", "VolumeSize"}
	if got := keys(snap); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("create-snapshot --wait keys %v, want %v", got, want)
	}
	if snap["State"] != "completed" || snap["Progress"] != "100%" || snap["Description"] != "nightly" || snap["VolumeSize"] != 1.0 {
		t.Errorf("create-snapshot --wait printed %v", snap)
	}
	id := snap["SnapshotId"].(string)

	var desc struct{ Snapshots []map[string]any }
	json.Unmarshal([]byte(runOK(t, "--socket", sock, "describe-snapshots", "--filter", "tag:k=a*", "--owner-ids", "self")), &desc)
	if len(desc.Snapshots) != 1 || desc.Snapshots[0]["SnapshotId"] != id {
		t.Errorf("describe-snapshots --filter tag:k=a*: %v", desc.Snapshots)
	}
	json.Unmarshal([]byte(runOK(t, "--socket", sock, "describe-snapshots", "--filters", "Name=status,Values=pending")), &desc)
	if len(desc.Snapshots) != 0 {
		t.Errorf("no snapshot is pending, yet: %v", desc.Snapshots)
	}

	// wait prints nothing on stdout and plain progress lines on stderr
	// (not a terminal here).
	out, errOut, code := run(t, "--socket", sock, "wait", "snapshot-completed", "--snapshot-ids", id)
	if code != 0 || out != "" || !strings.Contains(errOut, id+" completed 100%") {
		t.Errorf("wait: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	var rv struct{ VolumeId, SnapshotId string }
	json.Unmarshal([]byte(runOK(t, "--socket", sock, "create-volume", "--snapshot-id", id)), &rv)
	if rv.SnapshotId != id {
		t.Errorf("create-volume --snapshot-id printed SnapshotId %q", rv.SnapshotId)
	}
	if out := runOK(t, "--socket", sock, "delete-snapshot", "--snapshot-id", id); out != "" {
		t.Errorf("delete-snapshot printed %q", out)
	}

	for _, tt := range []struct {
		args     []string
		code     int
		inStderr string
	}{
		{[]string{"create-snapshot"}, exitUsage, "--volume-id is required"},
		{[]string{"create-snapshot", "--volume-id", "vol-00000000000000000"}, exitAPIError,
			"An error occurred (InvalidVolume.NotFound) when calling the CreateSnapshot operation: The volume 'vol-00000000000000000' does not exist."},
		{[]string{"delete-snapshot", "--snapshot-id", id}, exitAPIError, "(InvalidSnapshot.NotFound) when calling the DeleteSnapshot operation"},
		{[]string{"wait", "snapshot-completed", "--snapshot-ids", id}, exitAPIError, "InvalidSnapshot.NotFound"},
		{[]string{"wait", "snapshot-completed"}, exitUsage, "--snapshot-ids is required"},
		{[]string{"create-snapshot", "--volume-id", vol.VolumeId, "--freeze", "/nonexistent/mount"}, exitFailure, "/nonexistent/mount"},
	} {
		_, errOut, code := run(t, append([]string{"--socket", sock}, tt.args...)...)
		if code != tt.code || !strings.Contains(errOut, tt.inStderr) {
			t.Errorf("cowvol %v: exit %d, stderr %q; want exit %d containing %q", tt.args, code, errOut, tt.code, tt.inStderr)
		}
	}
}

// TestWhileFrozenAlwaysThaws: the file system is thawed whatever the
// snapshot call does, and nothing runs when the freeze fails.
func TestWhileFrozenAlwaysThaws(t *testing.T) {
	for _, tt := range []struct {
		name      string
		freezeErr error
		fnErr     error
		wantRun   bool
		wantThaw  bool
	}{
		{"success", nil, nil, true, true},
		{"the call fails", nil, errors.New("daemon said no"), true, true},
		{"the freeze fails", errors.New("EOPNOTSUPP"), nil, false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var ran, thawed bool
			fz := fsFreezer{
				freeze: func(string) (*os.File, error) {
					if tt.freezeErr != nil {
						return nil, tt.freezeErr
					}
					return os.Open(os.DevNull)
				},
				thaw: func(f *os.File) error { thawed = true; return f.Close() },
			}
			err := fz.whileFrozen("/mnt/x", func() error { ran = true; return tt.fnErr })
			if ran != tt.wantRun || thawed != tt.wantThaw {
				t.Errorf("ran %v thawed %v, want %v %v", ran, thawed, tt.wantRun, tt.wantThaw)
			}
			if want := errors.Join(tt.freezeErr, tt.fnErr); (err == nil) != (want == nil) {
				t.Errorf("err %v, want %v", err, want)
			}
		})
	}
}
