package integration

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRestartAfterKill9OnSymlinkedMount: with --mount a symbolic link to
// the mount directory, a daemon killed with SIGKILL and started again on
// the same link recognises the dead mount behind the link, clears it and
// serves again: the volume and its data are there, and one mount only.
func TestRestartAfterKill9OnSymlinkedMount(t *testing.T) {
	requirePrereqs(t)
	real, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "mount-link")
	if err = os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, withMountDir(link))
	vol := d.createVolume(t, "64MiB")
	data := bytes.Repeat([]byte("written through the link\n"), 4096)
	writeAt(t, d.volumePath(vol.VolumeId), data, 0)

	step(t, "kill -9 leaves a dead mount behind the link", func(t *testing.T) {
		d.kill9(t)
		if n := mountCount(t, real); n != 1 {
			t.Fatalf("%d mounts at %s after kill -9, want the dead one", n, real)
		}
	})

	step(t, "started again on the link, it clears the dead mount and serves", func(t *testing.T) {
		d.restart(t)
		d.describeVolume(t, vol.VolumeId)
		got := make([]byte, len(data))
		f, err := os.Open(d.volumePath(vol.VolumeId))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.ReadAt(got, 0); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Errorf("%s does not read back what was written before the kill", d.volumePath(vol.VolumeId))
		}
		if n := mountCount(t, real); n != 1 {
			t.Errorf("%d mounts at %s, want one: the dead one cleared, not mounted over", n, real)
		}
		if !strings.Contains(d.output(), "clearing a stale FUSE mount") {
			t.Errorf("the daemon did not say it cleared the stale mount")
		}
	})
}

// TestDaemonRefusesDataDirThroughSymlinkIntoMount: a --data-dir that is a
// symbolic link into the mount directory (its target there or not yet) is
// refused at start, with a message naming both paths, and nothing is
// created or mounted.
func TestDaemonRefusesDataDirThroughSymlinkIntoMount(t *testing.T) {
	requirePrereqs(t)
	for _, tc := range []struct {
		name         string
		targetExists bool
	}{
		{"the link's target exists", true},
		{"the link's target does not exist yet", false},
	} {
		step(t, tc.name, func(t *testing.T) {
			mount := t.TempDir()
			target := filepath.Join(mount, "data")
			if tc.targetExists {
				if err := os.Mkdir(target, 0o700); err != nil {
					t.Fatal(err)
				}
			}
			link := filepath.Join(t.TempDir(), "data-link")
			if err := os.Symlink(target, link); err != nil {
				t.Fatal(err)
			}
			d := newDaemon(t, withDataDir(link), withMountDir(mount))
			d.start(t)
			err, exited := d.waitExit(15 * time.Second)
			if !exited || err == nil {
				t.Fatalf("daemon with --data-dir %s -> %s: exited %v (%v), want a quick failure", link, target, exited, err)
			}
			out := d.output()
			for _, want := range []string{link, target, mount, "inside"} {
				if !strings.Contains(out, want) {
					t.Errorf("the daemon said:\n%s\nwant a message naming %q", out, want)
				}
			}
			if isMountpoint(t, mount) {
				t.Errorf("it left %s mounted", mount)
			}
			entries, err := os.ReadDir(target)
			if tc.targetExists && (err != nil || len(entries) != 0) || !tc.targetExists && !os.IsNotExist(err) {
				t.Errorf("%s after the refused start: %v, %v; want it as it was (empty, or missing)", target, entries, err)
			}
		})
	}
}

// mountCount is how many mounts /proc/self/mountinfo has at dir.
func mountCount(t testing.TB, dir string) int {
	t.Helper()
	ms, err := mounts()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range ms {
		if m.MountPoint == dir {
			n++
		}
	}
	return n
}
