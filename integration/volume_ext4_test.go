package integration

import (
	"os"
	"syscall"
	"testing"
	"time"
)

// A user puts ext4 on a volume through a loop device, fills it, and the
// daemon is SIGKILLed: after a restart the file system is clean and every
// file reads back exactly.
func TestVolumeExt4SurvivesKill9(t *testing.T) {
	requirePrereqs(t)
	d := startDaemon(t)
	var vol volume
	var want map[string]string

	step(t, "create a 1 GiB volume tagged team=db", func(t *testing.T) {
		vol = d.createVolume(t, "1GiB", "team=db")
		if vol.Size != 1 || vol.SizeBytes != gib {
			t.Errorf("Size %d GiB, SizeBytes %d; want 1 GiB, %d", vol.Size, vol.SizeBytes, gib)
		}
		if v, _ := vol.tag("team"); v != "db" {
			t.Errorf("Tags %+v, want team=db", vol.Tags)
		}
		if vol.State != "available" && vol.State != "creating" {
			t.Errorf("State %q, want available (or creating)", vol.State)
		}
	})

	step(t, "the volume file is in the mount and is 1 GiB", func(t *testing.T) {
		requireVolumeFile(t, d, vol.VolumeId, gib)
	})

	step(t, "losetup, mkfs.ext4, mount, write 200 files, sync, umount, losetup -d", func(t *testing.T) {
		lo := attachLoop(t, d.volumePath(vol.VolumeId))
		if !lo.directIO() {
			t.Errorf("%s runs without direct I/O (loop/dio=0): the volume file did not accept O_DIRECT", lo.Dev)
		}
		mkfsExt4(t, lo.Dev)
		m := mountDev(t, lo.Dev, t.TempDir())
		want = writeTree(t, m.Dir, 1, 200, 256*kib)
		syscall.Sync()
		m.unmount(t)
		lo.detach(t)
	})

	step(t, "kill -9 the daemon and start it again", func(t *testing.T) {
		d.kill9(t)
		d.restart(t)
		requireVolumeFile(t, d, vol.VolumeId, gib)
	})

	step(t, "losetup again: e2fsck -fn is clean and every file matches", func(t *testing.T) {
		lo := attachLoop(t, d.volumePath(vol.VolumeId))
		e2fsckClean(t, lo.Dev)
		m := mountDev(t, lo.Dev, t.TempDir())
		checkTree(t, m.Dir, want)
	})

	step(t, "describe-volumes lists it, tagged, available again", func(t *testing.T) {
		v := waitVolumeState(t, d, vol.VolumeId, "available", 5*time.Second)
		if v.Size != 1 {
			t.Errorf("Size %d, want 1", v.Size)
		}
		if val, _ := v.tag("team"); val != "db" {
			t.Errorf("Tags %+v, want team=db", v.Tags)
		}
		vs := d.describeVolumes(t, "--filter", "tag:team=db")
		if len(vs) != 1 || vs[0].VolumeId != vol.VolumeId {
			t.Errorf("describe-volumes --filter tag:team=db = %+v, want just %s", vs, vol.VolumeId)
		}
		if vs := d.describeVolumes(t, "--filter", "tag:team=web"); len(vs) != 0 {
			t.Errorf("describe-volumes --filter tag:team=web = %+v, want none", vs)
		}
	})
}

// requireVolumeFile fails the test unless <mount>/<id> is a regular file of size bytes.
func requireVolumeFile(t testing.TB, d *daemon, id string, size int64) {
	t.Helper()
	fi, err := os.Stat(d.volumePath(id))
	if err != nil {
		t.Fatalf("volume file: %v", err)
	}
	if !fi.Mode().IsRegular() || fi.Size() != size {
		t.Fatalf("%s: mode %v size %d, want a regular file of %d bytes", d.volumePath(id), fi.Mode(), fi.Size(), size)
	}
}

// waitVolumeState polls describe-volumes until the volume is in state (the
// kernel releases a detached loop device's file asynchronously, so "in-use"
// may linger a moment) and returns it; it fails the test after timeout.
func waitVolumeState(t testing.TB, d *daemon, id, state string, timeout time.Duration) volume {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		v := d.describeVolume(t, id)
		if v.State == state {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("volume %s is %q after %v, want %q", id, v.State, timeout, state)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
