package main

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// create-snapshot --freeze DIR freezes the file system mounted at DIR, and
// FIFREEZE freezes whatever file system a directory is on: the root file
// system for a mistyped DIR, and with it perhaps the daemon's data dir,
// which would stop the daemon that is to take the snapshot. So before any
// freeze, every DIR must be the mount point of a file system on a loop
// device whose backing file is the volume's own file (compared by device
// and inode with the file under the daemon's FUSE mount), and on no file
// system where the daemon's processes keep files open.

// fuseFSType is the type of the daemon's FUSE mount in mountinfo.
const fuseFSType = "fuse.cowvol"

// mountEntry is one line of /proc/self/mountinfo.
type mountEntry struct {
	major, minor uint32
	mountPoint   string
	fsType       string
	source       string
}

// freezeScope is what a --freeze check is for: the verb (for messages),
// the volumes to be snapshotted and the daemon's socket.
type freezeScope struct {
	verb      string
	volumeIDs []string
	socket    string
}

// volumes names the scope's volumes in a message.
func (sc freezeScope) volumes() string {
	if len(sc.volumeIDs) == 1 {
		return "volume " + sc.volumeIDs[0]
	}
	return "volumes " + strings.Join(sc.volumeIDs, ", ")
}

// volumeFiles names the scope's volume files in a message.
func (sc freezeScope) volumeFiles() string {
	if len(sc.volumeIDs) == 1 {
		return "volume " + sc.volumeIDs[0] + "'s file"
	}
	return "the file of any of volumes " + strings.Join(sc.volumeIDs, ", ")
}

// targetError refuses a --freeze mount point: a bad command line
// (exit 252), nothing frozen, no snapshot taken.
func (sc freezeScope) targetError(dir, format string, args ...any) error {
	return usageErrorf("%s: --freeze %s: %s", sc.verb, dir, fmt.Sprintf(format, args...))
}

// checkFreezeTargets refuses mount points that are not safe to freeze
// for a snapshot of the scope's volumes.
func checkFreezeTargets(dirs []string, sc freezeScope) error {
	mounts, err := readMountInfo("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	seen := make(map[[2]uint32]string)
	var order [][2]uint32
	for _, dir := range dirs {
		m, err := checkFreezeTarget(mounts, dir, sc)
		if err != nil {
			return err
		}
		dev := [2]uint32{m.major, m.minor}
		if other, dup := seen[dev]; dup {
			return sc.targetError(dir, "the same file system as --freeze %s", other)
		}
		seen[dev] = dir
		order = append(order, dev)
	}
	held, err := daemonDevices(sc.socket)
	if err != nil {
		return err
	}
	for _, dev := range order {
		dir := seen[dev]
		if pid, ok := held[dev]; ok {
			return sc.targetError(dir, "the cowvol daemon (pid %d) keeps files open on this file system (its data dir?): "+
				"freezing it would stop the daemon that takes the snapshot", pid)
		}
	}
	return nil
}

// checkFreezeTarget checks one --freeze mount point and returns its mount.
func checkFreezeTarget(mounts []mountEntry, dir string, sc freezeScope) (mountEntry, error) {
	abs, err := filepath.Abs(dir)
	if err == nil {
		abs, err = filepath.EvalSymlinks(abs)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return mountEntry{}, sc.targetError(dir, "no such directory")
	}
	if err != nil {
		return mountEntry{}, sc.targetError(dir, "%v", err)
	}
	m, ok := mountAt(mounts, abs)
	if !ok {
		return m, sc.targetError(dir, "not a mount point: --freeze takes the directory where the file system on the volume's loop device is mounted")
	}
	loop, backing, err := loopDevice(m.major, m.minor)
	if err != nil {
		return m, sc.targetError(dir, "%v", err)
	}
	if loop == "" {
		return m, sc.targetError(dir, "the file system mounted there (%s, %s) is not on a loop device: "+
			"--freeze takes the mount point of a file system on a loop device attached to %s", m.source, m.fsType, sc.volumes())
	}
	for _, id := range sc.volumeIDs {
		volumeFile, err := loopBackedBy(mounts, loop, id)
		if err != nil {
			return m, sc.targetError(dir, "%v", err)
		}
		if volumeFile != "" {
			return m, nil
		}
	}
	return m, sc.targetError(dir, "the file system mounted there is on %s, whose backing file is %s, not %s",
		loop, backing, sc.volumeFiles())
}

// mountAt is the topmost mount at mount point dir.
func mountAt(mounts []mountEntry, dir string) (mountEntry, bool) {
	for i := len(mounts) - 1; i >= 0; i-- {
		if mounts[i].mountPoint == dir {
			return mounts[i], true
		}
	}
	return mountEntry{}, false
}

// loopDevice is the loop device (/dev/loopN) a block device is, or is a
// partition of, and its backing file as the kernel names it; "" if the
// device is not a loop device.
func loopDevice(major, minor uint32) (dev, backing string, err error) {
	sys, err := filepath.EvalSymlinks(fmt.Sprintf("/sys/dev/block/%d:%d", major, minor))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", "", nil // not a block device (tmpfs, overlay, ...)
		}
		return "", "", err
	}
	for _, d := range []string{sys, filepath.Dir(sys)} { // the device, or the disk of a partition
		b, err := os.ReadFile(filepath.Join(d, "loop", "backing_file"))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", "", err
		}
		return "/dev/" + filepath.Base(d), strings.TrimSuffix(string(b), "\n"), nil
	}
	return "", "", nil
}

// loopBackedBy returns the path of volumeID's file under a cowvol FUSE
// mount if loop's backing file is that file (same device and inode), ""
// if it is another file.
func loopBackedBy(mounts []mountEntry, loop, volumeID string) (string, error) {
	f, err := os.Open(loop)
	if err != nil {
		return "", err
	}
	defer f.Close()
	info, err := unix.IoctlLoopGetStatus64(int(f.Fd()))
	if err != nil {
		return "", fmt.Errorf("%s (LOOP_GET_STATUS64): %w", loop, err)
	}
	// lo_device is the kernel's encoding of a dev_t (new_encode_dev).
	major := uint32((info.Device & 0xfff00) >> 8)
	minor := uint32((info.Device & 0xff) | ((info.Device >> 12) & 0xfff00))
	for _, m := range mounts {
		if m.major != major || m.minor != minor || m.fsType != fuseFSType {
			continue
		}
		path := filepath.Join(m.mountPoint, volumeID)
		var st unix.Stat_t
		if err := unix.Stat(path, &st); err != nil {
			continue
		}
		if unix.Major(st.Dev) == major && unix.Minor(st.Dev) == minor && st.Ino == info.Inode {
			return path, nil
		}
	}
	return "", nil
}

// readMountInfo parses a mountinfo file.
func readMountInfo(path string) ([]mountEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []mountEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if m, ok := parseMountInfoLine(sc.Text()); ok {
			out = append(out, m)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return out, nil
}

// parseMountInfoLine parses "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS
// [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS".
func parseMountInfoLine(line string) (mountEntry, bool) {
	fields := strings.Fields(line)
	sep := -1
	for i := 6; i < len(fields); i++ {
		if fields[i] == "-" {
			sep = i
			break
		}
	}
	if len(fields) < 5 || sep < 0 || sep+2 >= len(fields) {
		return mountEntry{}, false
	}
	maj, min, ok := strings.Cut(fields[2], ":")
	if !ok {
		return mountEntry{}, false
	}
	ma, err1 := strconv.ParseUint(maj, 10, 32)
	mi, err2 := strconv.ParseUint(min, 10, 32)
	if err1 != nil || err2 != nil {
		return mountEntry{}, false
	}
	return mountEntry{
		major: uint32(ma), minor: uint32(mi),
		mountPoint: unescapeMountInfo(fields[4]),
		fsType:     fields[sep+1],
		source:     unescapeMountInfo(fields[sep+2]),
	}, true
}

// unescapeMountInfo undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountInfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
