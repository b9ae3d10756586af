package cow

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/cowvol/cowvol/cow/lineage"
	"github.com/cowvol/cowvol/cow/snapfmt"
	"github.com/cowvol/cowvol/cow/snapstore"
	"github.com/cowvol/cowvol/meta"
)

// sessionEnv is what a direct snapshot session uses of the engine. A
// session keeps it: its completion and its timeout need it after the
// request that started it.
type sessionEnv struct {
	// ctx is the engine's: a session's lease outlives the request.
	ctx      context.Context
	log      *slog.Logger
	reads    directReads // opens the parent
	keys     KeyManager  // nil: no encryption
	lineages *lineage.Cache
	store    func(name string) (snapstore.Store, error)
	// What keeps the collector off the session's packs and its parent's
	// data: gc held shared while the segments and manifest are stored,
	// the session's lease (gc.go), its hold on the parent
	// (volume_create.go, hydrate.go).
	gc           *sync.RWMutex
	holdLease    func(ctx context.Context, st snapstore.Store, snapID string) (*flushLease, func(), error)
	holdSnapshot func(ctx context.Context, holder string, src meta.SnapshotRecord) (string, error)
	dropHold     func(ctx context.Context, key string)
	// The flusher's ways to store a snapshot (chunk_copy.go, flusher.go,
	// manifest_publish.go).
	copyChunks  chunkCopier
	closePacks  func(pw *packWriter, failed bool, snapID string)
	publisher   func(st snapstore.Store, r meta.SnapshotRecord, k *lineage.Keys, lease *flushLease) *manifestPublisher
	newManifest func(r meta.SnapshotRecord, segs map[uint64]snapfmt.SegmentRef) *snapfmt.Manifest
	unpublish   func(r meta.SnapshotRecord) error
	// Where a completed session's snapshot is recorded.
	meta      *meta.Store
	metaSync  *groupSync
	snapshots *snapshotTable
}

// newSessionEnv is what direct sessions use of e.
func newSessionEnv(e *Engine) *sessionEnv {
	return &sessionEnv{
		ctx: e.ctx, log: e.log, reads: e.directReads,
		keys: e.keys, lineages: e.lineages, store: e.store,
		gc: &e.gc.RWMutex, holdLease: e.holdLease, holdSnapshot: e.holdSnapshot, dropHold: e.dropHold,
		copyChunks: e.copyChunks, closePacks: e.closePacks,
		publisher: func(st snapstore.Store, r meta.SnapshotRecord, k *lineage.Keys, lease *flushLease) *manifestPublisher {
			return &manifestPublisher{log: e.log, st: st, s: &snapshot{rec: r}, k: k, lease: lease}
		},
		newManifest: e.newManifest, unpublish: e.unpublish,
		meta: e.meta, metaSync: e.metaSync, snapshots: &e.snapshots,
	}
}

// directSession is one snapshot being written.
type directSession struct {
	env       *sessionEnv
	rec       meta.SnapshotRecord
	parent    *storedView // nil: none
	recode    bool        // the parent's chunks are of another lineage
	hold      string      // the hold on the parent ("": none)
	w         *blockWriter
	lease     *flushLease
	stopLease func()
	timer     *time.Timer
	// use: puts hold it shared, completion and expiry exclusively.
	use sync.RWMutex
	// mu guards the fields that follow.
	mu      sync.Mutex
	state   SnapshotState
	written map[uint64]directChunk // by block of the snapshot
	sums    map[int64][sha256.Size]byte
	busy    map[int64]bool  // direct blocks being written
	based   map[uint64]bool // parent segments given to the dedup index
	ended   time.Time       // when it completed or failed
}

func (s *directSession) info() SnapshotInfo {
	s.mu.Lock()
	r := s.rec
	r.State = string(s.state)
	s.mu.Unlock()
	return infoOf(r)
}

// newSession checks p and sets up a session: its lineage, its parent's
// hold, its lease.
func (env *sessionEnv) newSession(ctx context.Context, p StartSnapshotParams) (*directSession, error) {
	if err := validateSnapshotParams(CreateSnapshotParams{Description: p.Description, Tags: p.Tags}); err != nil {
		return nil, err
	}
	if p.Timeout != 0 && (p.Timeout < MinDirectTimeout || p.Timeout > MaxDirectTimeout) {
		return nil, fmt.Errorf("%w: timeout %v is not between %v and %v", ErrInvalidParameter, p.Timeout, MinDirectTimeout, MaxDirectTimeout)
	}
	s := &directSession{env: env, state: SnapshotPending, written: map[uint64]directChunk{}, sums: map[int64][sha256.Size]byte{},
		busy: map[int64]bool{}, based: map[uint64]bool{}}
	bs := DefaultBlockSize
	if p.ParentSnapshotID != "" {
		parent, err := env.reads.completedView(ctx, p.ParentSnapshotID)
		if err != nil {
			return nil, fmt.Errorf("parent: %w", err)
		}
		if parent.m.BlockSize > DirectBlockSize {
			return nil, fmt.Errorf("%w: parent %s has %d-byte blocks; direct writes need blocks of at most %d", ErrInvalidBlockSize, parent.rec.ID, parent.m.BlockSize, DirectBlockSize)
		}
		if p.VolumeSize < parent.m.VolumeSize {
			return nil, fmt.Errorf("%w: %d bytes, smaller than parent %s's %d", ErrInvalidSize, p.VolumeSize, parent.rec.ID, parent.m.VolumeSize)
		}
		s.parent, bs = parent, parent.m.BlockSize
	}
	if err := ValidateGeometry(p.VolumeSize, bs); err != nil {
		return nil, err
	}
	enc, recode, err := env.directLineage(p, s.parent)
	if err != nil {
		return nil, err
	}
	k, err := env.lineages.Get(enc)
	if err != nil {
		return nil, err
	}
	st, err := env.store(StoreRegional)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidParameter, err)
	}
	s.recode = recode
	s.rec = meta.SnapshotRecord{
		ID: newID("snap"), VolumeID: CopyVolumeID, State: string(SnapshotPending),
		StartTime:   time.Now().UTC().Truncate(time.Millisecond),
		Description: p.Description, Tags: tagsToMeta(p.Tags),
		VolumeSize: p.VolumeSize, BlockSize: bs, Store: StoreRegional,
		Encryption: enc, Parent: p.ParentSnapshotID,
	}
	// The lease outlives the request: it is the session's.
	if s.lease, s.stopLease, err = env.holdLease(env.ctx, st, s.rec.ID); err != nil {
		return nil, err
	}
	if s.parent != nil {
		if s.hold, err = env.holdSnapshot(ctx, s.rec.ID, s.parent.rec); err != nil {
			s.stopLease()
			return nil, err
		}
	}
	s.w = newBlockWriter(s.lease.ctx, st, k)
	return s, nil
}

// directLineage is the encryption of a direct snapshot, and whether its
// parent's chunks must be recoded into it.
func (env *sessionEnv) directLineage(p StartSnapshotParams, parent *storedView) (*meta.Encryption, bool, error) {
	var penc *meta.Encryption
	if parent != nil {
		penc = parent.rec.Encryption
	}
	if penc != nil && !p.Encrypted {
		return nil, false, fmt.Errorf("%w: the parent %s is encrypted, so the snapshot must be (Encrypted)", ErrParameterDependency, parent.rec.ID)
	}
	if p.KMSKeyID != "" && !p.Encrypted {
		return nil, false, fmt.Errorf("%w: KmsKeyArn needs Encrypted", ErrParameterDependency)
	}
	if !p.Encrypted {
		return nil, false, nil
	}
	if penc != nil {
		if p.KMSKeyID == "" {
			return penc, false, nil
		}
		if env.keys == nil {
			return nil, false, ErrNoKeyManager
		}
		arn, err := env.keys.ResolveKey(p.KMSKeyID)
		if err != nil {
			return nil, false, err
		}
		if arn == penc.KMSKeyARN {
			return penc, false, nil
		}
	}
	k, err := env.lineages.New(p.KMSKeyID)
	if err != nil {
		return nil, false, err
	}
	return &k.Enc, parent != nil, nil
}

// put stores direct block idx (data: DirectBlockSize bytes, whose SHA-256
// is sum) of the session (PutSnapshotBlock); a later write of the block
// replaces it.
func (s *directSession) put(ctx context.Context, idx int64, data []byte, sum [sha256.Size]byte) error {
	s.use.RLock()
	defer s.use.RUnlock()
	if err := s.claim(idx, len(data)); err != nil {
		return err
	}
	defer s.release(idx)
	bs := s.rec.BlockSize
	got := map[uint64]directChunk{}
	blk := firstBlock(idx, bs)
	for off := 0; off < DirectBlockSize; off, blk = off+bs, blk+1 {
		if blk*uint64(bs) >= uint64(s.rec.VolumeSize) {
			break
		}
		if err := s.baseFor(ctx, blk>>snapfmt.SegmentShift); err != nil {
			return err
		}
		c, err := s.w.put(data[off : off+bs])
		if err != nil {
			return fmt.Errorf("store block %d of %s: %w", idx, s.rec.ID, err)
		}
		got[blk] = c
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	maps.Copy(s.written, got)
	s.sums[idx] = sum
	return nil
}

// claim checks a write of direct block idx of n bytes and marks the block
// busy.
func (s *directSession) claim(idx int64, n int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.state != SnapshotPending:
		return fmt.Errorf("%w: snapshot %s is %s", ErrIncorrectState, s.rec.ID, s.state)
	case idx < 0 || idx >= DirectBlocks(s.rec.VolumeSize):
		return fmt.Errorf("%w: block %d of %s, which has %d", ErrBlockIndex, idx, s.rec.ID, DirectBlocks(s.rec.VolumeSize))
	case n != DirectBlockSize:
		return fmt.Errorf("%w: a block of %d bytes; blocks are %d", ErrInvalidParameter, n, DirectBlockSize)
	case s.busy[idx]:
		return fmt.Errorf("%w: block %d of %s", ErrConflictingBlock, idx, s.rec.ID)
	}
	s.busy[idx] = true
	return nil
}

func (s *directSession) release(idx int64) {
	s.mu.Lock()
	delete(s.busy, idx)
	s.mu.Unlock()
}

// baseFor gives the dedup index the parent's segment idx once, so that a
// block equal to the parent's is stored as a reference to its chunk.
func (s *directSession) baseFor(ctx context.Context, idx uint64) error {
	if s.parent == nil || s.recode {
		return nil
	}
	s.mu.Lock()
	done := s.based[idx]
	s.based[idx] = true
	s.mu.Unlock()
	if done {
		return nil
	}
	seg, err := s.parent.segment(ctx, idx)
	if err != nil {
		s.mu.Lock()
		delete(s.based, idx)
		s.mu.Unlock()
		return err
	}
	s.w.addBase(seg)
	return nil
}

// WrittenBlock is a direct block written to a session, with the SHA-256
// of the data written.
type WrittenBlock struct {
	Index int64
	Sum   [sha256.Size]byte
}

// complete completes the session's snapshot once check accepts the blocks
// written (CompleteSnapshot).
func (s *directSession) complete(check func([]WrittenBlock) error) (SnapshotInfo, error) {
	s.use.Lock()
	defer s.use.Unlock()
	s.mu.Lock()
	state := s.state
	var blocks []WrittenBlock
	for _, idx := range slices.Sorted(maps.Keys(s.sums)) {
		blocks = append(blocks, WrittenBlock{Index: idx, Sum: s.sums[idx]})
	}
	s.mu.Unlock()
	if state != SnapshotPending {
		if state == SnapshotCompleted {
			return s.info(), nil
		}
		return SnapshotInfo{}, fmt.Errorf("%w: snapshot %s is %s", ErrIncorrectState, s.rec.ID, state)
	}
	if err := check(blocks); err != nil {
		return SnapshotInfo{}, err
	}
	s.timer.Stop()
	if err := s.finish(); err != nil {
		s.env.log.Error("direct snapshot failed", "snapshot", s.rec.ID, "err", err)
		s.fail(err)
		return SnapshotInfo{}, fmt.Errorf("complete snapshot %s: %w", s.rec.ID, err)
	}
	return s.info(), nil
}

// finish stores the session's segments and manifest and records it
// completed.
func (s *directSession) finish() error {
	env := s.env
	env.gc.RLock()
	defer env.gc.RUnlock()
	ctx := s.lease.ctx
	segs, err := s.w.segments(ctx, env.copyChunks, s.parent, s.recode, s.rec.BlockSize, s.written)
	if err != nil {
		return s.lease.blame(err)
	}
	m, err := env.publishDirect(ctx, s.w, s.rec, s.lease, segs)
	if err != nil {
		return err
	}
	r := s.rec
	r.State, r.Progress = string(SnapshotCompleted), 100
	r.CompletionTime, r.DataBytes = m.CompletionTime, m.DataBytes
	err = env.meta.PutSnapshot(r)
	if err == nil {
		err = env.metaSync.sync()
	}
	if err != nil {
		if uerr := env.unpublish(r); uerr != nil {
			env.log.Warn("a failed direct snapshot's manifest stays stored", "snapshot", r.ID, "err", uerr)
		}
		return err
	}
	env.snapshots.mu.Lock()
	env.snapshots.byID[r.ID] = &snapshot{rec: r}
	env.snapshots.mu.Unlock()
	s.mu.Lock()
	s.rec, s.state = r, SnapshotCompleted
	s.written, s.sums, s.ended = nil, nil, time.Now()
	s.mu.Unlock()
	s.w.close()
	s.drop()
	env.log.Info("direct snapshot completed", "snapshot", r.ID, "data_bytes", m.DataBytes, "packs", s.w.packsStored())
	return nil
}

// fail ends the session in state error after a failed completion.
func (s *directSession) fail(cause error) {
	s.mu.Lock()
	s.state = SnapshotError
	s.rec.StatusMessage = cause.Error()
	s.written, s.sums, s.ended = nil, nil, time.Now()
	s.mu.Unlock()
	s.env.discardWriter(s.w, s.rec.ID)
	s.drop()
}

// end ends the session, if pending, in state error (its timeout passed,
// or the engine stops).
func (s *directSession) end(cause error) {
	s.use.Lock()
	defer s.use.Unlock()
	s.mu.Lock()
	pending := s.state == SnapshotPending
	s.mu.Unlock()
	if !pending {
		return
	}
	s.env.log.Warn("direct snapshot abandoned", "snapshot", s.rec.ID, "reason", cause)
	s.fail(cause)
}

// drop drops the session's lease and its hold on the parent, and what it
// kept in memory for writing.
func (s *directSession) drop() {
	s.stopLease()
	s.w.forget()
	if s.hold != "" {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(s.env.ctx), time.Minute)
		defer cancel()
		s.env.dropHold(ctx, s.hold)
	}
}
