package integration

import (
	"bytes"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cowvol/cowvol/cow/snapstore/miniotest"
)

// Encrypted volumes and snapshots, end to end: the real daemon, its
// keyring, FUSE, loop devices, ext4, the directory store and MinIO.

// patternSeed is the seed of the recognisable (random, incompressible)
// data written to the volumes whose storage is searched.
const patternSeed = 0x5eed

// patternNeedles are 32-byte pieces of the first n bytes fillVolume writes
// with seed, one every 256 KiB.
func patternNeedles(t testing.TB, seed uint64, n int64) [][]byte {
	t.Helper()
	data := make([]byte, n)
	if _, err := io.ReadFull(randReader(seed, 0xf11e), data); err != nil {
		t.Fatal(err)
	}
	var needles [][]byte
	for off := int64(0); off+132 <= n; off += 256 << 10 {
		needles = append(needles, data[off+100:off+132])
	}
	return needles
}

// filesWith lists the files under dirs that contain any of needles.
func filesWith(t testing.TB, needles [][]byte, dirs ...string) []string {
	t.Helper()
	var found []string
	for _, dir := range dirs {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, n := range needles {
				if bytes.Contains(b, n) {
					found = append(found, path)
					break
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return found
}

// TestEncryptedVolumeSession is a user's session with an encrypted volume:
// a KMS key, an encrypted volume under it with ext4 and files, a snapshot,
// a volume from it and a copy, each clean and with every file as written;
// nothing written appears in the clear in the data dir or the snapshot
// store (a plaintext volume with the same data shows the search finds it);
// a disabled key stops reads and restores, saying why; a byte altered in
// the data file makes the read fail instead of returning altered data.
func TestEncryptedVolumeSession(t *testing.T) {
	requirePrereqs(t)
	d := startDaemon(t)
	var key struct{ KeyMetadata struct{ Arn string } }
	var vol volume
	var want map[string]string
	var snap snapshot
	const patternSize = 8 * mib

	step(t, "create-key, create-volume --encrypted --kms-key-id alias/db", func(t *testing.T) {
		d.mustJSON(t, d.mustCLI(t, "create-key", "--description", "db volumes", "--alias", "alias/db"), &key)
		d.mustJSON(t, d.mustCLI(t, "create-volume", "--size", "1GiB", "--encrypted", "--kms-key-id", "alias/db"), &vol)
		if !vol.Encrypted || vol.KmsKeyId != key.KeyMetadata.Arn {
			t.Fatalf("create-volume printed %+v, want encrypted under %s", vol, key.KeyMetadata.Arn)
		}
	})

	step(t, "ext4 with files on it through a loop device, one of them the pattern", func(t *testing.T) {
		lo := attachLoop(t, d.volumePath(vol.VolumeId))
		mkfsExt4(t, lo.Dev)
		m := mountDev(t, lo.Dev, t.TempDir())
		want = writeTree(t, m.Dir, 31, 80, 2*mib)
		writeRandomFile(t, filepath.Join(m.Dir, "pattern"), patternSeed, patternSize)
		want["pattern"] = fileSHA256(t, filepath.Join(m.Dir, "pattern"))
		m.unmount(t)
		lo.detach(t)
	})

	step(t, "create-snapshot: encrypted under the volume's key; wait", func(t *testing.T) {
		snap = d.createSnapshot(t, vol.VolumeId)
		d.waitSnapshotCompleted(t, snap.SnapshotId)
		got := d.describeSnapshots(t, "--snapshot-ids", snap.SnapshotId)
		if len(got) != 1 || !got[0].Encrypted || got[0].KmsKeyId != vol.KmsKeyId || got[0].DataEncryptionKeyId == "" || got[0].SseType != "sse-kms" {
			t.Fatalf("describe-snapshots: %+v", got)
		}
		snap = got[0]
	})

	step(t, "nothing of the data in the clear in the data dir or the store; a plaintext volume's is found", func(t *testing.T) {
		needles := patternNeedles(t, patternSeed, patternSize)
		if found := filesWith(t, needles, d.DataDir); len(found) > 0 {
			t.Fatalf("plaintext of the encrypted volume at rest in %v", found)
		}
		plain := d.createVolume(t, "64MiB")
		fillVolume(t, d.volumePath(plain.VolumeId), patternSeed, patternSize)
		ps := d.createSnapshot(t, plain.VolumeId)
		d.waitSnapshotCompleted(t, ps.SnapshotId)
		found := filesWith(t, needles, d.DataDir)
		var data, store bool
		for _, f := range found {
			data = data || strings.HasSuffix(f, plain.VolumeId+".data")
			store = store || strings.Contains(f, string(filepath.Separator)+"packs"+string(filepath.Separator))
		}
		if !data || !store {
			t.Fatalf("the same data on a plaintext volume was found only in %v: the search cannot see it", found)
		}
		d.mustCLI(t, "delete-snapshot", "--snapshot-id", ps.SnapshotId)
		d.mustCLI(t, "delete-volume", "--volume-id", plain.VolumeId)
	})

	var restored, copied volume
	step(t, "create-volume --snapshot-id: encrypted, the snapshot's lineage; e2fsck clean, files as written", func(t *testing.T) {
		d.mustJSON(t, d.mustCLI(t, "create-volume", "--snapshot-id", snap.SnapshotId), &restored)
		if !restored.Encrypted || restored.KmsKeyId != vol.KmsKeyId {
			t.Fatalf("volume from an encrypted snapshot: %+v", restored)
		}
		checkExt4(t, d, restored.VolumeId, want)
	})

	step(t, "copy-snapshot: a lineage of its own; a volume from the copy is clean", func(t *testing.T) {
		var cp struct{ SnapshotId string }
		d.mustJSON(t, d.mustCLI(t, "copy-snapshot", "--source-snapshot-id", snap.SnapshotId, "--description", "offsite"), &cp)
		d.waitSnapshotCompleted(t, cp.SnapshotId)
		got := d.describeSnapshots(t, "--snapshot-ids", cp.SnapshotId)
		if len(got) != 1 || !got[0].Encrypted || got[0].DataEncryptionKeyId == snap.DataEncryptionKeyId || got[0].VolumeId != "vol-ffffffff" {
			t.Fatalf("the copy: %+v (source lineage %s)", got, snap.DataEncryptionKeyId)
		}
		d.mustJSON(t, d.mustCLI(t, "create-volume", "--snapshot-id", cp.SnapshotId), &copied)
		checkExt4(t, d, copied.VolumeId, want)
	})

	step(t, "disable-key: the attached volume reads nothing, restores are refused; enable-key: all back", func(t *testing.T) {
		lo := attachLoop(t, d.volumePath(restored.VolumeId), true)
		defer lo.detach(t)
		d.mustCLI(t, "disable-key", "--key-id", "alias/db")
		r := run(cliTimeout, nil, "dd", "if="+lo.Dev, "of=/dev/null", "bs=1M", "count=4", "iflag=direct")
		if r.Code == 0 {
			t.Errorf("reading an encrypted volume with its key disabled succeeded: %s", r.Stderr)
		}
		_, stderr, code := d.cli(t, "create-volume", "--snapshot-id", snap.SnapshotId)
		if code != 254 || !strings.Contains(stderr, "(InvalidKMSKey.InvalidState)") || !strings.Contains(stderr, vol.KmsKeyId) {
			t.Errorf("create-volume from a snapshot whose key is disabled: exit %d, %s", code, stderr)
		}
		d.mustCLI(t, "enable-key", "--key-id", "alias/db")
		if r := run(cliTimeout, nil, "dd", "if="+lo.Dev, "of=/dev/null", "bs=1M", "count=4", "iflag=direct"); r.Code != 0 {
			t.Errorf("reading with the key enabled again: %s", r.Stderr)
		}
	})

	step(t, "a byte altered in the data file: the read fails, naming the volume", func(t *testing.T) {
		data := filepath.Join(d.DataDir, "volumes", copied.VolumeId+".data")
		f, err := os.OpenFile(data, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 1)
		f.ReadAt(b, 1000) // slot 0, sector 0: the first block written
		b[0] ^= 0x55
		if _, err := f.WriteAt(b, 1000); err != nil {
			t.Fatal(err)
		}
		f.Close()
		r := run(cliTimeout, nil, "dd", "if="+d.volumePath(copied.VolumeId), "of=/dev/null", "bs=64K", "iflag=direct")
		if r.Code == 0 || !strings.Contains(r.Stderr, "Input/output error") {
			t.Fatalf("reading a volume whose data file was altered: exit %d, %s", r.Code, r.Stderr)
		}
		if !strings.Contains(d.output(), "fails authentication") || !strings.Contains(d.output(), copied.VolumeId) {
			t.Errorf("the daemon log does not name the volume that failed authentication")
		}
	})
}

// checkExt4 attaches volume id read-only, checks its file system is clean
// and its files are as written.
func checkExt4(t *testing.T, d *daemon, id string, want map[string]string) {
	t.Helper()
	lo := attachLoop(t, d.volumePath(id), true)
	defer lo.detach(t)
	e2fsckClean(t, lo.Dev)
	m := mountDev(t, lo.Dev, t.TempDir(), "ro,noload")
	defer m.unmount(t)
	checkTree(t, m.Dir, want)
}

// TestEncryptedSnapshotsInS3: an encrypted snapshot in MinIO shows nothing
// of its data in MinIO's files (a plaintext snapshot of the same data
// does); a host sharing the keyring restores it, a host with a keyring of
// its own lists it as encrypted under the key but cannot restore it.
func TestEncryptedSnapshotsInS3(t *testing.T) {
	requirePrereqs(t)
	srv := miniotest.Start(t)
	url := srv.URL("cowvol-encrypted", "fleet")
	a := startS3Daemon(t, srv, url, "111111111111")
	const patternSize = 8 * mib
	needles := patternNeedles(t, patternSeed, patternSize)
	var vol volume
	var snap snapshot

	step(t, "host A: an encrypted volume with the pattern, snapshotted into MinIO", func(t *testing.T) {
		d := a
		d.mustJSON(t, d.mustCLI(t, "create-volume", "--size", "64MiB", "--encrypted"), &vol)
		fillVolume(t, d.volumePath(vol.VolumeId), patternSeed, patternSize)
		snap = d.createSnapshot(t, vol.VolumeId)
		d.waitSnapshotCompleted(t, snap.SnapshotId)
		if found := filesWith(t, needles, srv.DataDir(), a.DataDir); len(found) > 0 {
			t.Fatalf("plaintext of an encrypted snapshot found in %v", found)
		}
	})

	step(t, "host A: a plaintext snapshot of the same data shows in MinIO's files", func(t *testing.T) {
		plain := a.createVolume(t, "64MiB")
		fillVolume(t, a.volumePath(plain.VolumeId), patternSeed, patternSize)
		ps := a.createSnapshot(t, plain.VolumeId)
		a.waitSnapshotCompleted(t, ps.SnapshotId)
		if found := filesWith(t, needles, srv.DataDir()); len(found) == 0 {
			t.Fatal("the plaintext snapshot's data is not in MinIO's files: the search cannot see it")
		}
	})

	step(t, "host B, same keyring: restores it, the pattern reads back", func(t *testing.T) {
		b := startDaemon(t,
			withDaemonArgs("--snapshot-store", url, "--account-id", "111111111111"),
			withKeyring(a.Keyring), withEnv(srv.Env()...))
		var rv volume
		b.mustJSON(t, b.mustCLI(t, "create-volume", "--snapshot-id", snap.SnapshotId), &rv)
		if !rv.Encrypted {
			t.Fatalf("volume from an encrypted snapshot on host B: %+v", rv)
		}
		got, err := os.ReadFile(b.volumePath(rv.VolumeId))
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range needles {
			if !bytes.Contains(got[:patternSize], n) {
				t.Fatal("the restored volume does not hold the pattern")
			}
		}
	})

	step(t, "host C, a keyring of its own: lists it encrypted under A's key once shared, cannot restore it", func(t *testing.T) {
		c := startS3Daemon(t, srv, url, "333333333333")
		a.mustCLI(t, "modify-snapshot-attribute", "--snapshot-id", snap.SnapshotId, "--operation-type", "add", "--user-ids", "333333333333")
		var s []snapshot
		// The grant reaches C's catalogue at its next refresh (5 s).
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
			if s = c.describeSnapshots(t); len(s) == 1 {
				break
			}
		}
		if len(s) != 1 || !s[0].Encrypted || s[0].KmsKeyId != vol.KmsKeyId {
			t.Fatalf("host C describes %+v", s)
		}
		_, stderr, code := c.cli(t, "create-volume", "--snapshot-id", snap.SnapshotId)
		if code != 254 || !strings.Contains(stderr, "(InvalidKMSKey.NotFound)") {
			t.Fatalf("host C restores another keyring's snapshot: exit %d, %s", code, stderr)
		}
	})
}
