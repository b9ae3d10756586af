package fusefs

import (
	"context"
	"errors"
	"io"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/cowvol/cowvol/cow"
)

// resendBit marks a request the kernel sent again (FUSE_NOTIFY_RESEND)
// after the process that read it first died.
const resendBit = 1 << 63

// Open opens a volume file (direct I/O, parallel direct writes) or a
// snapshot file (read-only; its content never changes, so the kernel may
// cache it). A volume's handle is recorded before the answer (openTable).
func (r *rawFS) Open(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	r.gate.enter()
	defer r.gate.leave()
	kind, id := r.nodes.resolve(in.NodeId)
	switch {
	case kind == kindSnapshot && id != "":
		if in.Flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC) != 0 {
			return fuse.EROFS
		}
		if _, err := r.eng.SnapshotInfo(id); err != nil {
			return status(snapshotErrno(err))
		}
		out.OpenFlags = fuse.FOPEN_KEEP_CACHE
		return fuse.OK
	case kind == kindVolume && id != "":
		if in.Flags&syscall.O_TRUNC != 0 {
			return fuse.EPERM
		}
		fh, err := r.openVolume(id, in.NodeId, in.Unique&^resendBit, in.Flags)
		if err != nil {
			return status(toErrno(err))
		}
		out.Fh = fh
		out.OpenFlags = fuse.FOPEN_DIRECT_IO | fuse.FOPEN_PARALLEL_DIRECT_WRITES
		return fuse.OK
	case kind == kindVolume || kind == kindSnapshot:
		return status(syscall.ESTALE)
	default:
		return fuse.EISDIR
	}
}

// openVolume opens a handle on volume id for the OPEN request unique,
// recorded before it is answered. An OPEN the kernel resends after a
// takeover gets the handle its first try recorded.
func (r *rawFS) openVolume(id string, ino, unique uint64, flags uint32) (uint64, error) {
	if fh, ok := r.opens.handleOf(unique); ok && r.handle(fh) != nil {
		return fh, nil
	}
	h, err := r.eng.OpenVolume(id)
	if err != nil {
		return 0, err
	}
	fh := uint64(r.incarnation)<<32 | uint64(r.nextFh.Add(1))
	if err := r.opens.add(openRecord{fh: fh, ino: ino, unique: unique, flags: flags, id: id}); err != nil {
		h.Close()
		return 0, err
	}
	r.mu.Lock()
	r.handles[fh] = h
	r.mu.Unlock()
	return fh, nil
}

// adopt takes over an open handle a predecessor recorded.
func (r *rawFS) adopt(rec openRecord) error {
	h, err := r.eng.OpenVolume(rec.id)
	if err != nil {
		return err
	}
	r.nodes.learnVolume(rec.id)
	r.mu.Lock()
	r.handles[rec.fh] = h
	r.mu.Unlock()
	return nil
}

func (r *rawFS) handle(fh uint64) *cow.Volume {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.handles[fh]
}

// volumeHandle returns the handle a request on node with handle fh uses.
// A handle no record explains (a predecessor's record lost) is opened on
// first use and kept until its RELEASE.
func (r *rawFS) volumeHandle(node, fh uint64) (*cow.Volume, syscall.Errno) {
	if h := r.handle(fh); h != nil {
		return h, 0
	}
	kind, id := r.nodes.resolve(node)
	if kind != kindVolume || id == "" {
		return nil, syscall.EBADF
	}
	h, err := r.eng.OpenVolume(id)
	if err != nil {
		return nil, toErrno(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if old := r.handles[fh]; old != nil {
		h.Close()
		return old, 0
	}
	r.log.Warn("a file handle no record explains: opened on first use", "volume", id, "fh", fh)
	r.handles[fh] = h
	return h, 0
}

func (r *rawFS) Read(cancel <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	r.gate.enter()
	defer r.gate.leave()
	rec := r.begin(OpRead)
	defer rec.end()
	dest := buf[:min(len(buf), int(in.Size))]
	if kind, id := r.nodes.resolve(in.NodeId); kind == kindSnapshot {
		return r.readSnapshot(id, dest, int64(in.Offset))
	}
	h, errno := r.volumeHandle(in.NodeId, in.Fh)
	if errno != 0 {
		return nil, status(errno)
	}
	n, err := h.ReadAt(dest, int64(in.Offset))
	if errors.Is(err, io.EOF) {
		rec.done(h.ID(), int64(n), nil)
	} else {
		rec.done(h.ID(), int64(n), err)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		if !errors.Is(err, cow.ErrImpaired) { // logged once, where it is found
			r.log.Error("read failed", "volume", h.ID(), "off", in.Offset, "len", len(dest), "err", err)
		}
		return nil, status(toErrno(err))
	}
	return fuse.ReadResultData(dest[:n]), fuse.OK
}

func (r *rawFS) readSnapshot(id string, dest []byte, off int64) (fuse.ReadResult, fuse.Status) {
	if id == "" {
		return nil, status(syscall.ESTALE)
	}
	k, err := r.eng.ReadSnapshot(context.Background(), id, dest, off)
	if err != nil && !errors.Is(err, io.EOF) {
		r.log.Error("snapshot read failed", "snapshot", id, "off", off, "err", err)
		return nil, status(snapshotErrno(err))
	}
	return fuse.ReadResultData(dest[:k]), fuse.OK
}

func (r *rawFS) Write(cancel <-chan struct{}, in *fuse.WriteIn, data []byte) (uint32, fuse.Status) {
	r.gate.enter()
	defer r.gate.leave()
	rec := r.begin(OpWrite)
	defer rec.end()
	h, errno := r.volumeHandle(in.NodeId, in.Fh)
	if errno != 0 {
		return 0, status(errno)
	}
	n, err := h.WriteAt(data, int64(in.Offset))
	rec.done(h.ID(), int64(n), err)
	if err != nil {
		if !errors.Is(err, cow.ErrOutOfRange) {
			r.log.Error("write failed", "volume", h.ID(), "off", in.Offset, "len", len(data), "err", err)
		}
		return 0, status(toErrno(err))
	}
	return uint32(n), fuse.OK
}

// Fsync makes every completed write durable, data then metadata, before
// it answers.
func (r *rawFS) Fsync(cancel <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	r.gate.enter()
	defer r.gate.leave()
	rec := r.begin(OpFsync)
	defer rec.end()
	return r.sync(in.NodeId, in.Fh, rec)
}

// Flush (close(2) of a descriptor) syncs too: a writer that closes without
// fsync still gets its data on disk before close returns.
func (r *rawFS) Flush(cancel <-chan struct{}, in *fuse.FlushIn) fuse.Status {
	r.gate.enter()
	defer r.gate.leave()
	rec := r.begin(OpFlush)
	defer rec.end()
	return r.sync(in.NodeId, in.Fh, rec)
}

func (r *rawFS) sync(node, fh uint64, rec *ioRecord) fuse.Status {
	if kind, _ := r.nodes.resolve(node); kind != kindVolume {
		return fuse.OK
	}
	h, errno := r.volumeHandle(node, fh)
	if errno != 0 {
		return status(errno)
	}
	err := h.Sync()
	rec.done(h.ID(), 0, err)
	if err != nil {
		r.log.Error("fsync failed", "volume", h.ID(), "err", err)
		return status(toErrno(err))
	}
	return fuse.OK
}

// Release closes a handle. Its record goes first: a RELEASE the kernel
// resends to a successor finds nothing to do.
func (r *rawFS) Release(cancel <-chan struct{}, in *fuse.ReleaseIn) {
	r.gate.enter()
	defer r.gate.leave()
	if err := r.opens.remove(in.Fh); err != nil {
		r.log.Error("release", "fh", in.Fh, "err", err)
	}
	r.mu.Lock()
	h := r.handles[in.Fh]
	delete(r.handles, in.Fh)
	r.mu.Unlock()
	if h != nil {
		h.Close()
	}
}

// Fallocate implements fallocate(2): PUNCH_HOLE and ZERO_RANGE (what loop
// devices send for discard and write-zeroes) free the blocks; plain
// preallocation inside the volume is a no-op on a thin volume.
func (r *rawFS) Fallocate(cancel <-chan struct{}, in *fuse.FallocateIn) fuse.Status {
	r.gate.enter()
	defer r.gate.leave()
	if kind, _ := r.nodes.resolve(in.NodeId); kind == kindSnapshot {
		return fuse.EROFS
	}
	h, errno := r.volumeHandle(in.NodeId, in.Fh)
	if errno != 0 {
		return status(errno)
	}
	if !isDiscard(in.Mode) {
		return status(fallocate(r, h, in.Offset, in.Length, in.Mode))
	}
	rec := r.begin(OpDiscard)
	defer rec.end()
	errno = fallocate(r, h, in.Offset, in.Length, in.Mode)
	if errno != 0 {
		rec.done(h.ID(), 0, errno)
	} else {
		rec.done(h.ID(), int64(in.Length), nil)
	}
	return status(errno)
}

func fallocate(r *rawFS, h *cow.Volume, off, size uint64, mode uint32) syscall.Errno {
	const (
		keepSize  = unix.FALLOC_FL_KEEP_SIZE
		punch     = unix.FALLOC_FL_PUNCH_HOLE
		zeroRange = unix.FALLOC_FL_ZERO_RANGE
		noHide    = unix.FALLOC_FL_NO_HIDE_STALE
	)
	end := off + size
	if end < off || end > uint64(h.Size()) {
		if mode&keepSize != 0 && mode&(punch|zeroRange) != 0 {
			end = min(end, uint64(h.Size())) // past the end is already nothing
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
		if err := h.Punch(int64(off), int64(end-off)); err != nil {
			r.log.Error("fallocate failed", "volume", h.ID(), "off", off, "len", size, "mode", mode, "err", err)
			return toErrno(err)
		}
		return 0
	default:
		return syscall.EOPNOTSUPP
	}
}
