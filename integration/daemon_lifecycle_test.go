package integration

import (
	"os"
	"strings"
	"testing"
	"time"
)

// One daemon per data dir: a second one started by mistake (another mount,
// another socket) refuses to start and leaves the first one serving.
func TestSecondDaemonOnSameDataDirFails(t *testing.T) {
	requirePrereqs(t)
	d := startDaemon(t)
	vol := d.createVolume(t, "1GiB")

	step(t, "a second cowvol daemon on the same data dir exits with an error", func(t *testing.T) {
		d2 := newDaemon(t, withDataDir(d.DataDir))
		start := time.Now()
		d2.start(t)
		err, exited := d2.waitExit(15 * time.Second)
		if !exited {
			t.Fatalf("second daemon on %s still running after 15s, want a quick failure", d.DataDir)
		}
		t.Logf("second daemon: %s after %v", exitString(err), time.Since(start).Round(time.Millisecond))
		if err == nil {
			t.Errorf("second daemon on the same data dir exited 0, want non-zero")
		}
		out := d2.output()
		low := strings.ToLower(out)
		if !strings.Contains(low, "in use") && !strings.Contains(low, "locked") {
			t.Errorf("second daemon's message does not say the data dir is in use or locked:\n%s", out)
		}
		if !strings.Contains(out, d.DataDir) {
			t.Logf("note: the message does not name the data dir %s", d.DataDir)
		}
		if isMountpoint(t, d2.MountDir) {
			t.Errorf("second daemon left its mount %s mounted", d2.MountDir)
		}
		if _, err := os.Stat(d2.Socket); !os.IsNotExist(err) {
			t.Errorf("second daemon left its socket %s behind (stat: %v)", d2.Socket, err)
		}
	})

	step(t, "the first daemon still serves its volume", func(t *testing.T) {
		if !d.running() {
			t.Fatal("first daemon exited")
		}
		d.describeVolume(t, vol.VolumeId)
		requireVolumeFile(t, d, vol.VolumeId, gib)
		d.createVolume(t, "1GiB")
	})
}

// SIGTERM with nothing attached: the daemon unmounts, removes its socket and
// exits 0; started again it has the same volumes.
func TestSIGTERMUnmountsCleanly(t *testing.T) {
	requirePrereqs(t)
	d := startDaemon(t)
	vol := d.createVolume(t, "4GiB", "name=keep")

	step(t, "SIGTERM: the daemon exits 0", func(t *testing.T) {
		if err := d.stop(t); err != nil {
			t.Fatalf("daemon after SIGTERM: %v, want exit status 0", err)
		}
	})

	step(t, "the mount is gone", func(t *testing.T) {
		if isMountpoint(t, d.MountDir) {
			t.Errorf("%s is still a mount point after the daemon exited", d.MountDir)
		}
	})

	step(t, "the socket file is removed", func(t *testing.T) {
		if _, err := os.Lstat(d.Socket); !os.IsNotExist(err) {
			t.Errorf("socket %s still there after the daemon exited (lstat: %v)", d.Socket, err)
		}
	})

	step(t, "start it again: the volume is still there", func(t *testing.T) {
		d.restart(t)
		v := d.describeVolume(t, vol.VolumeId)
		if v.Size != 4 {
			t.Errorf("Size %d after restart, want 4", v.Size)
		}
		if val, _ := v.tag("name"); val != "keep" {
			t.Errorf("Tags %+v after restart, want name=keep", v.Tags)
		}
		requireVolumeFile(t, d, vol.VolumeId, 4*gib)
	})
}

// A daemon killed with SIGKILL and restarted at once, as systemd would,
// clears the dead mount and the stale socket by itself, however soon the
// restart comes (the kernel may still answer stat from its attribute cache
// for a moment after the server died).
func TestRestartRightAfterKill9(t *testing.T) {
	requirePrereqs(t)
	d := startDaemon(t)
	vol := d.createVolume(t, "1GiB", "round=0")
	for round := 1; round <= 5; round++ {
		step(t, "kill -9 and restart at once", func(t *testing.T) {
			if _, err := os.Stat(d.volumePath(vol.VolumeId)); err != nil { // warm the attribute cache
				t.Fatal(err)
			}
			d.kill9(t)
			d.restart(t)
			requireVolumeFile(t, d, vol.VolumeId, gib)
		})
	}
}

// TestDaemonRefusesBadAccessConfiguration: access settings that cannot be
// honoured stop the daemon at start, with a message saying which, before it
// mounts or listens.
func TestDaemonRefusesBadAccessConfiguration(t *testing.T) {
	requirePrereqs(t)
	good := writeCredentialsFile(t, sdkKeys...)
	readable := writeCredentialsFile(t, sdkKeys...)
	if err := os.Chmod(readable, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"--listen without credentials", []string{"--listen", "127.0.0.1:1"}, "--listen and --credentials-file go together"},
		{"a credentials file others can read", []string{"--listen", freeLoopbackAddr(t), "--credentials-file", readable}, "chmod 600"},
		{"a missing credentials file", []string{"--listen", freeLoopbackAddr(t), "--credentials-file", good + ".missing"}, "no such file"},
		{"an unknown user", []string{"--allow-uid", "no-such-user-cowvol"}, "--allow-uid no-such-user-cowvol"},
		{"an unknown group", []string{"--read-only-gid", "no-such-group-cowvol"}, "--read-only-gid no-such-group-cowvol"},
		{"an unknown volume group", []string{"--volume-group", "no-such-group-cowvol"}, "--volume-group no-such-group-cowvol"},
		{"an account ID that is not 12 digits", []string{"--account-id", "12345"}, "want 12 digits"},
	} {
		step(t, tc.name, func(t *testing.T) {
			d := newDaemon(t, withDaemonArgs(tc.args...))
			d.start(t)
			err, exited := d.waitExit(15 * time.Second)
			if !exited || err == nil {
				t.Fatalf("daemon %v: exited %v (%v), want a quick failure", tc.args, exited, err)
			}
			if out := d.output(); !strings.Contains(out, tc.want) {
				t.Errorf("daemon %v said:\n%s\nwant a message containing %q", tc.args, out, tc.want)
			}
			if isMountpoint(t, d.MountDir) {
				t.Errorf("it left %s mounted", d.MountDir)
			}
		})
	}
}
