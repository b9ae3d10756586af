package cow

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"
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
//
// This file holds the entry points and the table of sessions
// (directSessions); direct_session.go one session (directSession) and
// what it uses of the engine (sessionEnv); direct_format.go the seam with
// the snapshot format.

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

// directSessions are the engine's direct snapshot sessions, by snapshot
// and by client token. Each session keeps what it needs of the engine
// (sessionEnv, direct_session.go).
type directSessions struct {
	startMu sync.Mutex // serialises StartSnapshot
	mu      sync.Mutex // guards the maps
	byID    map[string]*directSession
	byToken map[string]tokenUse
}

type tokenUse struct{ digest, id string }

// ParentOf is the parent of a snapshot written through the direct APIs.
func (e *Engine) ParentOf(id string) string {
	return e.direct.parentOf(id, e.lookupSnapshot)
}

// StartSnapshot begins a snapshot written through the direct APIs. A
// ClientToken makes it idempotent: the same token with the same
// parameters returns the same snapshot; with others, ErrIdempotentMismatch.
func (e *Engine) StartSnapshot(ctx context.Context, p StartSnapshotParams) (SnapshotInfo, error) {
	return e.direct.start(ctx, newSessionEnv(e), e.lookupSnapshot, p)
}

// PutSnapshotBlock stores direct block idx (data: DirectBlockSize bytes,
// whose SHA-256 is sum) of pending direct snapshot id; a later write of the
// block replaces it.
func (e *Engine) PutSnapshotBlock(ctx context.Context, id string, idx int64, data []byte, sum [sha256.Size]byte) error {
	s, err := e.direct.session(ctx, e.lookupSnapshot, id)
	if err != nil {
		return err
	}
	return s.put(ctx, idx, data, sum)
}

// CompleteSnapshot completes direct snapshot id once check accepts the
// blocks written (in index order): the segments and the manifest are
// stored and the snapshot is recorded completed. A check that fails leaves
// the snapshot pending; a failure to store ends it in state error.
func (e *Engine) CompleteSnapshot(ctx context.Context, id string, check func([]WrittenBlock) error) (SnapshotInfo, error) {
	s, err := e.direct.session(ctx, e.lookupSnapshot, id)
	if err != nil {
		return SnapshotInfo{}, err
	}
	return s.complete(check)
}

// endSessions ends every pending session, as the engine stops
// (directSessions.endAll).
func (e *Engine) endSessions() { e.direct.endAll() }

// parentOf is the parent of snapshot id: its session's, else its record's
// (lookup finds it).
func (d *directSessions) parentOf(id string, lookup snapshotLookup) string {
	d.mu.Lock()
	s := d.byID[id]
	d.mu.Unlock()
	if s != nil {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.rec.Parent
	}
	if sn, err := lookup(context.Background(), id); err == nil {
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

// start begins a session of env (StartSnapshot); lookup finds the
// snapshot of a client token whose session was forgotten.
func (d *directSessions) start(ctx context.Context, env *sessionEnv, lookup snapshotLookup, p StartSnapshotParams) (SnapshotInfo, error) {
	// One start at a time: a token is looked up and taken in one step.
	d.startMu.Lock()
	defer d.startMu.Unlock()
	if p.ClientToken != "" {
		d.mu.Lock()
		use, ok := d.byToken[p.ClientToken]
		d.mu.Unlock()
		if ok {
			return d.reuseToken(use, startDigest(p), lookup)
		}
	}
	s, err := env.newSession(ctx, p)
	if err != nil {
		return SnapshotInfo{}, err
	}
	timeout := cmp.Or(p.Timeout, DefaultDirectTimeout)
	d.mu.Lock()
	d.forgetEnded(time.Now())
	if d.byID == nil {
		d.byID, d.byToken = map[string]*directSession{}, map[string]tokenUse{}
	}
	if p.ClientToken != "" {
		d.byToken[p.ClientToken] = tokenUse{digest: startDigest(p), id: s.rec.ID}
	}
	d.byID[s.rec.ID] = s
	s.timer = time.AfterFunc(timeout, func() { s.end(fmt.Errorf("not completed within %v", timeout)) })
	d.mu.Unlock()
	env.log.Info("direct snapshot started", "snapshot", s.rec.ID, "parent", s.rec.Parent, "size", s.rec.VolumeSize, "encrypted", s.rec.Encryption != nil)
	return s.info(), nil
}

// reuseToken answers a start with a client token already used: the
// snapshot it started, if digest (of the parameters) matches.
func (d *directSessions) reuseToken(use tokenUse, digest string, lookup snapshotLookup) (SnapshotInfo, error) {
	if use.digest != digest {
		return SnapshotInfo{}, fmt.Errorf("%w: snapshot %s was started with it", ErrIdempotentMismatch, use.id)
	}
	d.mu.Lock()
	s := d.byID[use.id]
	d.mu.Unlock()
	if s == nil {
		// Its session was forgotten.
		sn, err := lookup(context.Background(), use.id)
		if err != nil {
			return SnapshotInfo{}, err
		}
		return sn.info(), nil
	}
	return s.info(), nil
}

// sessionMemory is how long an ended session (and its client token) is
// remembered.
const sessionMemory = 24 * time.Hour

// forgetEnded drops the sessions that ended more than sessionMemory ago,
// and their client tokens. d.mu is held.
func (d *directSessions) forgetEnded(now time.Time) {
	for id, s := range d.byID {
		s.mu.Lock()
		old := !s.ended.IsZero() && now.Sub(s.ended) > sessionMemory
		s.mu.Unlock()
		if old {
			delete(d.byID, id)
		}
	}
	for tok, use := range d.byToken {
		if _, ok := d.byID[use.id]; !ok {
			delete(d.byToken, tok)
		}
	}
}

// session returns the session of snapshot id: ErrSnapshotNotFound for an
// unknown snapshot, ErrIncorrectState for one not being written through
// the direct APIs (lookup tells which).
func (d *directSessions) session(ctx context.Context, lookup snapshotLookup, id string) (*directSession, error) {
	d.mu.Lock()
	s := d.byID[id]
	d.mu.Unlock()
	if s != nil {
		return s, nil
	}
	sn, err := lookup(ctx, id)
	if err != nil {
		return nil, err
	}
	if sn.owner != "" {
		return nil, fmt.Errorf("%w: snapshot %s belongs to account %s", ErrNotOwner, id, sn.owner)
	}
	return nil, fmt.Errorf("%w: snapshot %s was not started with StartSnapshot", ErrIncorrectState, id)
}

// endAll ends every pending session, as the engine stops: each in state
// error, its packs deleted, its lease and hold dropped.
func (d *directSessions) endAll() {
	d.mu.Lock()
	sessions := slices.Collect(maps.Values(d.byID))
	d.mu.Unlock()
	for _, s := range sessions {
		s.timer.Stop()
		s.end(errors.New("the daemon stopped"))
	}
}
