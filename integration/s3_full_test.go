package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cowvol/cowvol/cow/snapstore"
	"github.com/cowvol/cowvol/cow/snapstore/miniotest"
)

// MinIO on a disk that fills up (507 XMinioStorageFull): the daemon starts
// against the full store with a warning, a snapshot stored before restores
// whole, and a new snapshot stays pending saying the store is full. Once
// the disk has room, the new snapshot completes and the restored volume's
// hold (kept in the data dir meanwhile) moves into the bucket.
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

	var rv volume
	step(t, "the snapshot stored before restores whole", func(t *testing.T) {
		d.mustJSON(t, d.mustCLI(t, "create-volume", "--snapshot-id", before.SnapshotId), &rv)
		if got := fileSHA256(t, d.volumePath(rv.VolumeId)); got != sum {
			t.Fatalf("restored volume's SHA-256 %s, want %s", got, sum)
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

	step(t, "room again: the snapshot completes and the restored volume's hold lands in the bucket", func(t *testing.T) {
		if err := os.Remove(hog); err != nil {
			t.Fatal(err)
		}
		d.waitSnapshotCompleted(t, snap.SnapshotId)
		st, err := snapstore.Open(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		hold := "holds/" + rv.VolumeId + "/" + before.SnapshotId
		for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(time.Second) {
			if ok, err := st.Exists(context.Background(), hold); err == nil && ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s is not in the bucket 2 minutes after it had room", hold)
			}
		}
	})
}
