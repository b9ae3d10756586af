package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cowvol/cowvol/cow/snapstore/miniotest"
)

// MinIO on a disk that fills up (507 XMinioStorageFull): the daemon starts
// against the full store with a warning, a snapshot stored before still
// reads whole, a restore (which must store a hold) is refused saying the
// store is full, and a new snapshot stays pending saying so. Once the disk
// has room, the new snapshot completes and the restore works.
func TestS3StoreFull(t *testing.T) {
	requirePrereqs(t)
	fs := makeSmallFS(t, 64*mib, 0)
	srv := miniotest.StartIn(t, filepath.Join(fs.Dir, "minio"))
	url := srv.URL("cowvol-full", "")
	d := startS3Daemon(t, srv, url, "111111111111")
	vol := d.createVolume(t, "64MiB")
	fillVolume(t, d.volumePath(vol.VolumeId), 7, 16*mib)
	sum := fileSHA256(t, d.volumePath(vol.VolumeId))
	before := d.createSnapshot(t, vol.VolumeId)
	d.waitSnapshotCompleted(t, before.SnapshotId)
	fillVolume(t, d.volumePath(vol.VolumeId), 8, 16*mib)
	hog := filepath.Join(fs.Dir, "hog")

	step(t, "fill MinIO's disk; restart the daemon: it starts, warning that the store is full", func(t *testing.T) {
		if err := d.stop(t); err != nil {
			t.Fatal(err)
		}
		fillDisk(t, hog)
		d.restart(t)
		if out := d.output(); !strings.Contains(out, "the snapshot store is full") || !strings.Contains(out, "XMinioStorageFull") {
			t.Errorf("no warning that the store is full:\n%s", d.logTail(20))
		}
	})

	step(t, "the snapshot stored before reads whole; a restore is refused, saying the store is full", func(t *testing.T) {
		if got := fileSHA256(t, d.snapshotPath(before.SnapshotId)); got != sum {
			t.Fatalf("snapshot file's SHA-256 %s, want %s", got, sum)
		}
		_, stderr, code := d.cli(t, "create-volume", "--snapshot-id", before.SnapshotId)
		if code == 0 || !strings.Contains(stderr, "InsufficientVolumeCapacity") || !strings.Contains(stderr, "full") {
			t.Fatalf("restore from a full store: exit %d, %s", code, stderr)
		}
		if vols := d.describeVolumes(t); len(vols) != 1 {
			t.Fatalf("a refused restore left a volume: %+v", vols)
		}
	})

	var snap snapshot
	step(t, "a new snapshot stays pending; its statusMessage says the store is full, with the server's code", func(t *testing.T) {
		snap = d.createSnapshot(t, vol.VolumeId)
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(250 * time.Millisecond) {
			s := d.describeSnapshots(t, "--snapshot-ids", snap.SnapshotId)[0]
			if s.State != "pending" {
				t.Fatalf("snapshot into a full store: %+v", s)
			}
			if strings.Contains(s.StateMessage, "snapshot store is full") && strings.Contains(s.StateMessage, "XMinioStorageFull") {
				t.Logf("statusMessage: %s", s.StateMessage)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("statusMessage %q does not say the store is full", s.StateMessage)
			}
		}
	})

	step(t, "room again: the snapshot completes and the restore works", func(t *testing.T) {
		if err := os.Remove(hog); err != nil {
			t.Fatal(err)
		}
		d.waitSnapshotCompleted(t, snap.SnapshotId)
		var rv volume
		d.mustJSON(t, d.mustCLI(t, "create-volume", "--snapshot-id", before.SnapshotId), &rv)
		if got := fileSHA256(t, d.volumePath(rv.VolumeId)); got != sum {
			t.Fatalf("restored volume's SHA-256 %s, want %s", got, sum)
		}
	})
}
