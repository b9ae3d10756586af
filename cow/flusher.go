package cow

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cowvol/cowvol/cow/lineage"
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

// flusher moves the frozen blocks of pending snapshots into snapshot
// storage, one snapshot at a time: plan (flush_plan.go), upload
// (flush_upload.go) and publish (manifest_publish.go). It owns its wake-up
// channel and its retry settings; all it reaches of the engine is env.
type flusher struct {
	env  flushEnv
	wake chan struct{} // wakeFlusher: a snapshot may be pending
	// deadline: how long a flush retries before the snapshot ends in
	// error (Options.FlushDeadline); retryBase: its first backoff
	// (Options.FlushRetryBase).
	deadline, retryBase time.Duration
}

// flushEnv is what the flusher uses of its engine, and all it can reach:
// shared services (the metadata store and its group sync, the snapshot
// table, the snapshot reader, the lineage keys, buffers, the background
// I/O governor), the lock it shares with garbage collection, and the
// engine's other concerns through flushEngine.
type flushEnv struct {
	meta      *meta.Store
	metaSync  *groupSync
	log       *slog.Logger
	snapshots *snapshotTable
	reader    *snapshotReader
	lineages  *lineage.Cache
	buffers   *bufferPool
	bg        *ioGovernor
	// gc is held shared for a whole flush attempt: the collector and
	// DeleteSnapshot take it exclusively (gcState).
	gc *sync.RWMutex
	// accountID owns the manifests the flusher writes.
	accountID string
	// ctx is the engine's background context (set once it starts);
	// wg counts the engine's background goroutines.
	ctx    func() context.Context
	wg     *sync.WaitGroup
	engine flushEngine
}

// flushEngine is what the flusher asks of the engine's other concerns:
// volumes and stores by name, the flush lease (gc.go), the volume's base
// (snapshot.go) and copies of snapshots (copy_snapshot.go).
type flushEngine interface {
	lookup(volID string) (*volume, error)
	allVolumes() []*volume
	store(name string) (snapstore.Store, error)
	holdLease(ctx context.Context, st snapstore.Store, snapID string) (*flushLease, func(), error)
	setBase(v *volume, key, store string, gen uint64) error
	flushCopy(ctx context.Context, s *snapshot) error
	dropCopyHold(r meta.SnapshotRecord)
}

// newFlusher is engine e's flusher, with the settings of opts.
func newFlusher(e *Engine, opts Options) *flusher {
	deadline := opts.FlushDeadline
	if deadline <= 0 {
		deadline = DefaultFlushDeadline
	}
	return &flusher{
		env: flushEnv{
			meta: e.meta, metaSync: e.metaSync, log: e.log, snapshots: &e.snapshots,
			reader: e.reader, lineages: e.lineages, buffers: &e.buffers, bg: e.bg,
			gc: &e.gc.RWMutex, accountID: e.accountID,
			ctx: func() context.Context { return e.ctx }, wg: &e.wg, engine: e,
		},
		wake:      make(chan struct{}, 1),
		deadline:  deadline,
		retryBase: cmp.Or(opts.FlushRetryBase, time.Second),
	}
}

// wakeUp tells the flusher a snapshot may be pending.
func (f *flusher) wakeUp() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// flushLoop is the background flusher: it takes pending snapshots one at a
// time, oldest first, each volume's in generation order (a snapshot builds
// on the one before), and moves their frozen blocks into snapshot storage.
// It is one of the engine's background goroutines (env.wg).
func (f *flusher) flushLoop() {
	defer f.env.wg.Done()
	ctx := f.env.ctx()
	f.releaseAtStart(ctx)
	for {
		s, dropped := f.nextFlush()
		for _, r := range dropped {
			if r.CopyOf != "" {
				f.env.engine.dropCopyHold(r)
			}
		}
		if s == nil {
			select {
			case <-ctx.Done():
				return
			case <-f.wake:
				continue
			}
		}
		f.flushWithRetry(s)
		f.env.snapshots.mu.Lock()
		close(f.env.snapshots.inFlight.done)
		f.env.snapshots.inFlight = nil
		f.env.snapshots.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
	}
}

// releaseAtStart releases the frozen versions that a crash kept from being
// released, once each volume's map is loaded (releaseFrozen looks up
// blocks): the flush loop's first step.
func (f *flusher) releaseAtStart(ctx context.Context) {
	for _, v := range f.env.engine.allVolumes() {
		if err := v.waitMapped(ctx); err != nil {
			continue // damaged, or the engine stops
		}
		v.mapMu.Lock()
		baseGen := v.record.BaseGen
		v.mapMu.Unlock()
		if baseGen > 0 {
			if err := f.releaseFrozen(v, baseGen); err != nil {
				f.env.log.Warn("releasing frozen blocks", "volume", v.id, "err", err)
			}
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
// the snapshot table's inFlight.
func (f *flusher) nextFlush() (pick *snapshot, dropped []meta.SnapshotRecord) {
	snaps := f.env.snapshots
	snaps.mu.Lock()
	defer snaps.mu.Unlock()
	first := map[string]*snapshot{} // per volume: lowest generation pending
	for id, s := range snaps.byID {
		r := s.record()
		if r.State != string(SnapshotPending) {
			continue
		}
		if r.Deleted {
			if err := f.env.meta.DeleteSnapshot(id); err != nil {
				f.env.log.Warn("dropping deleted snapshot", "snapshot", id, "err", err)
				continue
			}
			delete(snaps.byID, id)
			dropped = append(dropped, r)
			continue
		}
		if p, ok := first[r.VolumeID]; !ok || r.Gen < p.record().Gen {
			first[r.VolumeID] = s
		}
	}
	for _, s := range first {
		if pick == nil || s.record().StartTime.Before(pick.record().StartTime) {
			pick = s
		}
	}
	if pick != nil {
		snaps.inFlight = &flight{volID: pick.record().VolumeID, done: make(chan struct{})}
	}
	return pick, dropped
}

// flushWithRetry flushes s, retrying with exponential backoff until it
// succeeds, fails permanently or the flush deadline passes; then it records the
// outcome.
func (f *flusher) flushWithRetry(s *snapshot) {
	r := s.record()
	ctx := f.env.ctx()
	log := f.env.log.With("snapshot", r.ID, "volume", r.VolumeID)
	start := time.Now()
	backoff := f.retryBase
	for attempt := 1; ; attempt++ {
		// No deadline on the attempt itself: a healthy flush of a big
		// volume may take longer than the retry window. A store call
		// that hangs is cut off by the store's call timeout.
		err := f.flush(ctx, s)
		if err == nil {
			return
		}
		if ctx.Err() != nil {
			return // shutting down: the flush resumes at the next start
		}
		giveUp := errors.Is(err, errDeletedMidFlush) || errors.Is(err, errPermanent) || time.Since(start) > f.deadline
		if giveUp {
			// A stored manifest makes the snapshot complete in other
			// daemons' eyes: an earlier attempt may have stored it.
			// It goes first; until it is gone, keep retrying.
			// (With the store down and no attempt of this run having
			// sent the manifest, it gives up: the store never saw
			// one from this run; DeleteSnapshot of a failed
			// snapshot deletes any manifest an earlier run left.)
			if derr := f.unpublish(r); derr != nil && s.manifestSent.Load() {
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
			f.failSnapshot(s, err)
			return
		}
		log.Warn("snapshot flush failed; retrying", "attempt", attempt, "backoff", backoff, "err", err)
		// Why it is still pending, for DescribeSnapshots (not recorded:
		// a restart retries afresh).
		s.mu.Lock()
		s.rec.StatusMessage = fmt.Sprintf("attempt %d failed; retrying: %v", attempt, err)
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-time.After(min(backoff, f.deadline)):
		}
		backoff = min(2*backoff, flushRetryMax)
	}
}
