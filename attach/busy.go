package attach

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// deviceUser says why a device cannot be detached: "" when nobody uses it.
// A device that is mounted or claimed by another device (device mapper,
// md) cannot be opened exclusively (EBUSY); one that a process holds open
// shows in that process's /proc/PID/fd.
func deviceUser(dev string) (string, error) {
	fd, err := unix.Open(dev, unix.O_RDONLY|unix.O_EXCL|unix.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, unix.EBUSY):
		return dev + " is mounted or claimed by another device", nil
	case err != nil:
		return "", fmt.Errorf("open %s: %w", dev, err)
	}
	unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Stat(dev, &st); err != nil {
		return "", fmt.Errorf("stat %s: %w", dev, err)
	}
	if pid := openedBy(st.Rdev); pid != 0 {
		return fmt.Sprintf("%s is open in process %d", dev, pid), nil
	}
	return "", nil
}

// openedBy returns a process (other than this one) that has the block
// device rdev open, or 0.
func openedBy(rdev uint64) int {
	fds, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	self := os.Getpid()
	for _, fd := range fds {
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(fd))))
		if pid == self {
			continue
		}
		var st unix.Stat_t
		if unix.Stat(fd, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFBLK || st.Rdev != rdev {
			continue
		}
		return pid
	}
	return 0
}
