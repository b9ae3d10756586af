package cow

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"github.com/cowvol/cowvol/cow/snapfmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/cowvol/cowvol/meta"
)

// Snapshots written through the EBS direct APIs (StartSnapshot,
// PutSnapshotBlock, CompleteSnapshot) are written by sessions: a session
// stores each block's chunks into packs as it comes, through the same
// chunk and pack path as the flusher (dedup against the parent and within
// the session, compression, sealing in an encrypted lineage), and on
// completion builds the segments and stores the manifest; the snapshot is
// then an ordinary completed one. A session lives in memory: a daemon
// restart, or its timeout, ends it in state error, and the packs it stored
// are garbage. Its lease keeps another daemon's collector off its packs
// meanwhile, and a hold keeps its parent's data.

// ErrConflictingBlock: two PutSnapshotBlock calls for one block at once.
var ErrConflictingBlock = errors.New("another write of the block is in progress")

// Direct snapshot timeouts (StartSnapshot's Timeout, in minutes for EBS).
const (
	DefaultDirectTimeout = 60 * time.Minute
	MinDirectTimeout     = 10 * time.Minute
	MaxDirectTimeout     = 4320 * time.Minute
)

// StartSnapshotParams are the inputs to Engine.StartSnapshot.
type StartSnapshotParams struct {
	VolumeSize       int64 // bytes
	ParentSnapshotID string
	Description      string
	Tags             []Tag
	ClientToken      string
	// Encrypted, or a parent that is, makes the snapshot encrypted:
	// under the parent's data key when KMSKeyID is empty or names the
	// parent's KMS key, else under a new data key of KMSKeyID's (""
	// the default key).
	Encrypted bool
	KMSKeyID  string
	Timeout   time.Duration // zero: DefaultDirectTimeout
}

// directSessions are the engine's direct snapshot sessions.
type directSessions struct {
	startMu sync.Mutex // serialises StartSnapshot
	mu      sync.Mutex // guards the maps
	byID    map[string]*directSession
	byToken map[string]tokenUse
}

type tokenUse struct{ digest, id string }

// directSession is one snapshot being written.
type directSession struct {
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

// ParentOf is the parent of a snapshot written through the direct APIs.
func (e *Engine) ParentOf(id string) string {
	e.direct.mu.Lock()
	s := e.direct.byID[id]
	e.direct.mu.Unlock()
	if s != nil {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.rec.Parent
	}
	if sn, err := e.lookupSnapshot(context.Background(), id); err == nil {
		return sn.record().Parent
	}
	return ""
}

func startDigest(p StartSnapshotParams) string {
	h := sha256.New()
	fmt.Fprintf(h, "size=%d\nparent=%s\ndesc=%q\nenc=%t\nkey=%q\ntimeout=%d\n", p.VolumeSize, p.ParentSnapshotID, p.Description, p.Encrypted, p.KMSKeyID, p.Timeout)
	for _, t := range p.Tags {
		fmt.Fprintf(h, "tag=%q=%q\n", t.Key, t.Value)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// StartSnapshot begins a snapshot written through the direct APIs. A
// ClientToken makes it idempotent: the same token with the same
// parameters returns the same snapshot; with others, ErrIdempotentMismatch.
func (e *Engine) StartSnapshot(ctx context.Context, p StartSnapshotParams) (SnapshotInfo, error) {
	// One start at a time: a token is looked up and taken in one step.
	e.direct.startMu.Lock()
	defer e.direct.startMu.Unlock()
	if p.ClientToken != "" {
		e.direct.mu.Lock()
		use, ok := e.direct.byToken[p.ClientToken]
		e.direct.mu.Unlock()
		if ok {
			return e.reuseToken(use, startDigest(p))
		}
	}
	s, err := e.newSession(ctx, p)
	if err != nil {
		return SnapshotInfo{}, err
	}
	timeout := cmp.Or(p.Timeout, DefaultDirectTimeout)
	e.direct.mu.Lock()
	e.forgetEnded(time.Now())
	if e.direct.byID == nil {
		e.direct.byID, e.direct.byToken = map[string]*directSession{}, map[string]tokenUse{}
	}
	if p.ClientToken != "" {
		e.direct.byToken[p.ClientToken] = tokenUse{digest: startDigest(p), id: s.rec.ID}
	}
	e.direct.byID[s.rec.ID] = s
	s.timer = time.AfterFunc(timeout, func() { e.endSession(s, fmt.Errorf("not completed within %v", timeout)) })
	e.direct.mu.Unlock()
	e.log.Info("direct snapshot started", "snapshot", s.rec.ID, "parent", s.rec.Parent, "size", s.rec.VolumeSize, "encrypted", s.rec.Encryption != nil)
	return s.info(), nil
}

func (e *Engine) reuseToken(use tokenUse, digest string) (SnapshotInfo, error) {
	if use.digest != digest {
		return SnapshotInfo{}, fmt.Errorf("%w: snapshot %s was started with it", ErrIdempotentMismatch, use.id)
	}
	e.direct.mu.Lock()
	s := e.direct.byID[use.id]
	e.direct.mu.Unlock()
	if s == nil {
		return e.SnapshotInfo(use.id) // its session was forgotten
	}
	return s.info(), nil
}

// sessionMemory is how long an ended session (and its client token) is
// remembered.
const sessionMemory = 24 * time.Hour

// forgetEnded drops the sessions that ended more than sessionMemory ago,
// and their client tokens. e.direct.mu is held.
func (e *Engine) forgetEnded(now time.Time) {
	for id, s := range e.direct.byID {
		s.mu.Lock()
		old := !s.ended.IsZero() && now.Sub(s.ended) > sessionMemory
		s.mu.Unlock()
		if old {
			delete(e.direct.byID, id)
		}
	}
	for tok, use := range e.direct.byToken {
		if _, ok := e.direct.byID[use.id]; !ok {
			delete(e.direct.byToken, tok)
		}
	}
}

// newSession checks p and sets up a session: its lineage, its parent's
// hold, its lease.
func (e *Engine) newSession(ctx context.Context, p StartSnapshotParams) (*directSession, error) {
	if err := validateSnapshotParams(CreateSnapshotParams{Description: p.Description, Tags: p.Tags}); err != nil {
		return nil, err
	}
	if p.Timeout != 0 && (p.Timeout < MinDirectTimeout || p.Timeout > MaxDirectTimeout) {
		return nil, fmt.Errorf("%w: timeout %v is not between %v and %v", ErrInvalidParameter, p.Timeout, MinDirectTimeout, MaxDirectTimeout)
	}
	s := &directSession{state: SnapshotPending, written: map[uint64]directChunk{}, sums: map[int64][sha256.Size]byte{},
		busy: map[int64]bool{}, based: map[uint64]bool{}}
	bs := DefaultBlockSize
	if p.ParentSnapshotID != "" {
		parent, err := newDirectReads(e).completedView(ctx, p.ParentSnapshotID)
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
	enc, recode, err := e.directLineage(p, s.parent)
	if err != nil {
		return nil, err
	}
	k, err := e.lineages.Get(enc)
	if err != nil {
		return nil, err
	}
	st, err := e.store(StoreRegional)
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
	if s.lease, s.stopLease, err = e.holdLease(e.ctx, st, s.rec.ID); err != nil {
		return nil, err
	}
	if s.parent != nil {
		if s.hold, err = e.holdSnapshot(ctx, s.rec.ID, s.parent.rec); err != nil {
			s.stopLease()
			return nil, err
		}
	}
	s.w = newBlockWriter(s.lease.ctx, st, k)
	return s, nil
}

// directLineage is the encryption of a direct snapshot, and whether its
// parent's chunks must be recoded into it.
func (e *Engine) directLineage(p StartSnapshotParams, parent *storedView) (*meta.Encryption, bool, error) {
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
		if e.keys == nil {
			return nil, false, ErrNoKeyManager
		}
		arn, err := e.keys.ResolveKey(p.KMSKeyID)
		if err != nil {
			return nil, false, err
		}
		if arn == penc.KMSKeyARN {
			return penc, false, nil
		}
	}
	k, err := e.lineages.New(p.KMSKeyID)
	if err != nil {
		return nil, false, err
	}
	return &k.Enc, parent != nil, nil
}

// session returns the session of snapshot id: ErrSnapshotNotFound for an
// unknown snapshot, ErrIncorrectState for one not being written through
// the direct APIs.
func (e *Engine) session(ctx context.Context, id string) (*directSession, error) {
	e.direct.mu.Lock()
	s := e.direct.byID[id]
	e.direct.mu.Unlock()
	if s != nil {
		return s, nil
	}
	sn, err := e.lookupSnapshot(ctx, id)
	if err != nil {
		return nil, err
	}
	if sn.owner != "" {
		return nil, fmt.Errorf("%w: snapshot %s belongs to account %s", ErrNotOwner, id, sn.owner)
	}
	return nil, fmt.Errorf("%w: snapshot %s was not started with StartSnapshot", ErrIncorrectState, id)
}

// PutSnapshotBlock stores direct block idx (data: DirectBlockSize bytes,
// whose SHA-256 is sum) of pending direct snapshot id; a later write of the
// block replaces it.
func (e *Engine) PutSnapshotBlock(ctx context.Context, id string, idx int64, data []byte, sum [sha256.Size]byte) error {
	s, err := e.session(ctx, id)
	if err != nil {
		return err
	}
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
		if err := e.baseFor(ctx, s, blk>>snapfmt.SegmentShift); err != nil {
			return err
		}
		c, err := s.w.put(data[off : off+bs])
		if err != nil {
			return fmt.Errorf("store block %d of %s: %w", idx, id, err)
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
func (e *Engine) baseFor(ctx context.Context, s *directSession, idx uint64) error {
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

// CompleteSnapshot completes direct snapshot id once check accepts the
// blocks written (in index order): the segments and the manifest are
// stored and the snapshot is recorded completed. A check that fails leaves
// the snapshot pending; a failure to store ends it in state error.
func (e *Engine) CompleteSnapshot(ctx context.Context, id string, check func([]WrittenBlock) error) (SnapshotInfo, error) {
	s, err := e.session(ctx, id)
	if err != nil {
		return SnapshotInfo{}, err
	}
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
		return SnapshotInfo{}, fmt.Errorf("%w: snapshot %s is %s", ErrIncorrectState, id, state)
	}
	if err := check(blocks); err != nil {
		return SnapshotInfo{}, err
	}
	s.timer.Stop()
	if err := e.finishSession(s); err != nil {
		e.log.Error("direct snapshot failed", "snapshot", id, "err", err)
		e.failSession(s, err)
		return SnapshotInfo{}, fmt.Errorf("complete snapshot %s: %w", id, err)
	}
	return s.info(), nil
}

// finishSession stores s's segments and manifest and records it completed.
func (e *Engine) finishSession(s *directSession) error {
	e.gc.RLock()
	defer e.gc.RUnlock()
	ctx := s.lease.ctx
	segs, err := s.w.segments(ctx, e.copyChunks, s.parent, s.recode, s.rec.BlockSize, s.written)
	if err != nil {
		return s.lease.blame(err)
	}
	m, err := e.publishDirect(ctx, s.w, s.rec, s.lease, segs)
	if err != nil {
		return err
	}
	r := s.rec
	r.State, r.Progress = string(SnapshotCompleted), 100
	r.CompletionTime, r.DataBytes = m.CompletionTime, m.DataBytes
	err = e.meta.PutSnapshot(r)
	if err == nil {
		err = e.metaSync.sync()
	}
	if err != nil {
		if uerr := e.unpublish(r); uerr != nil {
			e.log.Warn("a failed direct snapshot's manifest stays stored", "snapshot", r.ID, "err", uerr)
		}
		return err
	}
	e.snapshots.mu.Lock()
	e.snapshots.byID[r.ID] = &snapshot{rec: r}
	e.snapshots.mu.Unlock()
	s.mu.Lock()
	s.rec, s.state = r, SnapshotCompleted
	s.written, s.sums, s.ended = nil, nil, time.Now()
	s.mu.Unlock()
	s.w.close()
	e.releaseSession(s)
	e.log.Info("direct snapshot completed", "snapshot", r.ID, "data_bytes", m.DataBytes, "packs", s.w.packsStored())
	return nil
}

// failSession ends s in state error after a failed completion.
func (e *Engine) failSession(s *directSession, cause error) {
	s.mu.Lock()
	s.state = SnapshotError
	s.rec.StatusMessage = cause.Error()
	s.written, s.sums, s.ended = nil, nil, time.Now()
	s.mu.Unlock()
	e.discardWriter(s.w, s.rec.ID)
	e.releaseSession(s)
}

// endSession ends pending session s in state error (its timeout passed).
func (e *Engine) endSession(s *directSession, cause error) {
	s.use.Lock()
	defer s.use.Unlock()
	s.mu.Lock()
	pending := s.state == SnapshotPending
	s.mu.Unlock()
	if !pending {
		return
	}
	e.log.Warn("direct snapshot abandoned", "snapshot", s.rec.ID, "reason", cause)
	e.failSession(s, cause)
}

// releaseSession drops s's lease and its hold on the parent, and what
// it kept in memory for writing.
func (e *Engine) releaseSession(s *directSession) {
	s.stopLease()
	s.w.forget()
	if s.hold != "" {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(e.ctx), time.Minute)
		defer cancel()
		e.dropHold(ctx, s.hold)
	}
}

// endSessions ends every pending session, as the engine stops: each in
// state error, its packs deleted, its lease and hold dropped.
func (e *Engine) endSessions() {
	e.direct.mu.Lock()
	sessions := slices.Collect(maps.Values(e.direct.byID))
	e.direct.mu.Unlock()
	for _, s := range sessions {
		s.timer.Stop()
		e.endSession(s, errors.New("the daemon stopped"))
	}
}
