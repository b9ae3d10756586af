package attach

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// deviceUser says why a device cannot be detached: "" when nobody uses it.
// A device that is mounted or claimed by another device (device mapper,
// md) cannot be opened exclusively (EBUSY); one that a process holds open
// shows in that process's /proc/PID/fd.
// byProcess is true when the user is a process (not a mount).
func deviceUser(dev string) (user string, byProcess bool, err error) {
	fd, err := unix.Open(dev, unix.O_RDONLY|unix.O_EXCL|unix.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, unix.EBUSY):
		return dev + " is mounted or claimed by another device", false, nil
	case err != nil:
		return "", false, fmt.Errorf("open %s: %w", dev, err)
	}
	unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Stat(dev, &st); err != nil {
		return "", false, fmt.Errorf("stat %s: %w", dev, err)
	}
	if pid := openedBy(st.Rdev); pid != 0 {
		return fmt.Sprintf("%s is open in process %d", dev, pid), true, nil
	}
	return "", false, nil
}

// probeWindow is how long a device held open by a process is looked at
// again before it counts as in use: udev probes a device for a moment
// after it changes (attached, unmounted).
const probeWindow = time.Second

// settledUser is deviceUser, asked again for up to probeWindow while only
// a process holds the device (not a mount).
func settledUser(ctx context.Context, dev string) (string, error) {
	deadline := time.Now().Add(probeWindow)
	for {
		user, byProcess, err := deviceUser(dev)
		if err != nil || !byProcess || time.Now().After(deadline) {
			return user, err
		}
		select {
		case <-ctx.Done():
			return user, nil
		case <-time.After(50 * time.Millisecond):
		}
	}
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
