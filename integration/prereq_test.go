package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// requireRoot reports whether COWVOL_REQUIRE_ROOT=1: missing prerequisites
// then fail tests instead of skipping them.
func requireRoot() bool { return os.Getenv("COWVOL_REQUIRE_ROOT") == "1" }

// missingPrereq ends a test whose prerequisite is missing: a failure under
// COWVOL_REQUIRE_ROOT=1 (CI must not pass by skipping), a skip otherwise.
func missingPrereq(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("COWVOL_REQUIRE_ROOT") != "1" {
		t.Skipf(format+" (COWVOL_REQUIRE_ROOT=1 makes this a failure)", args...)
	}
	t.Fatalf(format+" (COWVOL_REQUIRE_ROOT=1)", args...)
}

// missingPrivileges lists what stops these tests from running at all: root
// and /dev/fuse. Without COWVOL_REQUIRE_ROOT their absence skips the tests.
func missingPrivileges() []string {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (euid 0)")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		missing = append(missing, "/dev/fuse")
	}
	return missing
}

// tools are the commands the tests run; each is looked up on PATH and then in
// the sbin directories, which a non-login root PATH may lack.
var tools = []string{"losetup", "mount", "umount", "mkfs.ext4", "e2fsck", "resize2fs", "fstrim", "fio"}

var (
	toolPathsOnce sync.Once
	toolPaths     map[string]string
)

func lookTool(name string) (string, bool) {
	toolPathsOnce.Do(func() {
		toolPaths = make(map[string]string)
		for _, n := range append(tools, "fusermount3", "fusermount") {
			if p, err := exec.LookPath(n); err == nil {
				toolPaths[n] = p
				continue
			}
			for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
				p := filepath.Join(dir, n)
				if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
					toolPaths[n] = p
					break
				}
			}
		}
	})
	p, ok := toolPaths[name]
	return p, ok
}

// tool returns the path of a required command, failing the test without it.
func tool(t testing.TB, name string) string {
	t.Helper()
	p, ok := lookTool(name)
	if !ok {
		t.Fatalf("required command %q not found on PATH or in /usr/sbin, /sbin", name)
	}
	return p
}

// requirePrereqs skips the test when it cannot run here and
// COWVOL_REQUIRE_ROOT is unset; otherwise any missing prerequisite (root,
// /dev/fuse, loop devices, the tools) fails it.
func requirePrereqs(t testing.TB) {
	t.Helper()
	missing := missingPrivileges()
	if len(missing) > 0 && !requireRoot() {
		t.Skipf("needs %v (set COWVOL_REQUIRE_ROOT=1 to make this a failure)", missing)
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		missing = append(missing, "loop devices (/dev/loop-control; modprobe loop)")
	}
	for _, n := range tools {
		if _, ok := lookTool(n); !ok {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("missing prerequisites: %v", missing)
	}
}

// requireBinary fails the test if TestMain built no cowvol binary.
func requireBinary(t testing.TB) {
	t.Helper()
	if cowvolBin == "" {
		t.Fatal("no cowvol binary (see TestMain's output)")
	}
}
