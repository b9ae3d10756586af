package integration

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// The harness checks itself on a plain sparse file, no daemon involved: if
// this passes and a volume test fails, the daemon is to blame, not the
// helpers or the machine.
func TestHarnessOnPlainFile(t *testing.T) {
	requirePrereqs(t)
	dir := t.TempDir()
	img := filepath.Join(dir, "plain.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(gib); err != nil {
		t.Fatal(err)
	}
	f.Close()

	lo := attachLoop(t, img)
	mkfsExt4(t, lo.Dev)
	mnt := t.TempDir()
	m := mountDev(t, lo.Dev, mnt)
	if me, ok, err := mountAt(mnt); err != nil || !ok || me.FSType != "ext4" || me.Source != lo.Dev {
		t.Fatalf("mountinfo for %s: %+v %v %v, want ext4 from %s", mnt, me, ok, err, lo.Dev)
	}
	want := writeTree(t, mnt, 7, 40, 128*kib)
	checkTree(t, mnt, want)

	before := mustDiskUsage(t, img)
	writeRandomFile(t, filepath.Join(mnt, "big"), 1, 64*mib)
	after := mustDiskUsage(t, img)
	if after-before < 60*mib {
		t.Errorf("writing 64 MiB grew %s by only %s", img, humanBytes(after-before))
	}
	os.Remove(filepath.Join(mnt, "big"))
	syscall.Sync()
	mustRun(t, "fstrim", mnt)
	if trimmed := mustDiskUsage(t, img); trimmed > before+8*mib {
		t.Errorf("after rm and fstrim %s uses %s, want about %s", img, humanBytes(trimmed), humanBytes(before))
	}

	m.unmount(t)
	if isMountpoint(t, mnt) {
		t.Errorf("%s still mounted after unmount", mnt)
	}
	e2fsckClean(t, lo.Dev)
	lo.detach(t)
	if _, err := os.Stat(filepath.Join("/sys/block", filepath.Base(lo.Dev), "loop", "backing_file")); err == nil {
		t.Errorf("%s still bound after detach", lo.Dev)
	}
}
