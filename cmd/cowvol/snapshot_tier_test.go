package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cowvol/cowvol/cow"
	"github.com/cowvol/cowvol/cow/snapstore"
)

// TestSnapshotTierVerbs: modify-snapshot-tier, restore-snapshot-tier and
// describe-snapshot-tier-status print what aws ec2 prints, and refuse bad
// command lines and requests with plain messages.
func TestSnapshotTierVerbs(t *testing.T) {
	arc, err := snapstore.OpenDir(filepath.Join(t.TempDir(), "archive"))
	if err != nil {
		t.Fatal(err)
	}
	sock := startDaemonWith(t, cow.Options{ArchiveStore: arc, CatalogInterval: 20 * time.Millisecond})
	var vol struct{ VolumeId string }
	json.Unmarshal([]byte(runOK(t, "--socket", sock, "create-volume", "--size", "1GiB")), &vol)
	var snap struct{ SnapshotId string }
	json.Unmarshal([]byte(runOK(t, "--socket", sock, "create-snapshot", "--volume-id", vol.VolumeId)), &snap)
	if _, errOut, code := run(t, "--socket", sock, "wait", "snapshot-completed", "--snapshot-ids", snap.SnapshotId); code != 0 {
		t.Fatalf("wait snapshot-completed: exit %d, %s", code, errOut)
	}
	id := snap.SnapshotId

	runCases(t, sock, []cliCase{
		{[]string{"modify-snapshot-tier"}, exitUsage, "--snapshot-id is required"},
		{[]string{"modify-snapshot-tier", "--snapshot-id", id, "--storage-tier", "standard"}, exitUsage, "the only tier is archive"},
		{[]string{"restore-snapshot-tier", "--snapshot-id", id}, exitUsage, "--temporary-restore-days N or --permanent-restore"},
		{[]string{"restore-snapshot-tier", "--snapshot-id", id, "--temporary-restore-days", "2", "--permanent-restore"}, exitUsage, "one of them"},
		{[]string{"restore-snapshot-tier", "--snapshot-id", id, "--temporary-restore-days", "2"}, exitAPIError, "IncorrectState"},
		{[]string{"restore-snapshot-tier", "--snapshot-id", id, "--temporary-restore-days", "0"}, exitAPIError, "InvalidParameterValue"},
		{[]string{"modify-snapshot-tier", "--snapshot-id", "snap-0123456789abcdef0"}, exitAPIError, "InvalidSnapshot.NotFound"},
		{[]string{"describe-snapshot-tier-status", "--filter", "color=red"}, exitAPIError, "InvalidParameterValue"},
	})

	var mod map[string]any
	json.Unmarshal([]byte(runOK(t, "--socket", sock, "modify-snapshot-tier", "--snapshot-id", id)), &mod)
	if mod["SnapshotId"] != id || mod["TieringStartTime"] == "" {
		t.Fatalf("modify-snapshot-tier printed %v", mod)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		out := runOK(t, "--socket", sock, "describe-snapshot-tier-status", "--filters", "Name=snapshot-id,Values="+id)
		var st struct{ SnapshotTierStatuses []map[string]any }
		if err := json.Unmarshal([]byte(out), &st); err != nil || len(st.SnapshotTierStatuses) != 1 {
			t.Fatalf("describe-snapshot-tier-status printed %q (%v)", out, err)
		}
		if s := st.SnapshotTierStatuses[0]; s["LastTieringOperationStatus"] == "archival-completed" {
			if s["StorageTier"] != "archive" || s["ArchivalCompleteTime"] == nil || s["Status"] != "completed" {
				t.Fatalf("describe-snapshot-tier-status printed %v", s)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no archival-completed in 30 s: %s", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	out := runOK(t, "--socket", sock, "restore-snapshot-tier", "--snapshot-id", id, "--temporary-restore-days", "3")
	var res map[string]any
	if err := json.Unmarshal([]byte(out), &res); err != nil || res["RestoreDuration"] != float64(3) || res["IsPermanentRestore"] != false {
		t.Fatalf("restore-snapshot-tier printed %q (%v)", out, err)
	}
	if out := runOK(t, "--socket", sock, "describe-snapshots", "--snapshot-ids", id); !strings.Contains(out, `"StorageTier"`) {
		t.Fatalf("describe-snapshots printed %q", out)
	}
}
