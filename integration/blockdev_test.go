package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// loopDev is a loop device attached to a file (a volume, a snapshot).
type loopDev struct {
	Dev      string // /dev/loopN
	File     string
	detached bool
}

// attachLoop attaches file to a free loop device with direct I/O, as a user
// does (`losetup --direct-io=on -f --show FILE`), and detaches it in cleanup.
// Pass readOnly to attach with --read-only (snapshot files).
func attachLoop(t testing.TB, file string, readOnly ...bool) *loopDev {
	t.Helper()
	args := []string{"--direct-io=on", "-f", "--show"}
	if len(readOnly) > 0 && readOnly[0] {
		args = append(args, "--read-only")
	}
	out := mustRun(t, "losetup", append(args, file)...)
	l := &loopDev{Dev: strings.TrimSpace(out), File: file}
	if !strings.HasPrefix(l.Dev, "/dev/loop") {
		t.Fatalf("losetup printed %q, want /dev/loopN", out)
	}
	t.Cleanup(func() {
		if !l.detached {
			if err := l.tryDetach(t); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
	return l
}

// sysfs reads /sys/block/loopN/loop/<name>.
func (l *loopDev) sysfs(name string) (string, error) {
	b, err := os.ReadFile(filepath.Join("/sys/block", filepath.Base(l.Dev), "loop", name))
	return strings.TrimSpace(string(b)), err
}

// directIO reports whether the kernel really runs the device with direct I/O
// (it silently falls back to buffered I/O when the backing file refuses O_DIRECT).
func (l *loopDev) directIO() bool {
	v, err := l.sysfs("dio")
	return err == nil && v == "1"
}

// detach runs `losetup -d` and waits until the kernel has let go of the
// backing file, failing the test if it cannot.
func (l *loopDev) detach(t testing.TB) {
	t.Helper()
	if err := l.tryDetach(t); err != nil {
		t.Fatal(err)
	}
}

// tryDetach detaches with a few retries: losetup -d fails with EBUSY while
// something (udev, a lingering opener) still holds the device, and a busy
// device is only marked autoclear and let go at its last close.
func (l *loopDev) tryDetach(t testing.TB) error {
	l.detached = true
	var r result
	for i := 0; i < 10; i++ {
		r = run(cmdTimeout, nil, tool(t, "losetup"), "-d", l.Dev)
		if r.Code == 0 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if r.Code != 0 {
		return &cmdError{"losetup -d " + l.Dev, r}
	}
	t.Logf("$ losetup -d %s -> exit 0", l.Dev)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if bf, err := l.sysfs("backing_file"); err != nil || bf == "" {
			return nil
		}
	}
	bf, _ := l.sysfs("backing_file")
	return &cmdError{"losetup -d " + l.Dev, result{Stderr: "device still bound to " + bf + " 30s after detach"}}
}

type cmdError struct {
	what string
	r    result
}

func (e *cmdError) Error() string { return e.what + ": " + e.r.String() }

// mkfsExt4 makes an ext4 file system on dev the quick way (lazy inode table
// and journal init), so only metadata is written. extended adds -E options,
// e.g. "nodiscard" to skip the initial discard of the whole device.
func mkfsExt4(t testing.TB, dev string, extended ...string) {
	t.Helper()
	e := strings.Join(append([]string{"lazy_itable_init=1", "lazy_journal_init=1"}, extended...), ",")
	mustRun(t, "mkfs.ext4", "-q", "-F", "-E", e, dev)
}

// fsMount is a file system mounted by a test.
type fsMount struct {
	Dev     string
	Dir     string
	mounted bool
}

// mountDev mounts dev (ext4) on dir with options (-o), unmounting it in cleanup.
func mountDev(t testing.TB, dev, dir string, options ...string) *fsMount {
	t.Helper()
	args := []string{"-t", "ext4"}
	if len(options) > 0 {
		args = append(args, "-o", strings.Join(options, ","))
	}
	mustRun(t, "mount", append(args, dev, dir)...)
	m := &fsMount{Dev: dev, Dir: dir, mounted: true}
	t.Cleanup(func() {
		if m.mounted {
			if err := m.tryUnmount(t); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
	return m
}

// unmount unmounts the file system, failing the test if it cannot.
func (m *fsMount) unmount(t testing.TB) {
	t.Helper()
	if err := m.tryUnmount(t); err != nil {
		t.Fatal(err)
	}
}

// tryUnmount unmounts, retrying briefly on EBUSY, and lazily as a last resort
// so nothing stays mounted after the test.
func (m *fsMount) tryUnmount(t testing.TB) error {
	m.mounted = false
	umount := tool(t, "umount")
	var r result
	for i := 0; i < 10; i++ {
		if r = run(cmdTimeout, nil, umount, m.Dir); r.Code == 0 {
			t.Logf("$ umount %s -> exit 0", m.Dir)
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	run(cmdTimeout, nil, umount, "-l", m.Dir)
	return &cmdError{"umount " + m.Dir, r}
}

// e2fsckClean fails the test unless `e2fsck -fn dev` finds nothing to fix.
func e2fsckClean(t testing.TB, dev string) {
	t.Helper()
	r := run(cmdTimeout, nil, tool(t, "e2fsck"), "-fn", dev)
	t.Logf("$ e2fsck -fn %s -> exit %d", dev, r.Code)
	if r.Code != 0 {
		t.Fatalf("e2fsck -fn %s: exit %d (want 0: clean)\n%s%s", dev, r.Code, r.Stdout, r.Stderr)
	}
}
