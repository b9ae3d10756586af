package integration

import (
	"os"
	"strings"
	"testing"
	"time"
)

// A volume attached to a loop device cannot be deleted; once detached it can,
// and then its file, its metadata and its space are gone.
func TestDeleteVolumeWhileAttached(t *testing.T) {
	requirePrereqs(t)
	d := startDaemon(t)
	var vol volume
	var written int64

	step(t, "create a 1 GiB volume and write 64 MiB to it", func(t *testing.T) {
		vol = d.createVolume(t, "1GiB")
		fillVolume(t, d.volumePath(vol.VolumeId), 3, 64*mib)
		written = mustDiskUsage(t, d.DataDir)
		t.Logf("data dir usage with 64 MiB written: %s", humanBytes(written))
	})

	// Attached for the next steps; detached explicitly below (and in cleanup on failure).
	lo := attachLoop(t, d.volumePath(vol.VolumeId))

	step(t, "delete-volume is refused with VolumeInUse", func(t *testing.T) {
		_, stderr, code := d.cli(t, "delete-volume", "--volume-id", vol.VolumeId)
		if code != awsErrorExit || !strings.Contains(stderr, "(VolumeInUse)") {
			t.Errorf("delete-volume of an attached volume: exit %d, stderr %q; want exit %d and (VolumeInUse)", code, stderr, awsErrorExit)
		}
		requireVolumeFile(t, d, vol.VolumeId, gib)
	})

	step(t, "describe-volumes shows it in-use", func(t *testing.T) {
		if v := d.describeVolume(t, vol.VolumeId); v.State != "in-use" {
			t.Errorf("State %q while attached to %s, want in-use", v.State, lo.Dev)
		}
	})

	step(t, "losetup -d, then delete-volume succeeds", func(t *testing.T) {
		lo.detach(t)
		// The kernel sends FUSE RELEASE asynchronously after the loop device
		// lets go of the file, so allow the daemon a moment to see it closed.
		deadline := time.Now().Add(5 * time.Second)
		for {
			_, stderr, code := d.cli(t, "delete-volume", "--volume-id", vol.VolumeId)
			if code == 0 {
				break
			}
			if !strings.Contains(stderr, "(VolumeInUse)") || time.Now().After(deadline) {
				t.Fatalf("delete-volume after detach: exit %d: %s", code, stderr)
			}
			t.Logf("still VolumeInUse right after detach; retrying")
			time.Sleep(200 * time.Millisecond)
		}
	})

	step(t, "the volume file and the volume are gone", func(t *testing.T) {
		if _, err := os.Stat(d.volumePath(vol.VolumeId)); !os.IsNotExist(err) {
			t.Errorf("stat %s after delete-volume: %v, want not exist", d.volumePath(vol.VolumeId), err)
		}
		_, stderr, code := d.cli(t, "describe-volumes", "--volume-ids", vol.VolumeId)
		if code != awsErrorExit || !strings.Contains(stderr, "(InvalidVolume.NotFound)") {
			t.Errorf("describe-volumes --volume-ids %s after delete: exit %d, stderr %q; want exit %d and (InvalidVolume.NotFound)",
				vol.VolumeId, code, stderr, awsErrorExit)
		}
		if vs := d.describeVolumes(t); len(vs) != 0 {
			t.Errorf("describe-volumes after delete lists %+v, want none", vs)
		}
	})

	step(t, "its data no longer takes space in the data dir", func(t *testing.T) {
		limit := written - 56*mib
		u := waitUsage(t, d.DataDir, 30*time.Second, func(n int64) bool { return n <= limit })
		t.Logf("data dir usage after delete-volume: %s (%s before)", humanBytes(u), humanBytes(written))
		if u > limit {
			t.Errorf("data dir uses %s after deleting a volume holding 64 MiB (%s before), want at most %s",
				humanBytes(u), humanBytes(written), humanBytes(limit))
		}
	})
}
