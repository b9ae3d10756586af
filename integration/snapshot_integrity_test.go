package integration

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestDamagedManifestFailsLoudly: one byte of a snapshot's manifest and of
// the volume's hold of it changed in the file:// store ("i":0 to "i":1:
// the snapshot's first segment moved 4 GiB on, which a manifest without a
// checksum reads as 64 KiB blocks of zeros, no error). The daemon, which
// must read them from the store again (restarted: no cache), refuses them:
// the snapshot file fails its reads, create-volume from it fails, the
// volume's next snapshot ends in error naming the hold, and garbage
// collection stops naming the hold.
func TestDamagedManifestFailsLoudly(t *testing.T) {
	requirePrereqs(t)
	store := t.TempDir()
	d := startDaemon(t, withDaemonArgs("--snapshot-store", "file://"+store, "--flush-deadline", "2s"))
	vol := d.createVolume(t, "8GiB")
	fillVolume(t, d.volumePath(vol.VolumeId), 5, mib)
	snap := d.createSnapshot(t, vol.VolumeId)
	d.waitSnapshotCompleted(t, snap.SnapshotId)
	manifest := "snapshots/" + snap.SnapshotId + "/manifest"
	hold := "holds/" + vol.VolumeId + "/" + snap.SnapshotId
	var objects []string

	step(t, "stop the daemon, change segment index 0 to 1 in the manifest and the hold, start it", func(t *testing.T) {
		if err := d.stop(t); err != nil {
			t.Fatal(err)
		}
		for _, key := range []string{manifest, hold} {
			p := filepath.Join(store, filepath.FromSlash(key))
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			i := bytes.Index(b, []byte(`"i":0,`))
			if i < 0 {
				t.Fatalf("no segment 0 in %s: %s", key, b)
			}
			b[i+4] = '1'
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		objects = storeObjects(t, store)
		d.restart(t)
	})

	step(t, "the snapshot file fails its reads, at 0 and 4 GiB on", func(t *testing.T) {
		f, err := os.Open(d.snapshotPath(snap.SnapshotId))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		buf := make([]byte, 64*kib)
		for _, off := range []int64{0, 4 * gib} {
			if n, err := f.ReadAt(buf, off); err == nil || !strings.Contains(err.Error(), "input/output error") {
				t.Errorf("read of the snapshot file at %d: %d bytes, %v; want an I/O error", off, n, err)
			}
		}
		if !logMentions(d, manifest, "corrupt") {
			t.Errorf("the daemon log does not name %s as corrupt", manifest)
		}
	})

	step(t, "create-volume --snapshot-id fails", func(t *testing.T) {
		if _, stderr, code := d.cli(t, "create-volume", "--snapshot-id", snap.SnapshotId); code == 0 {
			t.Errorf("create-volume from a damaged manifest succeeded: %s", stderr)
		}
	})

	step(t, "the volume's next snapshot ends in error, naming its base hold", func(t *testing.T) {
		writeRandom(t, d.volumePath(vol.VolumeId), os.O_WRONLY, 6, 64*kib)
		next := d.createSnapshot(t, vol.VolumeId)
		var got snapshotState
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if got = d.snapshotState(t, next.SnapshotId); got.State != "pending" {
				break
			}
		}
		if got.State != "error" || !strings.Contains(got.StateMessage, hold) || !strings.Contains(got.StateMessage, "corrupt") {
			t.Errorf("snapshot on a damaged base: %+v, want error naming %s", got, hold)
		}
	})

	step(t, "garbage collection stops, naming the hold, and deletes nothing", func(t *testing.T) {
		// Deleting the snapshot asks for a collection; its marks from
		// the damaged hold stop it.
		d.mustCLI(t, "delete-snapshot", "--snapshot-id", snap.SnapshotId)
		deadline := time.Now().Add(30 * time.Second)
		for !logMentions(d, "garbage collection stopped", hold) {
			if time.Now().After(deadline) {
				t.Fatalf("no log of a garbage collection stopped by %s", hold)
			}
			time.Sleep(100 * time.Millisecond)
		}
		left := storeObjects(t, store)
		for _, k := range objects {
			if strings.HasPrefix(k, "packs/") || strings.HasPrefix(k, "segments/") {
				if !slices.Contains(left, k) {
					t.Errorf("%s was deleted", k)
				}
			}
		}
	})
}

// snapshotState is a snapshot's state as describe-snapshots prints it.
type snapshotState struct {
	State        string
	StateMessage string
}

func (d *daemon) snapshotState(t testing.TB, id string) snapshotState {
	t.Helper()
	var out struct{ Snapshots []snapshotState }
	d.mustJSON(t, d.mustCLI(t, "describe-snapshots", "--snapshot-ids", id), &out)
	if len(out.Snapshots) != 1 {
		t.Fatalf("describe-snapshots --snapshot-ids %s: %+v", id, out)
	}
	return out.Snapshots[0]
}

// logMentions reports whether one line of d's log holds every one of words.
func logMentions(d *daemon, words ...string) bool {
	for _, line := range strings.Split(d.output(), "\n") {
		all := true
		for _, w := range words {
			all = all && strings.Contains(line, w)
		}
		if all {
			return true
		}
	}
	return false
}

// storeObjects lists the keys of a file:// store's objects.
func storeObjects(t testing.TB, root string) []string {
	t.Helper()
	var keys []string
	err := filepath.WalkDir(root, func(p string, de os.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		rel, err := filepath.Rel(root, p)
		keys = append(keys, filepath.ToSlash(rel))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys
}
