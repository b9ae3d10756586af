package fusefs

import (
	"errors"
	"syscall"

	"github.com/cowvol/cowvol/cow"
)

// toErrno converts an engine error to the errno the kernel passes on.
func toErrno(err error) syscall.Errno {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, cow.ErrVolumeNotFound):
		return syscall.ENOENT
	case errors.Is(err, cow.ErrNoSpace):
		return syscall.ENOSPC
	case errors.Is(err, cow.ErrOutOfRange):
		// Writing past the end of a block device is ENOSPC.
		return syscall.ENOSPC
	case errors.Is(err, cow.ErrClosed):
		return syscall.EBADF
	default:
		return syscall.EIO
	}
}

func snapshotErrno(err error) syscall.Errno {
	if errors.Is(err, cow.ErrSnapshotNotFound) {
		return syscall.ENOENT
	}
	return toErrno(err)
}
