package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A user gives create-snapshot --freeze a directory that is not the mount
// point of a file system on the volume's loop device: the root file
// system's directory, the data dir, a directory that is no mount point, a
// tmpfs, another volume's file system, the same file system twice. Each is
// refused before anything is frozen or snapshotted (exit 252, saying why);
// then the right mount point works, and so does a dry run of it.
func TestFreezeRefusesWhatIsNotTheVolume(t *testing.T) {
	requirePrereqs(t)
	d := startDaemon(t)
	vol := d.createVolume(t, "256MiB")
	other := d.createVolume(t, "256MiB")
	mount := func(id string) *fsMount {
		lo := attachLoop(t, d.volumePath(id))
		mkfsExt4(t, lo.Dev)
		return mountDev(t, lo.Dev, t.TempDir())
	}
	m, mOther := mount(vol.VolumeId), mount(other.VolumeId)
	bind := t.TempDir()
	mustRun(t, "mount", "--bind", m.Dir, bind)
	t.Cleanup(func() { run(cmdTimeout, nil, tool(t, "umount"), bind) })
	tmpfs := t.TempDir()
	mustRun(t, "mount", "-t", "tmpfs", "-o", "size=1m", "cowvoltest", tmpfs)
	t.Cleanup(func() { run(cmdTimeout, nil, tool(t, "umount"), tmpfs) })
	notMounted := t.TempDir()

	snapshots := func() int { return len(d.describeSnapshots(t, "--filter", "volume-id="+vol.VolumeId)) }
	before := snapshots()
	for _, tc := range []struct {
		name   string
		freeze []string
		stderr string
	}{
		{"the root file system", []string{"/"}, "--freeze /: the file system mounted there"},
		{"the data dir", []string{d.DataDir}, "--freeze " + d.DataDir + ": not a mount point"},
		{"a directory that is no mount point", []string{notMounted}, "--freeze " + notMounted + ": not a mount point"},
		{"a missing directory", []string{"/nonexistent/cowvol"}, "--freeze /nonexistent/cowvol: no such directory"},
		{"tmpfs", []string{tmpfs}, "--freeze " + tmpfs + ": the file system mounted there (cowvoltest, tmpfs) is not on a loop device"},
		{"another volume's file system", []string{mOther.Dir}, "not volume " + vol.VolumeId + "'s file"},
		{"the right one, then another", []string{m.Dir, mOther.Dir}, "not volume " + vol.VolumeId + "'s file"},
		{"the same file system twice", []string{m.Dir, bind}, "--freeze " + bind + ": the same file system as --freeze " + m.Dir},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			for _, dry := range []bool{false, true} {
				args := []string{"create-snapshot", "--volume-id", vol.VolumeId}
				for _, dir := range tc.freeze {
					args = append(args, "--freeze", dir)
				}
				if dry {
					args = append(args, "--dry-run")
				}
				start := time.Now()
				stdout, stderr, code := d.cli(t, args...)
				if code != 252 || stdout != "" || !strings.Contains(stderr, "cowvol: create-snapshot: ") || !strings.Contains(stderr, tc.stderr) {
					t.Errorf("dry run %v: exit %d, stdout %q, stderr %q; want 252 saying %q", dry, code, stdout, stderr, tc.stderr)
				}
				if took := time.Since(start); took > frozenProbeLimit {
					t.Errorf("the refusal took %v: something was frozen?", took)
				}
			}
			if n := snapshots(); n != before {
				t.Errorf("%d snapshots of the volume after a refused --freeze, want %d", n, before)
			}
			// Nothing was left frozen: the volume's file system takes a synced write.
			p := filepath.Join(m.Dir, "probe")
			if err := probeWritable(p, frozenProbeLimit); err != nil {
				t.Errorf("the volume's file system after a refused --freeze: %v", err)
			}
		})
	}

	step(t, "the volume's own mount point works", func(t *testing.T) {
		_, stderr, code := d.cli(t, "create-snapshot", "--volume-id", vol.VolumeId, "--freeze", m.Dir, "--dry-run")
		if code != 254 || !strings.Contains(stderr, "DryRunOperation") {
			t.Errorf("dry run with the right mount point: exit %d, %q; want 254 DryRunOperation", code, stderr)
		}
		s := d.createSnapshot(t, vol.VolumeId, "--freeze", m.Dir)
		if s.VolumeId != vol.VolumeId {
			t.Errorf("snapshot %+v", s)
		}
		if n := snapshots(); n != before+1 {
			t.Errorf("%d snapshots, want %d", n, before+1)
		}
		if err := probeWritable(filepath.Join(m.Dir, "after"), frozenProbeLimit); err != nil {
			t.Errorf("after the snapshot: %v", err)
		}
	})

	step(t, "create-snapshots freezes the file systems of the volumes it snapshots, and only those", func(t *testing.T) {
		_, stderr, code := d.cli(t, "create-snapshots", "--volume-ids", vol.VolumeId, "--freeze", m.Dir, "--freeze", mOther.Dir)
		if code != 252 || !strings.Contains(stderr, "cowvol: create-snapshots: --freeze "+mOther.Dir+": ") ||
			!strings.Contains(stderr, "not volume "+vol.VolumeId+"'s file") {
			t.Errorf("create-snapshots --freeze of a volume not snapshotted: exit %d, %q; want 252", code, stderr)
		}
		if n := snapshots(); n != before+1 {
			t.Errorf("%d snapshots after a refused create-snapshots, want %d", n, before+1)
		}
		var out struct {
			Snapshots []struct{ SnapshotId, VolumeId string }
		}
		d.mustJSON(t, d.mustCLI(t, "create-snapshots", "--volume-ids", vol.VolumeId+","+other.VolumeId,
			"--freeze", m.Dir, "--freeze", mOther.Dir), &out)
		if len(out.Snapshots) != 2 {
			t.Fatalf("create-snapshots of two frozen file systems: %+v", out)
		}
		// By instance: the volumes on this host's loop devices, as
		// DescribeVolumes reports attachments made by hand.
		d.mustJSON(t, d.mustCLI(t, "create-snapshots", "--instance-specification", "InstanceId="+hostInstanceID(t),
			"--freeze", m.Dir, "--freeze", mOther.Dir), &out)
		if len(out.Snapshots) != 2 {
			t.Fatalf("create-snapshots by instance with two frozen file systems: %+v", out)
		}
		for _, dir := range []string{m.Dir, mOther.Dir} {
			if err := probeWritable(filepath.Join(dir, "after-both"), frozenProbeLimit); err != nil {
				t.Errorf("%s after create-snapshots: %v", dir, err)
			}
		}
	})
}

// frozenProbeLimit is how long a write to a file system that should not be
// frozen may take: under create-snapshot's 30 s --freeze-timeout (which
// would thaw one left frozen), well over what a loaded machine takes.
const frozenProbeLimit = 20 * time.Second

// probeWritable writes and fsyncs a small file, failing if that takes longer
// than limit (a frozen file system blocks it).
func probeWritable(path string, limit time.Duration) error {
	done := make(chan error, 1)
	go func() {
		f, err := os.Create(path)
		if err != nil {
			done <- err
			return
		}
		_, err = f.Write([]byte("probe"))
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(limit):
		return os.ErrDeadlineExceeded
	}
}
