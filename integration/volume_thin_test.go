package integration

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A 1 TiB volume costs what is written to it, and what the file system
// discards (fstrim) is given back.
func TestThinProvisioningAndDiscard(t *testing.T) {
	requirePrereqs(t)
	d := startDaemon(t)
	var vol volume

	step(t, "create a 1 TiB volume", func(t *testing.T) {
		vol = d.createVolume(t, "1TiB")
		if vol.Size != 1024 || vol.SizeBytes != 1<<40 {
			t.Errorf("Size %d GiB, SizeBytes %d; want 1024 GiB, %d", vol.Size, vol.SizeBytes, int64(1)<<40)
		}
		requireVolumeFile(t, d, vol.VolumeId, 1<<40)
	})

	// The file system stays attached and mounted for the rest of the session.
	// noinit_itable keeps ext4's background inode-table zeroing (ext4lazyinit)
	// from writing while usage is measured.
	lo := attachLoop(t, d.volumePath(vol.VolumeId))
	mkfsExt4(t, lo.Dev)
	m := mountDev(t, lo.Dev, t.TempDir(), "noinit_itable")
	big := filepath.Join(m.Dir, "big")
	var base int64

	step(t, "after mkfs.ext4 and mount the data dir is still small", func(t *testing.T) {
		base = mustDiskUsage(t, d.DataDir)
		t.Logf("data dir usage after mkfs.ext4 of 1 TiB and mount: %s", humanBytes(base))
		if base > 256*mib {
			t.Errorf("data dir uses %s after mkfs.ext4 (lazy init) of an empty 1 TiB volume, want < 256 MiB", humanBytes(base))
		}
	})

	step(t, "write a 1 GiB file and fsync: the data dir grows by about 1 GiB", func(t *testing.T) {
		start := time.Now()
		writeRandomFile(t, big, 2, gib)
		t.Logf("wrote 1 GiB through ext4 on the loop device in %v", time.Since(start).Round(time.Millisecond))
		u := mustDiskUsage(t, d.DataDir)
		t.Logf("data dir usage: %s (%s before)", humanBytes(u), humanBytes(base))
		if u < gib*9/10 || u > gib*13/10 {
			t.Errorf("data dir uses %s after writing 1 GiB to a 1 TiB volume, want 0.9..1.3 GiB", humanBytes(u))
		}
	})

	step(t, "delete the file and fstrim: the space comes back", func(t *testing.T) {
		if err := os.Remove(big); err != nil {
			t.Fatal(err)
		}
		// ext4 frees the blocks at journal commit; commit before trimming.
		syscall.Sync()
		out := mustRun(t, "fstrim", "-v", m.Dir)
		t.Logf("fstrim: %s", strings.TrimSpace(out))
		limit := base + 3*gib/10
		u := waitUsage(t, d.DataDir, 30*time.Second, func(n int64) bool { return n < limit })
		t.Logf("data dir usage after fstrim: %s (%s before the write)", humanBytes(u), humanBytes(base))
		if u >= limit {
			t.Errorf("data dir uses %s after deleting the 1 GiB file and fstrim, want < %s (pre-write %s + 0.3 GiB)",
				humanBytes(u), humanBytes(limit), humanBytes(base))
		}
	})
}
