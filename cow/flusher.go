package cow

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
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
	for _, v := range e.volumes() {
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
		e.snapMu.Lock()
		close(e.inFlight.done)
		e.inFlight = nil
		e.snapMu.Unlock()
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
// e.inFlight.
func (e *Engine) nextFlush() (pick *snapshot, dropped []meta.SnapshotRecord) {
	e.snapMu.Lock()
	defer e.snapMu.Unlock()
	first := map[string]*snapshot{} // per volume: lowest generation pending
	for id, s := range e.snaps {
		r := s.record()
		if r.State != string(SnapshotPending) {
			continue
		}
		if r.Deleted {
			if err := e.meta.DeleteSnapshot(id); err != nil {
				e.log.Warn("dropping deleted snapshot", "snapshot", id, "err", err)
				continue
			}
			delete(e.snaps, id)
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
		e.inFlight = &flight{volID: pick.record().VolumeID, done: make(chan struct{})}
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
// failed, if there is one.
func (e *Engine) unpublish(r meta.SnapshotRecord) error {
	st, err := e.store(r.Store)
	if err != nil {
		return nil // no store, no manifest
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(e.ctx), time.Minute)
	defer cancel()
	if err := st.Delete(ctx, snapfmt.ManifestKey(r.ID)); err != nil {
		return fmt.Errorf("delete manifest of %s: %w", r.ID, err)
	}
	e.objects.remove(cacheKey("m", st, snapfmt.ManifestKey(r.ID)))
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
	// snapshot must not be seen anywhere as completed.
	st, err := e.store(r.Store)
	if err != nil {
		return
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(e.ctx), 30*time.Second)
	defer cancel()
	keys := []string{snapfmt.ManifestKey(r.ID)}
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
	k, err := e.lineage(r.Encryption)
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

	pub := &manifestPublisher{e: e, st: st, s: s, k: k, lease: lease}
	if m, mb, err := pub.adopt(ctx); err != nil || m != nil {
		if err != nil {
			return err
		}
		return e.completeFlush(ctx, s, v, st, m, mb, changesCount(total), nil)
	}
	pw := newPackWriter(ctx, st)
	defer func() { e.closePacks(pw, err != nil && !pub.sent, r.ID) }()
	if err := e.uploadSnapshot(ctx, s, v, k, pw, base, plan, total); err != nil {
		return err
	}
	m, mb, err := pub.publish(ctx, e.newManifest(r, base.segs))
	if err != nil {
		return err
	}
	return e.completeFlush(ctx, s, v, st, m, mb, changesCount(total), pw)
}

// flushSourceBase is what a flush builds on: the volume's base snapshot.
type flushSourceBase struct {
	gen       uint64                        // the base's generation: changes after it are new
	segs      map[uint64]snapfmt.SegmentRef // the base's segments, replaced as the flush goes
	storeName string
	st        snapstore.Store
	k         *lineage.Keys
	// recode: the base's chunks are copied rather than referenced, when
	// they are in another store (a regional snapshot of a volume whose
	// next goes to the Outpost, or back) or of another lineage (an
	// encrypted volume made from a plaintext snapshot).
	recode bool
}

// flushBase reads the base of volume v's snapshot r.
func (e *Engine) flushBase(ctx context.Context, v *volume, r meta.SnapshotRecord) (*flushSourceBase, error) {
	v.mapMu.Lock()
	key, storeName, gen := v.record.BaseManifest, v.record.BaseStore, v.record.BaseGen
	v.mapMu.Unlock()
	b := &flushSourceBase{gen: gen, segs: map[uint64]snapfmt.SegmentRef{}, storeName: storeName}
	if key == "" {
		return b, nil
	}
	var err error
	if b.st, err = e.store(storeName); err != nil {
		return nil, fmt.Errorf("%w: base of %s: %v", errPermanent, v.id, err)
	}
	bm, err := e.loadManifest(ctx, b.st, key)
	if err != nil {
		return nil, fmt.Errorf("base manifest of %s: %w", v.id, err)
	}
	for _, sr := range bm.Segments {
		b.segs[sr.Index] = sr
	}
	if b.k, err = e.lineage(lineage.FromFormat(bm.Encryption)); err != nil {
		return nil, fmt.Errorf("base of %s: %w", v.id, err)
	}
	b.recode = storeName != r.Store || !lineage.Same(lineage.FromFormat(bm.Encryption), r.Encryption)
	return b, nil
}

// extra are the base segments a flush visits though nothing changed in
// them: all of them when the base is recoded (copied over segment by
// segment), none otherwise.
func (b *flushSourceBase) extra() []uint64 {
	if !b.recode {
		return nil
	}
	idx := make([]uint64, 0, len(b.segs))
	for i := range b.segs {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	return idx
}

// uploadSnapshot stores snapshot s's packs and segments, segment by
// segment as plan gives them, and records the segments in base.segs.
func (e *Engine) uploadSnapshot(ctx context.Context, s *snapshot, v *volume, k *lineage.Keys, pw *packWriter, base *flushSourceBase, plan *flushPlan, total int) error {
	r := s.record()
	dedup := newDedupIndex()
	sink := &segmentSink{st: pw.st, k: k, pw: pw, segs: base.segs}
	var done atomic.Int64
	progress := func() {
		n := done.Add(1)
		s.mu.Lock()
		s.rec.Progress = min(99, int(n*100/int64(max(total, 1))))
		s.mu.Unlock()
	}
	for {
		if s.record().Deleted {
			return errDeletedMidFlush
		}
		if err := ctx.Err(); err != nil {
			return err // shutting down: resumes at the next start
		}
		sp, ok, err := plan.nextSegment()
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		seg := snapfmt.Segment{}
		if ref, ok := base.segs[sp.idx]; ok {
			if seg, err = e.loadSegment(ctx, base.st, ref.Key, base.k); err != nil {
				return err
			}
		}
		need := -1
		if base.recode {
			from := copySource{name: base.storeName, st: base.st, k: base.k}
			replaced := make([]uint64, len(sp.changes))
			for i, c := range sp.changes {
				replaced[i] = c.blk
			}
			if need, err = e.copyChunks(ctx, from, k, r.BlockSize, pw, dedup, seg, replaced); err != nil {
				return err
			}
		} else {
			dedup.addBase(seg)
		}
		n, err := e.uploadBlocks(ctx, v, k, pw, dedup, seg, sp.changes, progress)
		if err != nil {
			return err
		}
		if err := sink.add(ctx, sp.idx, seg, max(need, n)); err != nil {
			return err
		}
	}
	return sink.finish(ctx)
}

// segmentSink stores a flush's finished segments, each once every pack it
// names is stored, and records them in segs.
type segmentSink struct {
	st   snapstore.Store
	k    *lineage.Keys
	pw   *packWriter
	segs map[uint64]snapfmt.SegmentRef
	pend []pendingSegment
}

type pendingSegment struct {
	idx  uint64
	seg  snapfmt.Segment
	need int // the highest pack sequence number it names
}

// add takes segment idx, whose chunks are in packs up to sequence number
// need; an empty one leaves the manifest.
func (s *segmentSink) add(ctx context.Context, idx uint64, seg snapfmt.Segment, need int) error {
	if len(seg) == 0 {
		delete(s.segs, idx)
		return nil
	}
	s.pend = append(s.pend, pendingSegment{idx, seg, need})
	return s.storeReady(ctx, false)
}

// finish waits for every pack and stores the segments still pending.
func (s *segmentSink) finish(ctx context.Context) error {
	if err := s.pw.finish(); err != nil {
		return err
	}
	return s.storeReady(ctx, true)
}

func (s *segmentSink) storeReady(ctx context.Context, all bool) error {
	below, err := s.pw.durableBelow()
	if err != nil {
		return err
	}
	for len(s.pend) > 0 && (all || s.pend[0].need < below) {
		ps := s.pend[0]
		s.pend = s.pend[1:]
		if err := s.pw.fillSizes(ps.seg); err != nil {
			return err
		}
		enc, err := snapfmt.EncodeSegment(s.k.Format(), ps.seg)
		if err != nil {
			return err
		}
		key := snapfmt.SegmentKey(sha256.Sum256(enc))
		// Always stored, even if an identical segment exists: an old
		// copy's mtime predates this flush's lease, so another daemon's
		// collector could take it before the manifest lands. Segments
		// are small.
		if err := s.st.Put(ctx, key, enc); err != nil {
			return fmt.Errorf("store %s: %w", key, err)
		}
		s.segs[ps.idx] = snapfmt.SegmentRef{Index: ps.idx, Key: key, Blocks: len(ps.seg)}
	}
	return nil
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
	e.cacheManifest(st, snapfmt.ManifestKey(r.ID), m)
	// The volume's next snapshot builds on this one: it keeps its own
	// copy of the manifest (a hold), so that a deletion of the snapshot,
	// by this daemon or another one on the same store, leaves the data
	// the volume depends on in place.
	hold := snapfmt.HoldKey(v.id, r.ID)
	if err := st.Put(ctx, hold, mb); err != nil {
		return fmt.Errorf("hold manifest: %w", err)
	}
	e.cacheManifest(st, hold, m)

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

// uploadBlocks stores the changed blocks blks of one segment into packs
// and updates seg to name their chunks; it returns the highest pack
// sequence number seg now depends on (-1 for none). Zero versions and
// all-zero blocks leave seg.
func (e *Engine) uploadBlocks(ctx context.Context, v *volume, k *lineage.Keys, pw *packWriter, dedup *dedupIndex, seg snapfmt.Segment, blks []blockChange, progress func()) (int, error) {
	var (
		mu       sync.Mutex
		firstErr error
		need     = -1
		wg       sync.WaitGroup
	)
	work := make(chan blockChange)
	for range min(flushWorkers, max(1, len(blks))) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := e.buffers.get(int(v.blockSize))
			defer e.buffers.put(buf)
			// The compressed chunk, copied into the pack by add: one
			// scratch buffer per worker, so a flush makes no garbage
			// per block.
			scratch := e.buffers.get(int(v.blockSize) + int(v.blockSize)/8 + 64)
			defer e.buffers.put(scratch)
			for c := range work {
				blk, x := c.blk, c.x
				if err := e.bg.pace(ctx, int(v.blockSize)); err != nil {
					mu.Lock()
					firstErr = cmpErr(firstErr, err)
					mu.Unlock()
					continue
				}
				off := uint32(blk & (1<<snapfmt.SegmentShift - 1))
				zero := x.Zero()
				if !zero {
					// A frozen slot is never written again and not
					// freed before this snapshot completes.
					if err := v.readSlot(blk, x.Slot, buf); err != nil {
						mu.Lock()
						firstErr = cmpErr(firstErr, fmt.Errorf("read frozen block %d of %s: %w", blk, v.id, err))
						mu.Unlock()
						continue
					}
					zero = isZero(buf)
				}
				var loc snapfmt.Loc
				seq := -1
				if !zero {
					var err error
					loc, seq, err = dedup.store(snapfmt.ChunkIDOf(k.Format(), buf), func(id snapfmt.ChunkID) (snapfmt.Loc, int, error) {
						scratch = snapfmt.EncodeChunk(k.Format(), scratch[:0], id, buf)
						return pw.add(id, scratch)
					})
					if err != nil {
						mu.Lock()
						firstErr = cmpErr(firstErr, err)
						mu.Unlock()
						continue
					}
				}
				mu.Lock()
				if zero {
					delete(seg, off)
				} else {
					seg[off] = loc
					need = max(need, seq)
				}
				mu.Unlock()
				progress()
			}
		}()
	}
feed:
	for _, blk := range blks {
		select {
		case work <- blk:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return need, firstErr
}

// dedupIndex finds the chunks a flush stored already (or its base holds),
// so that each content is stored once; concurrent stores of one content
// wait for the first. Entries are values (about 100 bytes per distinct
// chunk); only the stores in flight, at most one per worker, have a
// channel.
type dedupIndex struct {
	// mu guards the fields that follow.
	mu       sync.Mutex
	m        map[snapfmt.ChunkID]dedupEntry
	inFlight map[snapfmt.ChunkID]*dedupWait
}

type dedupEntry struct {
	loc snapfmt.Loc
	seq int // pack sequence number in this flush; -1: stored before it
}

// dedupWait is a store in flight: done is closed once entry or err is set.
type dedupWait struct {
	done  chan struct{}
	entry dedupEntry
	err   error
}

func newDedupIndex() *dedupIndex {
	return &dedupIndex{m: map[snapfmt.ChunkID]dedupEntry{}, inFlight: map[snapfmt.ChunkID]*dedupWait{}}
}

// addBase records the chunks of a base segment (stored before the flush).
func (d *dedupIndex) addBase(seg snapfmt.Segment) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, l := range seg {
		if _, ok := d.m[l.ID]; !ok {
			d.m[l.ID] = dedupEntry{loc: l, seq: -1}
		}
	}
}

// store returns where chunk id is, calling put to store it if no one has.
func (d *dedupIndex) store(id snapfmt.ChunkID, put func(snapfmt.ChunkID) (snapfmt.Loc, int, error)) (snapfmt.Loc, int, error) {
	d.mu.Lock()
	if e, ok := d.m[id]; ok {
		d.mu.Unlock()
		return e.loc, e.seq, nil
	}
	if w, ok := d.inFlight[id]; ok {
		d.mu.Unlock()
		<-w.done
		return w.entry.loc, w.entry.seq, w.err
	}
	w := &dedupWait{done: make(chan struct{})}
	d.inFlight[id] = w
	d.mu.Unlock()
	loc, seq, err := put(id)
	d.mu.Lock()
	w.entry, w.err = dedupEntry{loc: loc, seq: seq}, err
	if err == nil {
		d.m[id] = w.entry
	}
	delete(d.inFlight, id)
	d.mu.Unlock()
	close(w.done)
	return loc, seq, err
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// copySource is where copyChunks copies from: a store, by name, and the
// lineage of the chunks there.
type copySource struct {
	name string
	st   snapstore.Store
	k    *lineage.Keys
}

// copyChunks copies the chunks of seg that are not being replaced from
// their store into packs of the flush's store, updating seg; it returns the
// highest pack sequence number seg now depends on. Chunks of the target
// lineage k are copied as they are stored; others are opened and sealed
// again under k (blocks of blockSize bytes), with k's chunk IDs.
func (e *Engine) copyChunks(ctx context.Context, from copySource, k *lineage.Keys, blockSize int, pw *packWriter, dedup *dedupIndex, seg snapfmt.Segment, replaced []uint64) (int, error) {
	skip := map[uint32]bool{}
	for _, b := range replaced {
		skip[uint32(b&(1<<snapfmt.SegmentShift-1))] = true
	}
	same := from.k == k || (from.k != nil && k != nil && lineage.Same(&from.k.Enc, &k.Enc))
	buf := e.buffers.get(blockSize)
	defer e.buffers.put(buf)
	var scratch []byte
	need := -1
	for off, l := range seg {
		if skip[off] {
			continue
		}
		var nl snapfmt.Loc
		var seq int
		var err error
		if same {
			nl, seq, err = dedup.store(l.ID, func(id snapfmt.ChunkID) (snapfmt.Loc, int, error) {
				// Verified before it is stored again: a damaged chunk
				// must not get a second, trusted copy.
				b, err := e.packs.checkedChunk(ctx, from.name, from.st, l, func(b []byte) error { return snapfmt.VerifyChunk(from.k.Format(), l.ID, b) })
				if err != nil {
					return snapfmt.Loc{}, 0, fmt.Errorf("copy chunk %s: %w", id, err)
				}
				return pw.add(id, b)
			})
		} else {
			_, err = e.packs.checkedChunk(ctx, from.name, from.st, l, func(b []byte) error { return snapfmt.DecodeChunk(from.k.Format(), l.ID, b, buf) })
			if err != nil {
				return 0, fmt.Errorf("copy chunk %s: %w", l.ID, err)
			}
			nl, seq, err = dedup.store(snapfmt.ChunkIDOf(k.Format(), buf), func(id snapfmt.ChunkID) (snapfmt.Loc, int, error) {
				scratch = snapfmt.EncodeChunk(k.Format(), scratch[:0], id, buf)
				return pw.add(id, scratch)
			})
		}
		if err != nil {
			return 0, err
		}
		seg[off] = nl
		need = max(need, seq)
	}
	return need, nil
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
