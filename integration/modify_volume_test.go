package integration

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// volumeModification is a modification as the CLI prints it.
type volumeModification struct {
	VolumeId          string
	ModificationState string
	TargetSize        int64
	OriginalSize      int64
	Progress          int64
	StartTime         string
	EndTime           string
}

// A user grows a volume under a mounted ext4 file system: modify-volume,
// then resize2fs on the mounted file system; df shows the new size, every
// file keeps its checksum, a snapshot before and one after have the two
// sizes, and the modification is still described after a restart.
func TestModifyVolumeGrowsMountedExt4(t *testing.T) {
	requirePrereqs(t)
	d := startDaemon(t)
	top := t // mounts made in a step outlive it
	vol := d.createVolume(t, "1GiB")
	lo := attachLoop(t, d.volumePath(vol.VolumeId))
	mkfsExt4(t, lo.Dev)
	m := mountDev(t, lo.Dev, t.TempDir())
	want := writeTree(t, m.Dir, 7, 60, 256*kib)
	syscall.Sync()
	before := d.createSnapshot(t, vol.VolumeId)

	step(t, "bad input is refused with EC2's codes and changes nothing", func(t *testing.T) {
		for _, tt := range []struct {
			args []string
			code string
		}{
			{[]string{"--size", "1"}, "InvalidParameterValue"},
			{[]string{"--size", "2", "--volume-type", "gp3"}, "InvalidParameterValue"},
			{[]string{"--size", "2", "--dry-run"}, "DryRunOperation"},
		} {
			_, stderr, code := d.cli(t, append([]string{"modify-volume", "--volume-id", vol.VolumeId}, tt.args...)...)
			if code == 0 || !strings.Contains(stderr, tt.code) {
				t.Errorf("modify-volume %v: exit %d, stderr %q; want %s", tt.args, code, stderr, tt.code)
			}
		}
		if _, stderr, code := d.cli(t, "modify-volume", "--volume-id", "vol-0123456789abcdef0", "--size", "2"); code == 0 ||
			!strings.Contains(stderr, "InvalidVolume.NotFound") {
			t.Errorf("unknown volume: exit %d, %q", code, stderr)
		}
		if v := d.describeVolume(t, vol.VolumeId); v.SizeBytes != gib {
			t.Errorf("size %d after refused modifications", v.SizeBytes)
		}
	})

	step(t, "modify-volume --size 2: the file and the loop device are 2 GiB", func(t *testing.T) {
		var out struct{ VolumeModification volumeModification }
		d.mustJSON(t, d.mustCLI(t, "modify-volume", "--volume-id", vol.VolumeId, "--size", "2"), &out)
		mod := out.VolumeModification
		if mod.ModificationState != "modifying" || mod.OriginalSize != 1 || mod.TargetSize != 2 || mod.StartTime == "" {
			t.Errorf("modify-volume printed %+v", mod)
		}
		if fi, err := os.Stat(d.volumePath(vol.VolumeId)); err != nil || fi.Size() != 2*gib {
			t.Fatalf("volume file after the grow: %v, %v", fi, err)
		}
		if got := loopSizeBytes(t, lo.Dev); got != 2*gib {
			t.Fatalf("%s is %d bytes after the grow, want %d", lo.Dev, got, 2*gib)
		}
	})

	step(t, "resize2fs on the mounted file system: df shows about 2 GiB, files intact", func(t *testing.T) {
		if hasCapability(capSysResource) {
			mustRun(t, "resize2fs", lo.Dev)
		} else {
			// The kernel grows a mounted ext4 only for a caller with
			// CAP_SYS_RESOURCE (EXT4_IOC_RESIZE_FS): without it, the
			// same grow offline, on the same loop device.
			t.Logf("this process lacks CAP_SYS_RESOURCE: ext4 refuses an online resize (EPERM); resizing offline instead")
			m.unmount(t)
			mustRun(t, "e2fsck", "-fy", lo.Dev)
			mustRun(t, "resize2fs", lo.Dev)
			m = mountDev(top, lo.Dev, m.Dir)
		}
		var st syscall.Statfs_t
		if err := syscall.Statfs(m.Dir, &st); err != nil {
			t.Fatal(err)
		}
		if total := int64(st.Blocks) * st.Bsize; total < 19*gib/10 {
			t.Errorf("df: %d bytes after resize2fs, want about 2 GiB", total)
		}
		t.Logf("df after resize2fs: %d bytes", int64(st.Blocks)*st.Bsize)
		checkTree(t, m.Dir, want)
		more := writeTree(t, m.Dir, 8, 10, 256*kib)
		for k, v := range more {
			want[k] = v
		}
		syscall.Sync()
	})

	step(t, "describe-volumes-modifications: completed, 100%, with its end time", func(t *testing.T) {
		var out struct{ VolumesModifications []volumeModification }
		d.mustJSON(t, d.mustCLI(t, "describe-volumes-modifications", "--volume-ids", vol.VolumeId), &out)
		if len(out.VolumesModifications) != 1 {
			t.Fatalf("modifications %+v", out.VolumesModifications)
		}
		mod := out.VolumesModifications[0]
		if mod.ModificationState != "completed" || mod.Progress != 100 || mod.EndTime < mod.StartTime || mod.TargetSize != 2 {
			t.Errorf("modification %+v", mod)
		}
	})

	step(t, "snapshots before and after the grow have the two sizes", func(t *testing.T) {
		after := d.createSnapshot(t, vol.VolumeId)
		d.waitSnapshotCompleted(t, before.SnapshotId)
		d.waitSnapshotCompleted(t, after.SnapshotId)
		sizes := map[string]int64{}
		for _, s := range d.describeSnapshots(t, "--snapshot-ids", before.SnapshotId, "--snapshot-ids", after.SnapshotId) {
			sizes[s.SnapshotId] = s.VolumeSize
		}
		if sizes[before.SnapshotId] != 1 || sizes[after.SnapshotId] != 2 {
			t.Errorf("snapshot sizes %v: want %s 1 GiB, %s 2 GiB", sizes, before.SnapshotId, after.SnapshotId)
		}
	})

	step(t, "after umount and a restart: 2 GiB, the modification described, e2fsck clean", func(t *testing.T) {
		m.unmount(t)
		lo.detach(t)
		if err := d.stop(t); err != nil {
			t.Fatal(err)
		}
		d.restart(t)
		if v := d.describeVolume(t, vol.VolumeId); v.SizeBytes != 2*gib || v.Size != 2 {
			t.Errorf("after restart: %+v", v)
		}
		var out struct{ VolumesModifications []volumeModification }
		d.mustJSON(t, d.mustCLI(t, "describe-volumes-modifications"), &out)
		if len(out.VolumesModifications) != 1 || out.VolumesModifications[0].ModificationState != "completed" {
			t.Errorf("modifications after restart: %+v", out.VolumesModifications)
		}
		lo2 := attachLoop(t, d.volumePath(vol.VolumeId))
		e2fsckClean(t, lo2.Dev)
		m2 := mountDev(t, lo2.Dev, t.TempDir())
		checkTree(t, m2.Dir, want)
	})
}

// loopSizeBytes is a block device's size as the kernel has it
// (/sys/block/NAME/size, in 512-byte sectors).
func loopSizeBytes(t testing.TB, dev string) int64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/sys/block", filepath.Base(dev), "size"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n * 512
}

// capSysResource is CAP_SYS_RESOURCE's bit (linux/capability.h).
const capSysResource = 24

// hasCapability reports whether this process has capability bit cap in
// its effective set (/proc/self/status, CapEff).
func hasCapability(cap uint) bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && n&(1<<cap) != 0
		}
	}
	return false
}
