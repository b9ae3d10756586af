package cow

import (
	"fmt"
	"io"
	"sync/atomic"
)

// Volume is an open handle on a volume, as a FUSE open file holds it. While
// any handle is open the volume is in-use and cannot be deleted.
type Volume struct {
	v      *volume
	closed atomic.Bool
}

// OpenVolume opens a handle on volume id.
func (e *Engine) OpenVolume(id string) (*Volume, error) {
	v, err := e.lookup(id)
	if err != nil {
		return nil, err
	}
	v.mapMu.Lock()
	defer v.mapMu.Unlock()
	if v.doomed {
		return nil, fmt.Errorf("%w: %s", ErrVolumeNotFound, id)
	}
	v.opens++
	return &Volume{v: v}, nil
}

// ID is the volume's ID.
func (h *Volume) ID() string { return h.v.id }

// Size is the volume's size in bytes.
func (h *Volume) Size() int64 { return h.v.sizeNow() }

// BlockSize is the volume's copy-on-write grain in bytes.
func (h *Volume) BlockSize() int { return int(h.v.blockSize) }

// ReadAt reads len(p) bytes at off. Blocks never written read as zeros.
// Reading past the end returns io.EOF with the bytes before it.
func (h *Volume) ReadAt(p []byte, off int64) (int, error) {
	if h.closed.Load() {
		return 0, ErrClosed
	}
	if off < 0 {
		return 0, fmt.Errorf("%w: negative offset %d", ErrOutOfRange, off)
	}
	if off >= h.v.sizeNow() {
		return 0, io.EOF
	}
	var eof error
	if rest := h.v.sizeNow() - off; int64(len(p)) > rest {
		p, eof = p[:rest], io.EOF
	}
	h.v.env.bg.foreground()
	if err := h.v.readAt(p, off); err != nil {
		return 0, err
	}
	return len(p), eof
}

// WriteAt writes p at off; the whole range must lie inside the volume.
func (h *Volume) WriteAt(p []byte, off int64) (int, error) {
	if err := h.check(off, int64(len(p))); err != nil {
		return 0, err
	}
	h.v.env.bg.foreground()
	if err := h.v.writeAt(p, off); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Punch makes [off, off+n) read as zeros and frees the space of whole blocks
// in it (discard, fallocate PUNCH_HOLE and ZERO_RANGE).
func (h *Volume) Punch(off, n int64) error {
	if err := h.check(off, n); err != nil {
		return err
	}
	h.v.env.bg.foreground()
	return h.v.punch(off, n)
}

// Sync makes every write completed before the call durable.
func (h *Volume) Sync() error {
	if h.closed.Load() {
		return ErrClosed
	}
	return h.v.sync()
}

// Close releases the handle. It does not sync.
func (h *Volume) Close() error {
	if h.closed.Swap(true) {
		return nil
	}
	h.v.mapMu.Lock()
	h.v.opens--
	h.v.mapMu.Unlock()
	return nil
}

func (h *Volume) check(off, n int64) error {
	if h.closed.Load() {
		return ErrClosed
	}
	if off < 0 || n < 0 || off > h.v.sizeNow() || n > h.v.sizeNow()-off {
		return fmt.Errorf("%w: %d+%d on a %d-byte volume", ErrOutOfRange, off, n, h.v.sizeNow())
	}
	return nil
}
