package fusefs

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Mount opens a new FUSE connection (/dev/fuse) and mounts it at dir, as
// root does with mount(2): other users may reach it (allow_other) and the
// kernel checks their access to every file against its owner, group and
// mode (default_permissions), as on a local file system. The returned
// descriptor is the connection: the kernel keeps it alive, and queues its
// requests, for as long as any process holds a descriptor of it, so the
// process that mounts can hand it to the processes that serve (Serve),
// one after another. Nothing is served until one does: the caller must not
// touch dir meanwhile (a request to an unserved connection waits).
func Mount(dir string) (*os.File, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		return nil, fmt.Errorf("mount point %s: %w", dir, err)
	}
	fd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/fuse: %w", err)
	}
	if err := unix.Mount("cowvol", dir, "fuse.cowvol", unix.MS_NOSUID|unix.MS_NODEV, mountData(fd, st.Mode)); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("mount FUSE at %s: %w", dir, err)
	}
	return os.NewFile(uintptr(fd), "/dev/fuse"), nil
}

// mountData is the mount's data string: the connection, the root's mode,
// the owner, the largest read, and the two options that open the tree to
// other users (allow_other) and have the kernel check their access against
// each file's owner, group and mode (default_permissions: without it the
// kernel would check nothing and any user could read and write every
// volume).
func mountData(fd int, rootMode uint32) string {
	return strings.Join([]string{
		fmt.Sprintf("fd=%d", fd),
		fmt.Sprintf("rootmode=%o", rootMode&syscall.S_IFMT),
		fmt.Sprintf("user_id=%d", os.Geteuid()),
		fmt.Sprintf("group_id=%d", os.Getegid()),
		fmt.Sprintf("max_read=%d", maxWrite),
		"allow_other",
		"default_permissions",
	}, ",")
}

// unmount unmounts the tree at dir: EBUSY while a file in it is open.
func unmount(dir string) error {
	if err := unix.Unmount(dir, 0); err != nil {
		return fmt.Errorf("unmount %s: %w", dir, err)
	}
	return nil
}

// Unmount unmounts the tree at dir; detach also unmounts a busy one,
// lazily (it goes once its last file is closed).
func Unmount(dir string, detach bool) error {
	flags := 0
	if detach {
		flags = unix.MNT_DETACH
	}
	if err := unix.Unmount(dir, flags); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("unmount %s: %w", dir, err)
	}
	return nil
}
