package fusefs

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/cowvol/cowvol/cow"
)

// volumeNode is the file <mount>/<vol-id>.
type volumeNode struct {
	fs.Inode
	eng *cow.Engine
	id  string
	log *slog.Logger
	acc fileAccess
}

var (
	_ fs.NodeOpener    = (*volumeNode)(nil)
	_ fs.NodeGetattrer = (*volumeNode)(nil)
	_ fs.NodeSetattrer = (*volumeNode)(nil)
)

func (n *volumeNode) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	vi, err := n.eng.VolumeInfo(n.id)
	if err != nil {
		return toErrno(err)
	}
	n.acc.fillVolumeAttr(&out.Attr, vi)
	return 0
}

// Setattr refuses every change (refusedChange): a volume's size is fixed,
// the daemon sets its mode and owner, and it keeps no times of its own. A
// request that changes nothing (ftruncate to the volume's size) succeeds.
func (n *volumeNode) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	vi, err := n.eng.VolumeInfo(n.id)
	if err != nil {
		return toErrno(err)
	}
	n.acc.fillVolumeAttr(&out.Attr, vi)
	return refuseSetattr(ctx, n.log, n.id, in, &out.Attr)
}

// Open opens a handle on the volume. I/O bypasses the kernel's page cache
// (FOPEN_DIRECT_IO), and direct writes to one file may run in parallel.
func (n *volumeNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if flags&syscall.O_TRUNC != 0 {
		return nil, 0, syscall.EPERM
	}
	h, err := n.eng.OpenVolume(n.id)
	if err != nil {
		return nil, 0, toErrno(err)
	}
	return &volumeHandle{h: h, log: n.log}, fuse.FOPEN_DIRECT_IO | fuse.FOPEN_PARALLEL_DIRECT_WRITES, 0
}

// volumeHandle is one open of a volume file.
type volumeHandle struct {
	h   *cow.Volume
	log *slog.Logger
}

var (
	_ fs.FileReader    = (*volumeHandle)(nil)
	_ fs.FileWriter    = (*volumeHandle)(nil)
	_ fs.FileFsyncer   = (*volumeHandle)(nil)
	_ fs.FileFlusher   = (*volumeHandle)(nil)
	_ fs.FileReleaser  = (*volumeHandle)(nil)
	_ fs.FileAllocater = (*volumeHandle)(nil)
)

func (f *volumeHandle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	n, err := f.h.ReadAt(dest, off)
	if err != nil && !errors.Is(err, io.EOF) {
		if !errors.Is(err, cow.ErrImpaired) { // the engine logged the object once
			f.log.Error("read failed", "volume", f.h.ID(), "off", off, "len", len(dest), "err", err)
		}
		return nil, toErrno(err)
	}
	return fuse.ReadResultData(dest[:n]), 0
}

func (f *volumeHandle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	n, err := f.h.WriteAt(data, off)
	if err != nil {
		if !errors.Is(err, cow.ErrOutOfRange) && !errors.Is(err, cow.ErrImpaired) {
			f.log.Error("write failed", "volume", f.h.ID(), "off", off, "len", len(data), "err", err)
		}
		return 0, toErrno(err)
	}
	return uint32(n), 0
}

// Fsync makes every completed write durable, data then metadata, before
// it answers.
func (f *volumeHandle) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	if err := f.h.Sync(); err != nil {
		f.log.Error("fsync failed", "volume", f.h.ID(), "err", err)
		return toErrno(err)
	}
	return 0
}

// Flush (close(2) of a descriptor) syncs too: a writer that closes without
// fsync still gets its data on disk before close returns.
func (f *volumeHandle) Flush(ctx context.Context) syscall.Errno {
	return f.Fsync(ctx, 0)
}

func (f *volumeHandle) Release(ctx context.Context) syscall.Errno {
	f.h.Close()
	return 0
}

// Allocate implements fallocate(2): PUNCH_HOLE and ZERO_RANGE (what loop
// devices send for discard and write-zeroes) free the blocks; plain
// preallocation inside the volume is a no-op on a thin volume.
func (f *volumeHandle) Allocate(ctx context.Context, off, size uint64, mode uint32) syscall.Errno {
	const (
		keepSize  = unix.FALLOC_FL_KEEP_SIZE
		punch     = unix.FALLOC_FL_PUNCH_HOLE
		zeroRange = unix.FALLOC_FL_ZERO_RANGE
		noHide    = unix.FALLOC_FL_NO_HIDE_STALE
	)
	end := off + size
	if end < off || end > uint64(f.h.Size()) {
		if mode&keepSize != 0 && mode&(punch|zeroRange) != 0 {
			end = min(end, uint64(f.h.Size())) // past the end is already nothing
		} else {
			return syscall.EFBIG // a volume's size is fixed
		}
	}
	if end <= off {
		return 0
	}
	switch {
	case mode == 0 || mode == keepSize:
		return 0
	case mode&^(keepSize|noHide) == punch, mode&^keepSize == zeroRange:
		if err := f.h.Punch(int64(off), int64(end-off)); err != nil {
			f.log.Error("fallocate failed", "volume", f.h.ID(), "off", off, "len", size, "mode", mode, "err", err)
			return toErrno(err)
		}
		return 0
	default:
		return syscall.EOPNOTSUPP
	}
}
