package cow

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/cowvol/cowvol/cow/snapfmt"
	"github.com/cowvol/cowvol/meta"
)

// ReadSnapshot reads len(p) bytes at off of snapshot id's content, pending
// or completed. Past the end it returns io.EOF.
func (e *Engine) ReadSnapshot(ctx context.Context, id string, p []byte, off int64) (int, error) {
	s, err := e.lookupSnapshot(ctx, id)
	if err != nil {
		return 0, err
	}
	if err := e.checkReadable(ctx, s, false); err != nil {
		return 0, err
	}
	c := snapshotContent{reader: e.reader, meta: e.meta, volumes: e, buffers: &e.buffers}
	return c.readAt(ctx, s, p, off)
}

// snapshotContent reads snapshots' content whatever their state: a
// completed one from its manifest, a pending one from its volume's frozen
// blocks and base. It needs the snapshot reader, the metadata store (the
// frozen versions), volume lookups and read buffers.
type snapshotContent struct {
	reader  *snapshotReader
	meta    *meta.Store
	volumes volumeFinder
	buffers *bufferPool
}

// volumeFinder finds an open volume by ID: the engine's volume table.
type volumeFinder interface {
	lookup(id string) (*volume, error)
}

// readAt reads len(p) bytes at off of snapshot s's content (ReadSnapshot,
// once s is known readable).
func (c snapshotContent) readAt(ctx context.Context, s *snapshot, p []byte, off int64) (int, error) {
	r := s.record()
	if off < 0 {
		return 0, fmt.Errorf("%w: negative offset", ErrOutOfRange)
	}
	if off >= r.VolumeSize {
		return 0, io.EOF
	}
	var eof error
	if rest := r.VolumeSize - off; int64(len(p)) > rest {
		p, eof = p[:rest], io.EOF
	}
	bs := int64(r.BlockSize)
	buf := c.buffers.get(int(bs))
	defer c.buffers.put(buf)
	n := 0
	for n < len(p) {
		blk, in := uint64(off)/uint64(bs), off%bs
		m := min(int64(len(p)-n), bs-in)
		if err := c.readBlock(ctx, s, blk, buf); err != nil {
			return n, fmt.Errorf("read snapshot %s block %d: %w", r.ID, blk, err)
		}
		copy(p[n:], buf[in:in+m])
		n += int(m)
		off += m
	}
	return n, eof
}

// readBlock fills dst with block blk as snapshot s holds it. A
// completed snapshot reads its manifest. A pending one reads the newest
// frozen version born after its volume's base, else the base.
func (c snapshotContent) readBlock(ctx context.Context, s *snapshot, blk uint64, dst []byte) error {
	r := s.record()
	if r.State == string(SnapshotCompleted) {
		return c.reader.readStoredBlock(ctx, r.Store, snapfmt.ManifestKey(r.ID), blk, dst)
	}
	if r.State != string(SnapshotPending) {
		return fmt.Errorf("%w: snapshot %s is in state %s", ErrIncorrectState, r.ID, r.State)
	}
	if r.CopyOf != "" {
		// A pending copy reads as its source, through its hold.
		return c.reader.readStoredBlock(ctx, r.CopyFromStore, copyHold(r), blk, dst)
	}
	v, err := c.volumes.lookup(r.VolumeID)
	if err != nil {
		return err
	}
	lk := v.locks.of(blk)
	lk.RLock()
	defer lk.RUnlock()
	v.mapMu.Lock()
	baseKey, baseStore, baseGen := v.record.BaseManifest, v.record.BaseStore, v.record.BaseGen
	v.mapMu.Unlock()
	for gen := r.Gen; gen > baseGen; gen-- {
		x, err := c.meta.Change(v.id, gen, blk)
		if errors.Is(err, meta.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if x.Zero() {
			clear(dst)
			return nil
		}
		return v.readSlot(blk, x.Slot, dst)
	}
	if baseKey == "" {
		clear(dst)
		return nil
	}
	return c.reader.readStoredBlock(ctx, baseStore, baseKey, blk, dst)
}
