package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStatusShowsTheDaemonsHealth runs `cowvol status` against a daemon
// with a volume attached to a loop device: healthy, exit 0, the volume
// attached, the store reachable, the data dir's size; the screen names
// the volume. Then the snapshot store stops answering (its probe key's
// parent made a file, so that looking the key up fails): status says so
// and exits 1.
func TestStatusShowsTheDaemonsHealth(t *testing.T) {
	d := startDaemon(t)
	vol := d.createVolume(t, "64MiB")
	lo := attachLoop(t, d.volumePath(vol.VolumeId))
	defer lo.detach(t)

	type report struct {
		Healthy        bool
		Problems       []string
		DataDir        struct{ SizeBytes, AvailableBytes int64 }
		SnapshotStores []struct {
			Store     string
			Reachable bool
		}
		Volumes []struct {
			VolumeId string
			State    string
			Attached bool
			Status   string
		}
	}
	var r report
	out, _, code := d.cli(t, "status", "--output", "json")
	if err := json.Unmarshal([]byte(out), &r); err != nil || code != 0 {
		t.Fatalf("status --output json: exit %d, %v\n%s", code, err, out)
	}
	if !r.Healthy || len(r.Problems) != 0 || r.DataDir.SizeBytes <= 0 || r.DataDir.AvailableBytes <= 0 {
		t.Errorf("status: %+v", r)
	}
	if len(r.SnapshotStores) != 1 || r.SnapshotStores[0].Store != "regional" || !r.SnapshotStores[0].Reachable {
		t.Errorf("snapshot stores: %+v", r.SnapshotStores)
	}
	if len(r.Volumes) != 1 || r.Volumes[0].VolumeId != vol.VolumeId || !r.Volumes[0].Attached || r.Volumes[0].Status != "ok" {
		t.Errorf("volumes: %+v", r.Volumes)
	}
	screen, _, code := d.cli(t, "status")
	if code != 0 || !strings.Contains(screen, "healthy") || !strings.Contains(screen, vol.VolumeId) {
		t.Errorf("status screen, exit %d:\n%s", code, screen)
	}

	// The store's probe fails: <store>/probe is a file, not a directory.
	probe := filepath.Join(d.DataDir, "snapshots", "probe")
	if err := os.WriteFile(probe, []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(probe)
	out, _, code = d.cli(t, "status", "--output", "json")
	r = report{}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("status --output json: %v\n%s", err, out)
	}
	if code != 1 || r.Healthy || len(r.SnapshotStores) != 1 || r.SnapshotStores[0].Reachable {
		t.Errorf("with the store failing: exit %d, %+v", code, r)
	}
	screen, _, _ = d.cli(t, "status")
	if !strings.Contains(screen, "NOT REACHABLE") || !strings.Contains(screen, "the regional snapshot store does not answer") {
		t.Errorf("status screen with the store failing:\n%s", screen)
	}
}
