package fusefs

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/cowvol/cowvol/cow"
)

// snapshotsNode is the snapshots/ directory: one read-only file per
// snapshot, pending or completed, holding the volume as it was at the
// snapshot's call.
type snapshotsNode struct {
	fs.Inode
	eng *cow.Engine
	log *slog.Logger
	acc fileAccess
}

var (
	_ fs.NodeGetattrer = (*snapshotsNode)(nil)
	_ fs.NodeLookuper  = (*snapshotsNode)(nil)
	_ fs.NodeReaddirer = (*snapshotsNode)(nil)
)

func (s *snapshotsNode) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	s.acc.fillDirAttr(&out.Attr)
	return 0
}

func (s *snapshotsNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if !cow.ValidSnapshotID(name) {
		return nil, syscall.ENOENT
	}
	si, err := s.eng.SnapshotInfo(name)
	if err != nil {
		return nil, snapshotErrno(err)
	}
	s.acc.fillSnapshotAttr(&out.Attr, si)
	n := &snapshotNode{eng: s.eng, id: name, log: s.log, acc: s.acc}
	return s.NewInode(ctx, n, fs.StableAttr{Mode: syscall.S_IFREG, Ino: snapshotIno(name)}), 0
}

func (s *snapshotsNode) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	snaps, err := s.eng.DescribeSnapshots(ctx)
	if err != nil {
		return nil, toErrno(err)
	}
	entries := make([]fuse.DirEntry, 0, len(snaps))
	for _, si := range snaps {
		if si.State == cow.SnapshotError {
			continue // it has no content
		}
		entries = append(entries, fuse.DirEntry{Name: si.ID, Mode: syscall.S_IFREG, Ino: snapshotIno(si.ID)})
	}
	return fs.NewListDirStream(entries), 0
}

// snapshotIno derives a stable inode number from a snapshot ID.
func snapshotIno(id string) uint64 {
	n, _ := strconv.ParseUint(id[len("snap-"):len("snap-")+15], 16, 64)
	return n | 1<<61
}

// fillSnapshotAttr fills the attributes of a snapshot file.
func (acc fileAccess) fillSnapshotAttr(a *fuse.Attr, si cow.SnapshotInfo) {
	fillFileAttr(a, acc.snapshotPerm(), si.VolumeSize, si.DataBytes, si.BlockSize, si.StartTime)
	acc.setOwner(a)
}

func snapshotErrno(err error) syscall.Errno {
	if errors.Is(err, cow.ErrSnapshotNotFound) {
		return syscall.ENOENT
	}
	return toErrno(err)
}

// snapshotNode is the file snapshots/<snap-id>.
type snapshotNode struct {
	fs.Inode
	eng *cow.Engine
	id  string
	log *slog.Logger
	acc fileAccess
}

var (
	_ fs.NodeOpener    = (*snapshotNode)(nil)
	_ fs.NodeGetattrer = (*snapshotNode)(nil)
	_ fs.NodeSetattrer = (*snapshotNode)(nil)
	_ fs.NodeReader    = (*snapshotNode)(nil)
)

func (n *snapshotNode) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	si, err := n.eng.SnapshotInfo(n.id)
	if err != nil {
		return snapshotErrno(err)
	}
	n.acc.fillSnapshotAttr(&out.Attr, si)
	return 0
}

// Setattr refuses every change (refusedChange): a snapshot file's content
// and attributes are fixed.
func (n *snapshotNode) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	si, err := n.eng.SnapshotInfo(n.id)
	if err != nil {
		return snapshotErrno(err)
	}
	n.acc.fillSnapshotAttr(&out.Attr, si)
	return refuseSetattr(ctx, n.log, n.id, in, &out.Attr)
}

// Open allows reading only. A snapshot's content never changes, so the
// kernel may keep it cached.
func (n *snapshotNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC) != 0 {
		return nil, 0, syscall.EROFS
	}
	if _, err := n.eng.SnapshotInfo(n.id); err != nil {
		return nil, 0, snapshotErrno(err)
	}
	return nil, fuse.FOPEN_KEEP_CACHE, 0
}

func (n *snapshotNode) Read(ctx context.Context, f fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	k, err := n.eng.ReadSnapshot(ctx, n.id, dest, off)
	if err != nil && !errors.Is(err, io.EOF) {
		n.log.Error("snapshot read failed", "snapshot", n.id, "off", off, "err", err)
		return nil, snapshotErrno(err)
	}
	return fuse.ReadResultData(dest[:k]), 0
}
