package cow

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/cowvol/cowvol/cow/lineage"
	"github.com/cowvol/cowvol/cow/snapfmt"
	"github.com/cowvol/cowvol/cow/snapstore"
	"github.com/cowvol/cowvol/meta"
)

var errDeletedMidFlush = errors.New("snapshot deleted during flush")

// flush uploads snapshot s: the versions born since the volume's base,
// merged into the base's segments; then the manifest; then it marks the
// snapshot completed and releases the frozen blocks it no longer needs. It
// runs in three steps: plan (flush_plan.go: the changed blocks, a segment
// at a time), upload (uploadSnapshot: packs and segments) and publish
// (manifestPublisher, shared with CopySnapshot: the manifest, last).
func (f *flusher) flush(ctx context.Context, s *snapshot) (err error) {
	f.env.gc.RLock()
	defer f.env.gc.RUnlock()
	r := s.record()
	if r.Deleted {
		return errDeletedMidFlush
	}
	if r.CopyOf != "" {
		return f.env.engine.flushCopy(ctx, s)
	}
	v, err := f.env.engine.lookup(r.VolumeID)
	if errors.Is(err, ErrClosed) {
		return err // shutting down (Close marks the engine closed before it stops the flusher)
	}
	if err != nil {
		return fmt.Errorf("%w: volume %s is gone", errPermanent, r.VolumeID)
	}
	st, err := f.env.engine.store(r.Store)
	if err != nil {
		return fmt.Errorf("%w: %v", errPermanent, err)
	}
	// The snapshot's lineage: its volume's (nil: plaintext).
	k, err := f.env.lineages.Get(r.Encryption)
	if err != nil {
		return fmt.Errorf("snapshot %s: %w", r.ID, err)
	}
	base, err := f.flushBase(ctx, v, r)
	if err != nil {
		return err
	}
	plan := newFlushPlan(f.env.meta, v.id, base.gen, r.Gen, base.extra())
	total, err := plan.countChanges()
	if err != nil {
		return err
	}

	// A flush in progress holds a lease, so that garbage collection by
	// another daemon on the same store spares the packs and segments it
	// stores before its manifest names them.
	lease, stopLease, err := f.env.engine.holdLease(ctx, st, r.ID)
	if err != nil {
		return err
	}
	defer stopLease()
	// Every store request from here on stops when the lease is lost.
	ctx = lease.ctx
	defer func() { err = lease.blame(err) }()

	pub := &manifestPublisher{log: f.env.log, st: st, s: s, k: k, lease: lease}
	if m, mb, err := pub.adopt(ctx); err != nil || m != nil {
		if err != nil {
			return err
		}
		return f.completeFlush(ctx, s, v, st, m, mb, changesCount(total), nil)
	}
	pw := newPackWriter(ctx, st)
	defer func() { f.closePacks(pw, err != nil && !pub.sent, r.ID) }()
	ahead := startPlanAhead(plan)
	err = f.uploadSnapshot(ctx, s, v, k, pw, base, ahead, total)
	ahead.close()
	if err != nil {
		return err
	}
	m, mb, err := pub.publish(ctx, f.newManifest(r, base.segs))
	if err != nil {
		return err
	}
	return f.completeFlush(ctx, s, v, st, m, mb, changesCount(total), pw)
}

// newManifest is snapshot r's manifest, of segments segs.
func (f *flusher) newManifest(r meta.SnapshotRecord, segs map[uint64]snapfmt.SegmentRef) *snapfmt.Manifest {
	m := &snapfmt.Manifest{
		SnapshotID:  r.ID,
		VolumeID:    r.VolumeID,
		VolumeSize:  r.VolumeSize,
		BlockSize:   r.BlockSize,
		StartTime:   r.StartTime,
		Description: r.Description,
		OutpostArn:  r.OutpostArn,
		OwnerID:     f.env.accountID,
		Tags:        tagsToFormat(tagsFromMeta(r.Tags)),
		Encryption:  lineage.ToFormat(r.Encryption),
		// The manifest is stored, and the snapshot complete, just after.
		CompletionTime: time.Now().UTC().Truncate(time.Millisecond),
	}
	for _, sr := range segs {
		m.Segments = append(m.Segments, sr)
		m.DataBytes += int64(sr.Blocks) * int64(r.BlockSize)
	}
	sort.Slice(m.Segments, func(i, j int) bool { return m.Segments[i].Index < m.Segments[j].Index })
	return m
}

// changesCount is the number of changed blocks a flush logs.
type changesCount int

// completeFlush finishes snapshot s of volume v once its manifest m (encoded
// mb) is stored in st: the volume's hold, the completed record, the base,
// the release of frozen versions. pw is nil when an earlier attempt stored
// the manifest.
func (f *flusher) completeFlush(ctx context.Context, s *snapshot, v *volume, st snapstore.Store, m *snapfmt.Manifest, mb []byte, changed changesCount, pw *packWriter) error {
	r := s.record()
	f.env.reader.cacheManifest(st, snapfmt.ManifestKey(r.ID), m)
	// The volume's next snapshot builds on this one: it keeps its own
	// copy of the manifest (a hold), so that a deletion of the snapshot,
	// by this daemon or another one on the same store, leaves the data
	// the volume depends on in place.
	hold := snapfmt.HoldKey(v.id, r.ID)
	if err := st.Put(ctx, hold, mb); err != nil {
		return fmt.Errorf("hold manifest: %w", err)
	}
	f.env.reader.cacheManifest(st, hold, m)

	r = s.complete(m)
	if err := f.env.meta.PutSnapshot(r); err != nil {
		return err
	}
	if err := f.env.engine.setBase(v, hold, r.Store, r.Gen); err != nil {
		return err
	}
	log := f.env.log.With("snapshot", r.ID, "volume", v.id, "changed_blocks", int(changed), "data_bytes", m.DataBytes)
	if pw != nil {
		log = log.With("packs", pw.packs, "pack_bytes", pw.bytes)
	}
	log.Info("snapshot completed")
	return f.releaseFrozen(v, r.Gen)
}
