package attach

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Loop device flags (linux/loop.h).
const (
	loFlagsAutoclear = 4
	loFlagsDirectIO  = 16
)

// loopControl is the loop driver's control device.
const loopControl = "/dev/loop-control"

// sysBlock is where the kernel describes block devices.
var sysBlock = "/sys/block"

// attachLoop attaches the file at path (opened read-write with O_DIRECT)
// to loop device dev, or to a free one if dev is "", with direct I/O, in
// one LOOP_CONFIGURE. It returns the device's path.
func attachLoop(path, dev string) (string, error) {
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_DIRECT, 0)
	if err != nil {
		return "", fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	for try := 0; ; try++ {
		d := dev
		if d == "" {
			if d, err = freeLoop(); err != nil {
				return "", err
			}
		}
		err := configureLoop(d, f)
		switch {
		case err == nil:
			return d, nil
		case errors.Is(err, unix.EBUSY) && dev == "" && try < 8:
			continue // another process took the free device first
		default:
			return "", err
		}
	}
}

// freeLoop asks the loop driver for a free device (creating one if needed).
func freeLoop() (string, error) {
	ctl, err := os.OpenFile(loopControl, os.O_RDWR, 0)
	if err != nil {
		return "", fmt.Errorf("open %s: %w", loopControl, err)
	}
	defer ctl.Close()
	n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
	if err != nil {
		return "", fmt.Errorf("find a free loop device: %w", err)
	}
	return "/dev/loop" + strconv.Itoa(n), nil
}

func configureLoop(dev string, backing *os.File) error {
	lf, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", dev, err)
	}
	defer lf.Close()
	cfg := unix.LoopConfig{Fd: uint32(backing.Fd()), Size: 512}
	cfg.Info.Flags = loFlagsDirectIO
	copy(cfg.Info.File_name[:], backing.Name())
	if err := unix.IoctlLoopConfigure(int(lf.Fd()), &cfg); err != nil {
		return fmt.Errorf("attach %s to %s (LOOP_CONFIGURE): %w", backing.Name(), dev, err)
	}
	return nil
}

// detachLoop detaches loop device dev (LOOP_CLR_FD). A device still in use
// is detached when its last user closes it (the kernel sets autoclear).
func detachLoop(dev string) error {
	lf, err := os.OpenFile(dev, os.O_RDONLY, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", dev, err)
	}
	defer lf.Close()
	if err := unix.IoctlSetInt(int(lf.Fd()), unix.LOOP_CLR_FD, 0); err != nil && !errors.Is(err, unix.ENXIO) {
		return fmt.Errorf("detach %s (LOOP_CLR_FD): %w", dev, err)
	}
	return nil
}

// setCapacity has loop device dev re-read its backing file's size
// (LOOP_SET_CAPACITY, as `losetup -c` does).
func setCapacity(dev string) error {
	lf, err := os.OpenFile(dev, os.O_RDONLY, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", dev, err)
	}
	defer lf.Close()
	if err := unix.IoctlSetInt(int(lf.Fd()), unix.LOOP_SET_CAPACITY, 0); err != nil {
		return fmt.Errorf("refresh the capacity of %s (LOOP_SET_CAPACITY): %w", dev, err)
	}
	return nil
}

// loopDevice is a loop device with a backing file, as sysfs tells it.
type loopDevice struct {
	dev     string // /dev/loopN
	backing string // the backing file's path, as the kernel recorded it
	flags   loopFlags
}

type loopFlags struct{ autoclear, directIO bool }

// loopDevices lists the loop devices that have a backing file
// (/sys/block/loop*/loop/backing_file).
func loopDevices() ([]loopDevice, error) {
	names, err := filepath.Glob(filepath.Join(sysBlock, "loop*"))
	if err != nil {
		return nil, err
	}
	var out []loopDevice
	for _, dir := range names {
		b, err := os.ReadFile(filepath.Join(dir, "loop", "backing_file"))
		if err != nil {
			continue // no backing file: a free device
		}
		d := loopDevice{dev: "/dev/" + filepath.Base(dir), backing: strings.TrimSuffix(string(b), "\n")}
		d.flags.autoclear = readFlag(filepath.Join(dir, "loop", "autoclear"))
		d.flags.directIO = readFlag(filepath.Join(dir, "loop", "dio"))
		out = append(out, d)
	}
	return out, nil
}

func readFlag(path string) bool {
	b, err := os.ReadFile(path)
	return err == nil && strings.TrimSpace(string(b)) == "1"
}

// backedBy reports whether loop device dev's backing file is the file at
// path: the same device and inode (LOOP_GET_STATUS64), not only the same
// name. A loop device left on the file of a FUSE connection that is gone
// (the daemon killed, the mount cleared) has the name and not the file.
func backedBy(dev, path string) (bool, error) {
	f, err := os.Open(dev)
	if err != nil {
		return false, err
	}
	defer f.Close()
	info, err := unix.IoctlLoopGetStatus64(int(f.Fd()))
	if errors.Is(err, unix.ENXIO) {
		return false, nil // detached meanwhile
	}
	if err != nil {
		return false, fmt.Errorf("%s (LOOP_GET_STATUS64): %w", dev, err)
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return false, fmt.Errorf("stat %s: %w", path, err)
	}
	// lo_device is the kernel's encoding of a dev_t (new_encode_dev).
	major := uint32((info.Device & 0xfff00) >> 8)
	minor := uint32((info.Device & 0xff) | ((info.Device >> 12) & 0xfff00))
	return unix.Major(st.Dev) == major && unix.Minor(st.Dev) == minor && st.Ino == info.Inode, nil
}
