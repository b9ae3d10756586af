package integration

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cowvol/cowvol/cow/snapstore"
	"github.com/cowvol/cowvol/cow/snapstore/miniotest"
)

// Two hosts share one snapshot store in S3-compatible object storage (a
// real MinIO on loopback): separate daemons, data dirs, mounts and sockets,
// one bucket.

func startS3Daemon(t testing.TB, srv *miniotest.Server, url, account string, args ...string) *daemon {
	t.Helper()
	return startDaemon(t,
		withDaemonArgs(append([]string{"--snapshot-store", url, "--account-id", account}, args...)...),
		withEnv(srv.Env()...))
}

// Host A makes ext4 on a volume, writes files, snapshots and waits for
// completed; host B lists the snapshot (owned by A's account), creates a
// volume from it while A deletes the snapshot, and finds it e2fsck-clean
// with every file's checksum as written.
func TestTwoHostsShareS3SnapshotStore(t *testing.T) {
	requirePrereqs(t)
	srv := miniotest.Start(t)
	url := srv.URL("cowvol-fleet", "region-1")
	a := startS3Daemon(t, srv, url, "111111111111")
	b := startS3Daemon(t, srv, url, "222222222222")
	vol := a.createVolume(t, "1GiB")
	var want map[string]string
	var snap snapshot

	step(t, "host A: ext4 with files on a volume, unmounted", func(t *testing.T) {
		lo := attachLoop(t, a.volumePath(vol.VolumeId))
		mkfsExt4(t, lo.Dev)
		m := mountDev(t, lo.Dev, t.TempDir())
		want = writeTree(t, m.Dir, 21, 120, 2*mib)
		m.unmount(t)
		lo.detach(t)
	})

	step(t, "host A: create-snapshot, wait snapshot-completed", func(t *testing.T) {
		snap = a.createSnapshot(t, vol.VolumeId, "--description", "from host A")
		a.waitSnapshotCompleted(t, snap.SnapshotId)
	})

	var rv volume
	// (control's TestForeignSnapshotsHiddenUntilShared checks the same with
	// the snapshot known to B's catalogue, and naming it.)
	step(t, "host B neither lists nor restores it until host A's account shares it (modify-snapshot-attribute)", func(t *testing.T) {
		if got := b.describeSnapshots(t); len(got) != 0 {
			t.Errorf("host B lists %+v before A shares anything, want nothing (as EC2)", got)
		}
		if _, stderr, code := b.cli(t, "create-volume", "--snapshot-id", snap.SnapshotId); code != 254 || !strings.Contains(stderr, "(InvalidSnapshot.NotFound)") {
			t.Fatalf("host B restores an unshared snapshot: exit %d, %s", code, stderr)
		}
		a.mustCLI(t, "modify-snapshot-attribute", "--snapshot-id", snap.SnapshotId, "--operation-type", "add", "--user-ids", "222222222222")
		a.mustCLI(t, "create-tags", "--resources", snap.SnapshotId, "--tags", "Key=shared,Value=with-b")
		deadline := time.Now().Add(30 * time.Second)
		for {
			got := b.describeSnapshots(t, "--snapshot-ids", snap.SnapshotId)
			if len(got) == 1 && len(got[0].Tags) == 1 && got[0].Tags[0].Key == "shared" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("host B never saw host A's tag: %+v", got)
			}
			time.Sleep(250 * time.Millisecond)
		}
		if got := b.describeSnapshots(t); len(got) != 1 || got[0].SnapshotId != snap.SnapshotId || got[0].State != "completed" ||
			got[0].OwnerId != "111111111111" || got[0].Description != "from host A" || got[0].VolumeId != vol.VolumeId || got[0].VolumeSize != 1 {
			t.Errorf("host B lists %+v once shared, want A's snapshot", got)
		}
		if got := b.describeSnapshots(t, "--owner-ids", "222222222222"); len(got) != 0 {
			t.Errorf("host B's own snapshots: %+v, want none", got)
		}
		if out := b.mustCLI(t, "describe-snapshot-attribute", "--snapshot-id", snap.SnapshotId, "--attribute", "createVolumePermission",
			"--query", "CreateVolumePermissions[*].UserId", "--output", "text"); strings.TrimSpace(out) != "222222222222" {
			t.Errorf("host B sees the grants %q", out)
		}
	})

	step(t, "host B: create-volume --snapshot-id; host A deletes the snapshot meanwhile", func(t *testing.T) {
		b.mustJSON(t, b.mustCLI(t, "create-volume", "--snapshot-id", snap.SnapshotId), &rv)
		if rv.SnapshotId != snap.SnapshotId || rv.SizeBytes != gib {
			t.Fatalf("restored volume %+v", rv)
		}
		a.mustCLI(t, "delete-snapshot", "--snapshot-id", snap.SnapshotId)
	})

	step(t, "host B: e2fsck -fn clean, every file's checksum matches", func(t *testing.T) {
		rl := attachLoop(t, b.volumePath(rv.VolumeId))
		e2fsckClean(t, rl.Dev)
		rm := mountDev(t, rl.Dev, t.TempDir())
		checkTree(t, rm.Dir, want)
	})

	step(t, "host B: the deleted snapshot drops out of its listing", func(t *testing.T) {
		deadline := time.Now().Add(30 * time.Second)
		for len(b.describeSnapshots(t)) != 0 {
			if time.Now().After(deadline) {
				t.Fatal("host B still lists the snapshot host A deleted")
			}
			time.Sleep(250 * time.Millisecond)
		}
	})
}

// The S3 server is killed (by PID) in the middle of a flush: the snapshot
// stays pending and is visible to no other host while the server is down;
// when the server is back it completes, and another host restores exactly
// the volume's content at the call.
func TestS3ServerKilledMidFlush(t *testing.T) {
	requirePrereqs(t)
	srv := miniotest.Start(t)
	url := srv.URL("cowvol-kill", "")
	a := startS3Daemon(t, srv, url, "111111111111", "--flush-deadline", "10m")
	b := startS3Daemon(t, srv, url, "222222222222")
	vol := a.createVolume(t, "2GiB")
	const size = 768 * mib
	var sum string
	var snap snapshot

	step(t, "fill 768 MiB of the volume with random data", func(t *testing.T) {
		fillVolume(t, a.volumePath(vol.VolumeId), 5, size)
		sum = fileSHA256(t, a.volumePath(vol.VolumeId))
	})

	step(t, "create-snapshot; kill the S3 server while it flushes", func(t *testing.T) {
		snap = a.createSnapshot(t, vol.VolumeId)
		deadline := time.Now().Add(time.Minute)
		for {
			got := a.describeSnapshots(t, "--snapshot-ids", snap.SnapshotId)
			if got[0].State != "pending" {
				t.Fatalf("the flush ended before the kill: %+v (make the volume bigger)", got[0])
			}
			if got[0].Progress != "0%" || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Logf("killing MinIO (pid %d)", srv.PID())
		srv.Stop()
	})

	step(t, "while the server is down the snapshot stays pending, and host B does not see it", func(t *testing.T) {
		// Once an attempt has failed, the volume has an event saying so
		// (and stays ok); then, not after a fixed wait, the snapshot must
		// still be pending and host B must not list it.
		deadline := time.Now().Add(2 * time.Minute)
		for {
			out := a.mustCLI(t, "describe-volume-status", "--volume-ids", vol.VolumeId, "--query",
				"VolumeStatuses[0].[VolumeStatus.Status,Events[0].EventType,Events[0].Description]", "--output", "text")
			if strings.HasPrefix(out, "ok\tsnapshot-flush-retrying\t") && strings.Contains(out, snap.SnapshotId) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("describe-volume-status while the flush fails: %q", out)
			}
			time.Sleep(time.Second)
		}
		got := a.describeSnapshots(t, "--snapshot-ids", snap.SnapshotId)
		if got[0].State != "pending" {
			t.Fatalf("with the store down: %+v", got[0])
		}
		if got := b.describeSnapshots(t); len(got) != 0 {
			t.Fatalf("host B lists %+v", got)
		}
	})

	step(t, "restart the server: the snapshot completes; no partial manifest was ever stored", func(t *testing.T) {
		if err := srv.Restart(); err != nil {
			t.Fatal(err)
		}
		a.waitSnapshotCompleted(t, snap.SnapshotId)
		st, err := snapstore.Open(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		var manifests []string
		st.List(context.Background(), "snapshots/", func(o snapstore.ObjectInfo) error {
			manifests = append(manifests, o.Key)
			return nil
		})
		if len(manifests) != 1 || !strings.Contains(manifests[0], snap.SnapshotId) {
			t.Fatalf("manifests in the bucket: %v", manifests)
		}
	})

	step(t, "host B restores it: the same bytes as at the call", func(t *testing.T) {
		a.mustCLI(t, "modify-snapshot-attribute", "--snapshot-id", snap.SnapshotId, "--operation-type", "add", "--user-ids", "222222222222")
		var rv volume
		b.mustJSON(t, b.mustCLI(t, "create-volume", "--snapshot-id", snap.SnapshotId), &rv)
		if got := fileSHA256(t, b.volumePath(rv.VolumeId)); got != sum {
			t.Fatalf("restored volume's SHA-256 %s, want %s", got, sum)
		}
	})
}

func fileSHA256(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatalf("read %s: %v", filepath.Base(path), err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// A daemon pointed at an S3 store it cannot use exits at start with a
// message naming the store, and leaves no mount or socket behind.
func TestDaemonRefusesUnusableS3Store(t *testing.T) {
	requirePrereqs(t)
	srv := miniotest.Start(t)
	for _, c := range []struct {
		name, url string
		env       []string
		want      string
	}{
		{"no server at the endpoint", "s3://b?endpoint=http://127.0.0.1:1&max-attempts=2", srv.Env(), "cannot reach or use bucket"},
		{"wrong credentials", srv.URL("b", ""), append(srv.Env(), "AWS_SECRET_ACCESS_KEY=wrong"), "cannot reach or use bucket"},
		{"an invalid bucket name", srv.URL("Not_A_Bucket", ""), srv.Env(), `cannot reach or use bucket \"Not_A_Bucket\"`},
	} {
		step(t, c.name, func(t *testing.T) {
			d := newDaemon(t, withDaemonArgs("--snapshot-store", c.url), withEnv(c.env...))
			d.start(t)
			err, exited := d.waitExit(60 * time.Second)
			if !exited || err == nil {
				t.Fatalf("daemon: exited %v (%v), want a quick failure", exited, exitString(err))
			}
			if out := d.output(); !strings.Contains(out, c.want) {
				t.Fatalf("daemon's message does not contain %q:\n%s", c.want, out)
			}
			if isMountpoint(t, d.MountDir) {
				t.Error("the daemon left its mount behind")
			}
		})
	}
}

// With the S3 server down for longer than --flush-deadline the snapshot ends
// in state error; nothing of it is visible in the bucket when the server is
// back, and the volume's next snapshot completes with the volume's content.
func TestS3ServerDownPastFlushDeadline(t *testing.T) {
	requirePrereqs(t)
	srv := miniotest.Start(t)
	url := srv.URL("cowvol-deadline", "") + "&max-attempts=2"
	a := startS3Daemon(t, srv, url, "111111111111", "--flush-deadline", "3s")
	vol := a.createVolume(t, "1GiB")
	fillVolume(t, a.volumePath(vol.VolumeId), 8, 64*mib)
	sum := fileSHA256(t, a.volumePath(vol.VolumeId))
	srv.Stop()
	snap := a.createSnapshot(t, vol.VolumeId)

	step(t, "the snapshot ends in state error", func(t *testing.T) {
		deadline := time.Now().Add(2 * time.Minute)
		for {
			got := a.describeSnapshots(t, "--snapshot-ids", snap.SnapshotId)
			if got[0].State == "error" {
				break
			}
			if got[0].State != "pending" || time.Now().After(deadline) {
				t.Fatalf("snapshot %+v, want pending then error", got[0])
			}
			time.Sleep(500 * time.Millisecond)
		}
		_, stderr, code := a.cli(t, "wait", "snapshot-completed", "--snapshot-ids", snap.SnapshotId)
		if code != 255 || !strings.Contains(stderr, "Waiter SnapshotCompleted failed") {
			t.Fatalf("wait: exit %d, %s", code, stderr)
		}
	})

	step(t, "server back: no manifest in the bucket; the next snapshot completes and restores", func(t *testing.T) {
		if err := srv.Restart(); err != nil {
			t.Fatal(err)
		}
		st, err := snapstore.Open(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		var manifests []string
		st.List(context.Background(), "snapshots/", func(o snapstore.ObjectInfo) error {
			manifests = append(manifests, o.Key)
			return nil
		})
		if len(manifests) != 0 {
			t.Fatalf("manifests of a failed snapshot: %v", manifests)
		}
		next := a.createSnapshot(t, vol.VolumeId)
		a.waitSnapshotCompleted(t, next.SnapshotId)
		var rv volume
		a.mustJSON(t, a.mustCLI(t, "create-volume", "--snapshot-id", next.SnapshotId), &rv)
		if got := fileSHA256(t, a.volumePath(rv.VolumeId)); got != sum {
			t.Fatalf("restored volume's SHA-256 %s, want %s", got, sum)
		}
	})
}
