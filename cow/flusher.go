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

// Flush tuning.
const (
	flushWorkers = 8 // blocks hashed, compressed and stored in parallel
	// flushRetryMax bounds the backoff between attempts at a flush.
	flushRetryMax = 30 * time.Second
	// DefaultFlushDeadline is how long a snapshot keeps retrying a
	// failing store before it ends in state error.
	DefaultFlushDeadline = 10 * time.Minute
)

// errPermanent marks a flush failure that retrying cannot fix.
var errPermanent = errors.New("permanent")

func (e *Engine) wakeFlusher() {
	select {
	case e.flushWake <- struct{}{}:
	default:
	}
}

// flushLoop is the background flusher: it takes pending snapshots one at a
// time, oldest first, each volume's in generation order (a snapshot builds
// on the one before), and moves their frozen blocks into snapshot storage.
func (e *Engine) flushLoop() {
	defer e.wg.Done()
	// Frozen versions that a crash kept from being released go first,
	// once the volume's map is loaded (releaseFrozen looks up blocks).
	for _, v := range e.allVolumes() {
		if err := v.waitMapped(e.ctx); err != nil {
			continue // damaged, or the engine stops
		}
		v.mapMu.Lock()
		baseGen := v.record.BaseGen
		v.mapMu.Unlock()
		if baseGen > 0 {
			if err := e.releaseFrozen(v, baseGen); err != nil {
				e.log.Warn("releasing frozen blocks", "volume", v.id, "err", err)
			}
		}
	}
	for {
		s, dropped := e.nextFlush()
		for _, r := range dropped {
			if r.CopyOf != "" {
				e.dropCopyHold(r)
			}
		}
		if s == nil {
			select {
			case <-e.ctx.Done():
				return
			case <-e.flushWake:
				continue
			}
		}
		e.flushWithRetry(s)
		e.snapshots.mu.Lock()
		close(e.snapshots.inFlight.done)
		e.snapshots.inFlight = nil
		e.snapshots.mu.Unlock()
		if e.ctx.Err() != nil {
			return
		}
	}
}

// flight is a flush under way, from its pick to its outcome recorded.
type flight struct {
	volID string
	done  chan struct{} // closed when the flush is over
}

// nextFlush picks the pending snapshot to flush next, dropping pending
// snapshots that were deleted (it returns their records), and records it as
// e.snapshots.inFlight.
func (e *Engine) nextFlush() (pick *snapshot, dropped []meta.SnapshotRecord) {
	e.snapshots.mu.Lock()
	defer e.snapshots.mu.Unlock()
	first := map[string]*snapshot{} // per volume: lowest generation pending
	for id, s := range e.snapshots.byID {
		r := s.record()
		if r.State != string(SnapshotPending) {
			continue
		}
		if r.Deleted {
			if err := e.meta.DeleteSnapshot(id); err != nil {
				e.log.Warn("dropping deleted snapshot", "snapshot", id, "err", err)
				continue
			}
			delete(e.snapshots.byID, id)
			dropped = append(dropped, r)
			continue
		}
		if f, ok := first[r.VolumeID]; !ok || r.Gen < f.record().Gen {
			first[r.VolumeID] = s
		}
	}
	for _, s := range first {
		if pick == nil || s.record().StartTime.Before(pick.record().StartTime) {
			pick = s
		}
	}
	if pick != nil {
		e.snapshots.inFlight = &flight{volID: pick.record().VolumeID, done: make(chan struct{})}
	}
	return pick, dropped
}

// flushWithRetry flushes s, retrying with exponential backoff until it
// succeeds, fails permanently or the flush deadline passes; then it records the
// outcome.
func (e *Engine) flushWithRetry(s *snapshot) {
	r := s.record()
	log := e.log.With("snapshot", r.ID, "volume", r.VolumeID)
	start := time.Now()
	backoff := e.retryBase
	for attempt := 1; ; attempt++ {
		// No deadline on the attempt itself: a healthy flush of a big
		// volume may take longer than the retry window. A store call
		// that hangs is cut off by the store's call timeout.
		err := e.flush(e.ctx, s)
		if err == nil {
			return
		}
		if e.ctx.Err() != nil {
			return // shutting down: the flush resumes at the next start
		}
		giveUp := errors.Is(err, errDeletedMidFlush) || errors.Is(err, errPermanent) || time.Since(start) > e.flushDeadline
		if giveUp {
			// A stored manifest makes the snapshot complete in other
			// daemons' eyes: an earlier attempt may have stored it.
			// It goes first; until it is gone, keep retrying.
			// (With the store down and no attempt of this run having
			// sent the manifest, it gives up: the store never saw
			// one from this run; DeleteSnapshot of a failed
			// snapshot deletes any manifest an earlier run left.)
			if derr := e.unpublish(r); derr != nil && s.manifestSent.Load() {
				log.Warn("snapshot failed but its manifest may be stored and cannot be deleted; retrying", "attempt", attempt, "err", err, "delete_err", derr)
				giveUp = false
			}
		}
		switch {
		case giveUp && errors.Is(err, errDeletedMidFlush):
			log.Info("snapshot deleted while flushing")
			return
		case giveUp:
			log.Error("snapshot failed", "attempts", attempt, "err", err)
			e.failSnapshot(s, err)
			return
		}
		log.Warn("snapshot flush failed; retrying", "attempt", attempt, "backoff", backoff, "err", err)
		// Why it is still pending, for DescribeSnapshots (not recorded:
		// a restart retries afresh).
		s.mu.Lock()
		s.rec.StatusMessage = fmt.Sprintf("attempt %d failed; retrying: %v", attempt, err)
		s.mu.Unlock()
		select {
		case <-e.ctx.Done():
			return
		case <-time.After(min(backoff, e.flushDeadline)):
		}
		backoff = min(2*backoff, flushRetryMax)
	}
}

// packDiscardTimeout bounds the deletion of a failed attempt's packs.
const packDiscardTimeout = 30 * time.Second

// closePacks ends a flush attempt's pack writer: it waits for the uploads
// in flight and, after an attempt that failed before it sent its manifest
// (failed), deletes the packs it stored, best effort, before the retry: left
// for the collector, they would take the store's space for its whole grace
// period, attempt after attempt (a full disk filled fuller by every retry).
func (e *Engine) closePacks(pw *packWriter, failed bool, snapID string) {
	pw.abort()
	if !failed {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(e.ctx), packDiscardTimeout)
	defer cancel()
	n, err := pw.discard(ctx)
	switch {
	case err != nil:
		e.log.Warn("deleting a failed flush attempt's packs (the rest is garbage the collector takes)", "snapshot", snapID, "deleted", n, "err", err)
	case n > 0:
		e.log.Info("deleted a failed flush attempt's packs", "snapshot", snapID, "packs", n)
	}
}

// unpublish deletes snapshot r's manifest, stored by an attempt that then
// failed, if there is one. A valid manifest under its key that names
// another snapshot or volume (errForeignManifest) is not r's to delete: it
// stays, for whoever stored it.
func (e *Engine) unpublish(r meta.SnapshotRecord) error {
	st, err := e.store(r.Store)
	if err != nil {
		return nil // no store, no manifest
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(e.ctx), time.Minute)
	defer cancel()
	foreign, err := foreignManifest(ctx, st, r)
	if err != nil || foreign {
		return err
	}
	if err := st.Delete(ctx, snapfmt.ManifestKey(r.ID)); err != nil {
		return fmt.Errorf("delete manifest of %s: %w", r.ID, err)
	}
	e.reader.objects.remove(cacheKey("m", st, snapfmt.ManifestKey(r.ID)))
	return nil
}

func (e *Engine) failSnapshot(s *snapshot, cause error) {
	s.mu.Lock()
	s.rec.State = string(SnapshotError)
	s.rec.StatusMessage = cause.Error()
	r := s.rec
	s.mu.Unlock()
	err := e.meta.PutSnapshot(r)
	if err == nil {
		err = e.metaSync.sync()
	}
	if err != nil {
		// It stays pending on disk: the next start tries it again.
		e.log.Error("cannot record the snapshot's failure", "snapshot", r.ID, "err", err)
		return
	}
	// An attempt may have stored the manifest (the snapshot's visible
	// root, for other daemons too) and then failed on the hold: a failed
	// snapshot must not be seen anywhere as completed. But a manifest
	// that names another snapshot (errForeignManifest) was never ours to
	// delete: it stays, for whoever stored it.
	st, err := e.store(r.Store)
	if err != nil {
		return
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(e.ctx), 30*time.Second)
	defer cancel()
	var keys []string
	if foreign, err := foreignManifest(dctx, st, r); err != nil || !foreign {
		keys = append(keys, snapfmt.ManifestKey(r.ID))
	}
	if r.CopyOf != "" {
		e.dropCopyHold(r)
	}
	if v, err := e.lookup(r.VolumeID); err == nil {
		v.mapMu.Lock()
		if v.record.BaseManifest != snapfmt.HoldKey(r.VolumeID, r.ID) {
			keys = append(keys, snapfmt.HoldKey(r.VolumeID, r.ID))
		}
		v.mapMu.Unlock()
	}
	for _, key := range keys {
		if err := st.Delete(dctx, key); err != nil {
			e.log.Warn("cannot remove what a failed snapshot stored; garbage collection ignores it but another daemon may list it",
				"snapshot", r.ID, "key", key, "err", err)
		}
	}
}

var errDeletedMidFlush = errors.New("snapshot deleted during flush")

// flush uploads snapshot s: the versions born since the volume's base,
// merged into the base's segments; then the manifest; then it marks the
// snapshot completed and releases the frozen blocks it no longer needs. It
// runs in three steps: plan (flush_plan.go: the changed blocks, a segment
// at a time), upload (uploadSnapshot: packs and segments) and publish
// (manifestPublisher, shared with CopySnapshot: the manifest, last).
func (e *Engine) flush(ctx context.Context, s *snapshot) (err error) {
	e.gc.RLock()
	defer e.gc.RUnlock()
	r := s.record()
	if r.Deleted {
		return errDeletedMidFlush
	}
	if r.CopyOf != "" {
		return e.flushCopy(ctx, s)
	}
	v, err := e.lookup(r.VolumeID)
	if errors.Is(err, ErrClosed) {
		return err // shutting down (Close marks the engine closed before it stops the flusher)
	}
	if err != nil {
		return fmt.Errorf("%w: volume %s is gone", errPermanent, r.VolumeID)
	}
	st, err := e.store(r.Store)
	if err != nil {
		return fmt.Errorf("%w: %v", errPermanent, err)
	}
	// The snapshot's lineage: its volume's (nil: plaintext).
	k, err := e.lineages.Get(r.Encryption)
	if err != nil {
		return fmt.Errorf("snapshot %s: %w", r.ID, err)
	}
	base, err := e.flushBase(ctx, v, r)
	if err != nil {
		return err
	}
	plan := newFlushPlan(e.meta, v.id, base.gen, r.Gen, base.extra())
	total, err := plan.countChanges()
	if err != nil {
		return err
	}

	// A flush in progress holds a lease, so that garbage collection by
	// another daemon on the same store spares the packs and segments it
	// stores before its manifest names them.
	lease, stopLease, err := e.holdLease(ctx, st, r.ID)
	if err != nil {
		return err
	}
	defer stopLease()
	// Every store request from here on stops when the lease is lost.
	ctx = lease.ctx
	defer func() { err = lease.blame(err) }()

	pub := &manifestPublisher{log: e.log, st: st, s: s, k: k, lease: lease}
	if m, mb, err := pub.adopt(ctx); err != nil || m != nil {
		if err != nil {
			return err
		}
		return e.completeFlush(ctx, s, v, st, m, mb, changesCount(total), nil)
	}
	pw := newPackWriter(ctx, st)
	defer func() { e.closePacks(pw, err != nil && !pub.sent, r.ID) }()
	ahead := startPlanAhead(plan)
	err = e.uploadSnapshot(ctx, s, v, k, pw, base, ahead, total)
	ahead.close()
	if err != nil {
		return err
	}
	m, mb, err := pub.publish(ctx, e.newManifest(r, base.segs))
	if err != nil {
		return err
	}
	return e.completeFlush(ctx, s, v, st, m, mb, changesCount(total), pw)
}

// newManifest is snapshot r's manifest, of segments segs.
func (e *Engine) newManifest(r meta.SnapshotRecord, segs map[uint64]snapfmt.SegmentRef) *snapfmt.Manifest {
	m := &snapfmt.Manifest{
		SnapshotID:  r.ID,
		VolumeID:    r.VolumeID,
		VolumeSize:  r.VolumeSize,
		BlockSize:   r.BlockSize,
		StartTime:   r.StartTime,
		Description: r.Description,
		OutpostArn:  r.OutpostArn,
		OwnerID:     e.accountID,
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
func (e *Engine) completeFlush(ctx context.Context, s *snapshot, v *volume, st snapstore.Store, m *snapfmt.Manifest, mb []byte, changed changesCount, pw *packWriter) error {
	r := s.record()
	e.reader.cacheManifest(st, snapfmt.ManifestKey(r.ID), m)
	// The volume's next snapshot builds on this one: it keeps its own
	// copy of the manifest (a hold), so that a deletion of the snapshot,
	// by this daemon or another one on the same store, leaves the data
	// the volume depends on in place.
	hold := snapfmt.HoldKey(v.id, r.ID)
	if err := st.Put(ctx, hold, mb); err != nil {
		return fmt.Errorf("hold manifest: %w", err)
	}
	e.reader.cacheManifest(st, hold, m)

	s.mu.Lock()
	s.rec.State = string(SnapshotCompleted)
	s.rec.StatusMessage = ""
	s.rec.Progress = 100
	s.rec.CompletionTime = m.CompletionTime
	s.rec.DataBytes = m.DataBytes
	r = s.rec
	s.mu.Unlock()
	if err := e.meta.PutSnapshot(r); err != nil {
		return err
	}
	if err := e.setBase(v, hold, r.Store, r.Gen); err != nil {
		return err
	}
	log := e.log.With("snapshot", r.ID, "volume", v.id, "changed_blocks", int(changed), "data_bytes", m.DataBytes)
	if pw != nil {
		log = log.With("packs", pw.packs, "pack_bytes", pw.bytes)
	}
	log.Info("snapshot completed")
	return e.releaseFrozen(v, r.Gen)
}

// releaseFrozen runs after volume v's snapshot at generation gen completed:
// versions born at or before gen that are no longer the volume's newest are
// freed (their data is in snapshot storage now) and their change records
// dropped. A version still live keeps its record, so that it is found and
// freed here once a later write supersedes it and a later snapshot completes.
func (e *Engine) releaseFrozen(v *volume, gen uint64) error {
	if err := v.waitMapped(e.ctx); err != nil {
		return err
	}
	type rec struct {
		gen, blk uint64
		x        meta.Extent
	}
	var recs []rec
	err := e.meta.ChangesBetween(v.id, 0, gen, func(g, blk uint64, x meta.Extent) error {
		recs = append(recs, rec{g, blk, x})
		return nil
	})
	if err != nil || len(recs) == 0 {
		return err
	}
	var b meta.Batch
	var free []uint64
	for _, r := range recs {
		lk := v.locks.of(r.blk)
		lk.Lock()
		v.mapMu.Lock()
		cur := v.live.get(r.blk)
		v.mapMu.Unlock()
		live := cur.mapped() && uint64(cur.gen) == r.gen
		switch {
		case live:
		case cur.mapped() && !cur.captured():
			// Superseded by a mapping no sync round has made durable
			// yet: the durable live map still refers to this slot, and
			// a crash now would find it punched. A later release (the
			// next completed snapshot, or the next start) frees it.
		default:
			b.DeleteChange(v.id, r.gen, r.blk)
			if !r.x.Zero() {
				free = append(free, r.x.Slot)
			}
		}
		lk.Unlock()
	}
	if err := e.meta.Apply(&b); err != nil {
		return err
	}
	// The slots are retired, not punched here: the mapping that superseded
	// each may have been captured by a sync round that has not committed
	// it yet. The next round, which commits after that one, punches them
	// once its own changes are durable; a slot is reused a round later.
	v.mapMu.Lock()
	for _, s := range free {
		v.slots.retire(s, true)
	}
	v.mapMu.Unlock()
	if len(free) > 0 {
		e.log.Debug("released frozen blocks", "volume", v.id, "gen", gen, "blocks", len(free))
	}
	return nil
}

// foreignManifest reports whether the object under snapshot r's manifest
// key is a valid manifest of another snapshot or volume. Nothing there, or
// an object that does not decode (a torn put of our own), is not foreign.
func foreignManifest(ctx context.Context, st snapstore.Store, r meta.SnapshotRecord) (bool, error) {
	b, err := st.Get(ctx, snapfmt.ManifestKey(r.ID))
	switch {
	case errors.Is(err, snapstore.ErrNotFound), errors.Is(err, snapstore.ErrCorrupt):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("read the manifest of %s: %w", r.ID, err)
	}
	m, err := snapfmt.DecodeManifest(b)
	if err != nil {
		return false, nil
	}
	return m.SnapshotID != r.ID || m.VolumeID != r.VolumeID, nil
}
