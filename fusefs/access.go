package fusefs

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/cowvol/cowvol/cow"
)

// fileAccess decides the owner, group and mode of every file in the tree.
// The kernel enforces them: the mount has default_permissions, so it
// checks the caller against these attributes at open, truncate, chmod and
// chown, and on every path lookup, before a request reaches the daemon.
//
// Every file is owned by the daemon's effective user, who is also the one
// the control socket trusts besides root. Volume files are 0600 and
// snapshot files 0400 in the daemon's effective group; with a volume group
// they are 0660 and 0440 in that group, so its members may read and write
// volumes and read snapshots. Root may open them all (CAP_DAC_OVERRIDE);
// nobody writes to a snapshot file, root included (Open answers EROFS).
type fileAccess struct {
	uid, gid uint32
	group    bool // gid is the volume group: its members may use the files
}

// dirPerm is the permission of the root and snapshots/ directories: anyone
// may list them and stat the files in them.
const dirPerm = 0o755

// newFileAccess returns the access of a tree served by this process, with
// volumeGroup (nil: none) as the group of its files.
func newFileAccess(volumeGroup *uint32) fileAccess {
	a := fileAccess{uid: uint32(os.Geteuid()), gid: uint32(os.Getegid())}
	if volumeGroup != nil {
		a.gid, a.group = *volumeGroup, true
	}
	return a
}

// volumePerm is the permission of volume files.
func (a fileAccess) volumePerm() uint32 {
	if a.group {
		return 0o660
	}
	return 0o600
}

// snapshotPerm is the permission of snapshot files.
func (a fileAccess) snapshotPerm() uint32 {
	if a.group {
		return 0o440
	}
	return 0o400
}

// fillDirAttr fills the attributes of the root or the snapshots directory.
func (a fileAccess) fillDirAttr(attr *fuse.Attr) {
	attr.Mode = syscall.S_IFDIR | dirPerm
	attr.Uid, attr.Gid = a.uid, a.gid
}

// setOwner sets the file's owner and group in attr.
func (a fileAccess) setOwner(attr *fuse.Attr) {
	attr.Uid, attr.Gid = a.uid, a.gid
}

// refusedChange describes the changes in a SETATTR request that a volume
// or snapshot file refuses, "" if there is none. The files keep no
// attributes of their own: the daemon sets mode, owner and group (from
// --volume-group), a volume's size is fixed, and the times are the
// volume's creation (the snapshot's start) time. A request that sets an
// attribute to the value it has already is no change.
func refusedChange(in *fuse.SetAttrIn, cur *fuse.Attr) string {
	var changes []string
	if m, ok := in.GetMode(); ok && m != cur.Mode&0o7777 {
		changes = append(changes, fmt.Sprintf("mode %#o", m))
	}
	if u, ok := in.GetUID(); ok && u != cur.Uid {
		changes = append(changes, fmt.Sprintf("owner %d", u))
	}
	if g, ok := in.GetGID(); ok && g != cur.Gid {
		changes = append(changes, fmt.Sprintf("group %d", g))
	}
	if sz, ok := in.GetSize(); ok && sz != cur.Size {
		changes = append(changes, fmt.Sprintf("size %d", sz))
	}
	if in.Valid&(fuse.FATTR_ATIME|fuse.FATTR_MTIME) != 0 && !sameTimes(in, cur) {
		changes = append(changes, "times")
	}
	return strings.Join(changes, ", ")
}

// sameTimes reports whether the times a SETATTR request sets are those the
// file has already (touch -d with its own time; never "now").
func sameTimes(in *fuse.SetAttrIn, cur *fuse.Attr) bool {
	if in.Valid&(fuse.FATTR_ATIME_NOW|fuse.FATTR_MTIME_NOW) != 0 {
		return false
	}
	if in.Valid&fuse.FATTR_ATIME != 0 && (in.Atime != cur.Atime || in.Atimensec != cur.Atimensec) {
		return false
	}
	return in.Valid&fuse.FATTR_MTIME == 0 || in.Mtime == cur.Mtime && in.Mtimensec == cur.Mtimensec
}

// refuseSetattr answers a SETATTR by uid (process pid) on the volume or
// snapshot file id whose attributes are cur: EPERM, logged with the caller
// and the reason, if the request would change anything; 0 otherwise.
func refuseSetattr(uid, pid uint32, log *slog.Logger, id string, in *fuse.SetAttrIn, cur *fuse.Attr) syscall.Errno {
	change := refusedChange(in, cur)
	if change == "" {
		return 0
	}
	log.Warn("refused a change of attributes: volume and snapshot files keep none of their own "+
		"(the daemon sets mode, owner and group from --volume-group; a volume's size is fixed; the times are its creation time)",
		"file", id, "change", change, "caller_uid", uid, "caller_pid", pid)
	return syscall.EPERM
}

// fillVolumeAttr fills the attributes of a volume file.
func (a fileAccess) fillVolumeAttr(attr *fuse.Attr, vi cow.VolumeInfo) {
	fillFileAttr(attr, a.volumePerm(), vi.Size, vi.AllocatedBytes, vi.BlockSize, vi.CreateTime)
	a.setOwner(attr)
}

// fillSnapshotAttr fills the attributes of a snapshot file.
func (a fileAccess) fillSnapshotAttr(attr *fuse.Attr, si cow.SnapshotInfo) {
	fillFileAttr(attr, a.snapshotPerm(), si.VolumeSize, si.DataBytes, si.BlockSize, si.StartTime)
	a.setOwner(attr)
}

// fillFileAttr fills the attributes of a volume or snapshot file, but its
// owner: a regular file of size bytes, holding data bytes, born at t.
func fillFileAttr(a *fuse.Attr, perm uint32, size, data int64, blockSize int, t time.Time) {
	a.Mode = syscall.S_IFREG | perm
	a.Nlink = 1
	a.Size = uint64(size)
	a.Blocks = uint64(data / 512)
	a.Blksize = uint32(min(blockSize, maxWrite))
	a.SetTimes(&t, &t, &t)
}
