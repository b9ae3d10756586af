package integration

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// freeBytes is the space available on dir's file system.
func freeBytes(t testing.TB, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

// fillDisk writes the file path until its file system is full (ENOSPC).
func fillDisk(t testing.TB, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, mib)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling %s: %v", path, err)
			}
			break
		}
	}
	// What did not fit whole, in smaller writes: not a byte left.
	for n := 64 * kib; n >= 512; n /= 2 {
		for {
			if _, err := f.Write(buf[:n]); err != nil {
				break
			}
		}
	}
	f.Sync()
	f.Close()
}

// filesUnder lists the files under dir whose names end in suffix ("": all).
func filesUnder(t testing.TB, dir, suffix string) []string {
	t.Helper()
	var files []string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && strings.HasSuffix(p, suffix) {
			files = append(files, p)
		}
		return nil
	})
	return files
}

// waitSnapshotSettled polls describe-snapshots until snapshot id is no
// longer pending; it returns the last description and, of the pending ones
// seen, the last with a statusMessage.
func (d *daemon) waitSnapshotSettled(t testing.TB, id string, timeout time.Duration) (last snapshot, pendingMessage string) {
	t.Helper()
	for deadline := time.Now().Add(timeout); ; time.Sleep(time.Second) {
		got := d.describeSnapshots(t, "--snapshot-ids", id)
		if len(got) != 1 {
			t.Fatalf("describe-snapshots %s: %+v", id, got)
		}
		last = got[0]
		if last.State != "pending" {
			return last, pendingMessage
		}
		if last.StateMessage != "" {
			pendingMessage = last.StateMessage
		}
		if time.Now().After(deadline) {
			return last, pendingMessage
		}
	}
}

// A snapshot flushed into the default store (inside the data dir) that
// does not fit on the data dir's disk: the daemon stays up (no SIGBUS from
// the metadata store), the flush retries and ends in error saying the disk
// is full, no pack of a failed attempt stays behind, and the volumes keep
// what was written. Deleting a volume frees space; a new snapshot completes.
func TestTortureSnapshotFillsDataDir(t *testing.T) {
	requirePrereqs(t)
	fs := makeSmallFS(t, 512*mib, 0)
	dataDir := filepath.Join(fs.Dir, "data")
	d := startDaemon(t, withDataDir(dataDir), withDaemonArgs("--flush-deadline", "20s"))
	pid := d.pid()

	// Sizes from the free space now (the daemon's ballast, if any, is
	// taken): vol1 and vol2 fill the disk to about 88 MiB free, less
	// than vol1's snapshot needs; with vol2 deleted, vol1's snapshot
	// fits with room to spare.
	const reserve = 64 * mib
	free0 := freeBytes(t, fs.Dir)
	size1 := (free0 - reserve - 32*mib) / 2 &^ (mib - 1)
	size2 := (free0 - size1 - reserve - 24*mib) &^ (mib - 1)
	t.Logf("%d MiB free: vol1 gets %d MiB, vol2 %d MiB", free0/mib, size1/mib, size2/mib)
	vol1, vol2 := d.createVolume(t, "512MiB"), d.createVolume(t, "512MiB")
	fillVolume(t, d.volumePath(vol1.VolumeId), 1, size1)
	fillVolume(t, d.volumePath(vol2.VolumeId), 2, size2)
	sum1, sum2 := fileSHA256(t, d.volumePath(vol1.VolumeId)), fileSHA256(t, d.volumePath(vol2.VolumeId))

	var snap snapshot
	step(t, "snapshot vol1: it does not fit; it retries, then ends in error saying the disk is full", func(t *testing.T) {
		snap = d.createSnapshot(t, vol1.VolumeId)
		// Metadata writes while the flush fills the disk.
		for i := 0; i < 5; i++ {
			v := d.createVolume(t, "1GiB")
			d.mustCLI(t, "delete-volume", "--volume-id", v.VolumeId)
		}
		last, pending := d.waitSnapshotSettled(t, snap.SnapshotId, 3*time.Minute)
		t.Logf("pending statusMessage: %q; final: %s %q", pending, last.State, last.StateMessage)
		if last.State != "error" || !strings.Contains(last.StateMessage, "the data dir's disk is full") {
			t.Errorf("snapshot %s ended %s with statusMessage %q, want error saying the data dir's disk is full", snap.SnapshotId, last.State, last.StateMessage)
		}
		if !strings.Contains(pending, "retrying") || !strings.Contains(pending, "the data dir's disk is full") {
			t.Errorf("while it retried, its statusMessage was %q", pending)
		}
	})

	step(t, "the daemon never died; no pack or temporary file of a failed attempt is left; the volumes are intact", func(t *testing.T) {
		if !d.running() || d.pid() != pid {
			t.Fatalf("the daemon (pid %d) died: %v", pid, exitString(d.err))
		}
		if out := d.output(); strings.Contains(out, "SIGBUS") || strings.Contains(out, "unexpected fault address") {
			t.Fatalf("the daemon's log shows a fault:\n%s", d.logTail(40))
		}
		if packs := filesUnder(t, filepath.Join(dataDir, "snapshots", "packs"), ""); len(packs) != 0 {
			t.Errorf("%d packs of failed attempts left in the store: %v", len(packs), packs)
		}
		if tmp := filesUnder(t, filepath.Join(dataDir, "snapshots"), ".tmp"); len(tmp) != 0 {
			t.Errorf("temporary files left in the store: %v", tmp)
		}
		if got := fileSHA256(t, d.volumePath(vol1.VolumeId)); got != sum1 {
			t.Errorf("vol1 changed: SHA-256 %s, want %s", got, sum1)
		}
		if got := fileSHA256(t, d.volumePath(vol2.VolumeId)); got != sum2 {
			t.Errorf("vol2 changed: SHA-256 %s, want %s", got, sum2)
		}
	})

	step(t, "delete the failed snapshot and vol2: space comes back; a new snapshot of vol1 completes", func(t *testing.T) {
		d.mustCLI(t, "delete-snapshot", "--snapshot-id", snap.SnapshotId)
		before := freeBytes(t, fs.Dir)
		d.mustCLI(t, "delete-volume", "--volume-id", vol2.VolumeId)
		for deadline := time.Now().Add(30 * time.Second); freeBytes(t, fs.Dir) < before+size2/2; time.Sleep(200 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("deleting vol2 freed %d MiB", (freeBytes(t, fs.Dir)-before)/mib)
			}
		}
		again := d.createSnapshot(t, vol1.VolumeId)
		d.waitSnapshotCompleted(t, again.SnapshotId)
		if packs := filesUnder(t, filepath.Join(dataDir, "snapshots", "packs"), ""); len(packs) == 0 {
			t.Fatal("a completed snapshot stored no pack")
		}
		// Read through its file (a restore would not fit on the disk).
		if got := fileSHA256(t, d.snapshotPath(again.SnapshotId)); got != sum1 {
			t.Fatalf("the new snapshot's SHA-256 %s, want %s", got, sum1)
		}
	})
}

// A restart on a disk that something else filled to the last byte: the
// daemon starts (it releases its ballast for the metadata store), lists and
// reads its volumes, refuses new blocks, deletes a volume (freeing its
// space), and puts its ballast back once there is room.
func TestTortureRestartOnFullDisk(t *testing.T) {
	requirePrereqs(t)
	fs := makeSmallFS(t, 256*mib, 0)
	dataDir := filepath.Join(fs.Dir, "data")
	d := startDaemon(t, withDataDir(dataDir))
	keep, drop := d.createVolume(t, "256MiB"), d.createVolume(t, "256MiB")
	fillVolume(t, d.volumePath(keep.VolumeId), 3, 32*mib)
	fillVolume(t, d.volumePath(drop.VolumeId), 4, 32*mib)
	sum := fileSHA256(t, d.volumePath(keep.VolumeId))
	if err := d.stop(t); err != nil {
		t.Fatal(err)
	}
	hog := filepath.Join(fs.Dir, "hog")
	fillDisk(t, hog)
	t.Logf("disk filled by the test: %d bytes free", freeBytes(t, fs.Dir))

	step(t, "start on the full disk: it starts, saying it released its ballast", func(t *testing.T) {
		d.restart(t)
		if out := d.output(); !strings.Contains(out, "released the ballast") {
			t.Errorf("the daemon does not say it released its ballast:\n%s", d.logTail(20))
		}
		if _, err := os.Stat(filepath.Join(dataDir, "reserve")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the ballast is still there: %v", err)
		}
	})

	step(t, "describe-volumes lists both; the kept volume reads back; a new block is refused", func(t *testing.T) {
		if vols := d.describeVolumes(t); len(vols) != 2 {
			t.Fatalf("describe-volumes: %+v", vols)
		}
		if got := fileSHA256(t, d.volumePath(keep.VolumeId)); got != sum {
			t.Fatalf("SHA-256 %s, want %s", got, sum)
		}
		f, err := os.OpenFile(d.volumePath(keep.VolumeId), os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		_, err = f.WriteAt(bytes.Repeat([]byte{0xab}, int(mib)), 128*mib)
		if err == nil {
			err = f.Sync()
		}
		if !errors.Is(err, syscall.ENOSPC) && !errors.Is(err, syscall.EIO) {
			t.Errorf("a write of new blocks on the full disk: %v, want ENOSPC", err)
		}
	})

	step(t, "delete-volume works and frees its space", func(t *testing.T) {
		before := freeBytes(t, fs.Dir)
		d.mustCLI(t, "delete-volume", "--volume-id", drop.VolumeId)
		for deadline := time.Now().Add(30 * time.Second); freeBytes(t, fs.Dir) < before+16*mib; time.Sleep(200 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("delete-volume freed %d MiB", (freeBytes(t, fs.Dir)-before)/mib)
			}
		}
	})

	step(t, "the test frees its file: the daemon puts its ballast back; new blocks are written again", func(t *testing.T) {
		if err := os.Remove(hog); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			if _, err := os.Stat(filepath.Join(dataDir, "reserve")); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no ballast 30 s after space came back:\n%s", d.logTail(20))
			}
		}
		f, err := os.OpenFile(d.volumePath(keep.VolumeId), os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteAt(bytes.Repeat([]byte{0xab}, int(mib)), 128*mib); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	})
}
