package cow

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cowvol/cowvol/cow/lineage"
	"github.com/cowvol/cowvol/cow/snapfmt"
	"github.com/cowvol/cowvol/cow/snapstore"
	"github.com/cowvol/cowvol/meta"
)

// CopySnapshotParams are the inputs to Engine.CopySnapshot.
type CopySnapshotParams struct {
	SourceSnapshotID string
	Description      string
	Tags             []Tag
	// Encrypted makes the copy of a plaintext snapshot encrypted; the copy
	// of an encrypted snapshot is encrypted whatever it says. The copy
	// gets a data key of its own (a new lineage) under the KMS key
	// KMSKeyID names: by default the source's, or for a plaintext source
	// the default key.
	Encrypted bool
	KMSKeyID  string
}

// CopyVolumeID is the volume ID of a snapshot made by CopySnapshot, as EC2
// reports it: an arbitrary ID that names no volume.
const CopyVolumeID = "vol-ffffffff"

// CopySnapshot makes a new snapshot with the content of a completed one. It
// returns at once with the copy pending; the flusher copies the content,
// recoding every chunk when the copy's lineage differs from the source's
// (always when either is encrypted: a copy has a data key of its own), and
// sharing the source's segments when both are plaintext in one store. The
// copy holds its source meanwhile, so deleting the source does not break it.
func (e *Engine) CopySnapshot(ctx context.Context, p CopySnapshotParams) (SnapshotInfo, error) {
	c := e.copier
	sr, err := c.checkSource(ctx, p)
	if err != nil {
		return SnapshotInfo{}, err
	}
	if p.KMSKeyID != "" && !p.Encrypted && sr.Encryption == nil {
		return SnapshotInfo{}, fmt.Errorf("%w: KmsKeyId needs Encrypted", ErrParameterDependency)
	}
	if _, err := e.store(StoreRegional); err != nil {
		return SnapshotInfo{}, fmt.Errorf("%w: %v", ErrInvalidParameter, err)
	}
	enc, err := c.copyLineage(sr, p)
	if err != nil {
		return SnapshotInfo{}, err
	}
	id := newID("snap")
	hold, err := e.holdSnapshot(ctx, id, sr)
	if err != nil {
		return SnapshotInfo{}, err
	}
	r := meta.SnapshotRecord{
		ID:            id,
		VolumeID:      CopyVolumeID,
		State:         string(SnapshotPending),
		StartTime:     time.Now().UTC().Truncate(time.Millisecond),
		Description:   p.Description,
		Tags:          tagsToMeta(p.Tags),
		VolumeSize:    sr.VolumeSize,
		BlockSize:     sr.BlockSize,
		Store:         StoreRegional,
		Encryption:    enc,
		CopyOf:        sr.ID,
		CopyFromStore: sr.Store,
	}
	err = e.meta.PutSnapshot(r)
	if err == nil {
		err = e.metaSync.sync()
	}
	if err != nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		e.dropHold(ctx, hold)
		return SnapshotInfo{}, fmt.Errorf("copy snapshot %s: %w", sr.ID, err)
	}
	s := &snapshot{rec: r}
	e.snapshots.mu.Lock()
	e.snapshots.byID[id] = s
	e.snapshots.mu.Unlock()
	e.wakeFlusher()
	e.log.Info("snapshot copy created", "snapshot", id, "source", sr.ID, "encrypted", enc != nil)
	return s.info(), nil
}

// CheckCopySnapshot returns the error CopySnapshot would give for p,
// without copying: a dry run's answer.
func (e *Engine) CheckCopySnapshot(ctx context.Context, p CopySnapshotParams) error {
	sr, err := e.copier.checkSource(ctx, p)
	if err != nil {
		return err
	}
	return e.checkNewLineage(p.Encrypted || sr.Encryption != nil, p.KMSKeyID)
}

// checkSource returns the record of p's source snapshot once p is valid
// and the source can be copied now: completed, not archived, its KMS key
// usable.
func (c *snapshotCopier) checkSource(ctx context.Context, p CopySnapshotParams) (meta.SnapshotRecord, error) {
	if err := validateSnapshotParams(CreateSnapshotParams{Description: p.Description, Tags: p.Tags}); err != nil {
		return meta.SnapshotRecord{}, err
	}
	src, err := c.lookup(ctx, p.SourceSnapshotID)
	if err != nil {
		return meta.SnapshotRecord{}, err
	}
	sr := src.record()
	if sr.State != string(SnapshotCompleted) {
		return meta.SnapshotRecord{}, fmt.Errorf("%w: snapshot %s is %s, not completed", ErrIncorrectState, sr.ID, sr.State)
	}
	if err := c.checkReadable(ctx, src, true); err != nil {
		return meta.SnapshotRecord{}, err
	}
	// The source must be readable now: its KMS key usable.
	if _, err := c.lineages.Get(sr.Encryption); err != nil {
		return meta.SnapshotRecord{}, fmt.Errorf("snapshot %s: %w", sr.ID, err)
	}
	return sr, nil
}

// copyLineage returns the encryption of a copy of source sr for p: a new
// lineage under p's KMS key (by default the source's) when the source is
// encrypted or p asks for it; nil for a plaintext copy.
func (c *snapshotCopier) copyLineage(sr meta.SnapshotRecord, p CopySnapshotParams) (*meta.Encryption, error) {
	if sr.Encryption == nil && !p.Encrypted {
		return nil, nil
	}
	keyID := p.KMSKeyID
	if keyID == "" && sr.Encryption != nil {
		keyID = sr.Encryption.KMSKeyARN
	}
	k, err := c.lineages.New(keyID)
	if err != nil {
		return nil, err
	}
	return &k.Enc, nil
}

// copyHold is the key of the hold a copy keeps on its source.
func copyHold(r meta.SnapshotRecord) string { return snapfmt.HoldKey(r.ID, r.CopyOf) }

// dropCopyHold deletes copy r's hold on its source, failing quietly: an
// orphan hold only keeps garbage from being collected.
func (e *Engine) dropCopyHold(r meta.SnapshotRecord) { e.copier.dropCopyHold(r) }

// flushCopy copies the content of copy s's source into its store: the
// flusher's step for a snapshot made by CopySnapshot.
func (e *Engine) flushCopy(ctx context.Context, s *snapshot) error {
	return e.copier.flushCopy(ctx, s)
}

// dropCopyHold deletes copy r's hold on its source, failing quietly: an
// orphan hold only keeps garbage from being collected.
func (c *snapshotCopier) dropCopyHold(r meta.SnapshotRecord) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx()), time.Minute)
	defer cancel()
	c.flush.dropHold(ctx, copyHold(r))
}

// flushCopy copies the content of copy s's source into its store.
func (c *snapshotCopier) flushCopy(ctx context.Context, s *snapshot) (err error) {
	r := s.record()
	st, err := c.store(r.Store)
	if err != nil {
		return fmt.Errorf("%w: %v", errPermanent, err)
	}
	from, err := c.store(r.CopyFromStore)
	if err != nil {
		return fmt.Errorf("%w: source of %s: %v", errPermanent, r.ID, err)
	}
	sm, err := c.reader.loadManifest(ctx, from, copyHold(r))
	if errors.Is(err, snapstore.ErrNotFound) {
		return fmt.Errorf("%w: the hold of %s on its source %s is gone", errPermanent, r.ID, r.CopyOf)
	}
	if err != nil {
		return fmt.Errorf("source %s of %s: %w", r.CopyOf, r.ID, err)
	}
	srcK, err := c.lineages.Get(lineage.FromFormat(sm.Encryption))
	if err != nil {
		return fmt.Errorf("source %s of %s: %w", r.CopyOf, r.ID, err)
	}
	k, err := c.lineages.Get(r.Encryption)
	if err != nil {
		return fmt.Errorf("snapshot %s: %w", r.ID, err)
	}
	lease, stopLease, err := c.flush.holdLease(ctx, st, r.ID)
	if err != nil {
		return err
	}
	defer stopLease()
	ctx = lease.ctx
	defer func() { err = lease.blame(err) }()
	pub := c.publisher(st, s, k, lease)
	if m, _, err := pub.adopt(ctx); err != nil || m != nil {
		if err != nil {
			return err
		}
		return c.completeCopy(s, st, m)
	}
	segs := map[uint64]snapfmt.SegmentRef{}
	if r.CopyFromStore == r.Store && lineage.Same(lineage.FromFormat(sm.Encryption), r.Encryption) {
		// Plaintext to plaintext in one store: the copy shares the
		// source's segments, which the copy's hold keeps meanwhile.
		for _, sr := range sm.Segments {
			segs[sr.Index] = sr
		}
	} else {
		pw := newPackWriter(ctx, st)
		defer func() { c.flush.closePacks(pw, err != nil && !pub.sent, r.ID) }()
		src := copySource{name: r.CopyFromStore, st: from, k: srcK}
		if err := c.copySegments(ctx, s, src, sm, k, pw, segs); err != nil {
			return err
		}
	}
	m, _, err := pub.publish(ctx, c.flush.newManifest(r, segs))
	if err != nil {
		return err
	}
	return c.completeCopy(s, st, m)
}

// completeCopy marks copy s completed once its manifest m is stored, and
// drops its hold on the source.
func (c *snapshotCopier) completeCopy(s *snapshot, st snapstore.Store, m *snapfmt.Manifest) error {
	c.reader.cacheManifest(st, snapfmt.ManifestKey(m.SnapshotID), m)
	r := s.complete(m)
	if err := c.meta.PutSnapshot(r); err != nil {
		return err
	}
	if err := c.metaSync.sync(); err != nil {
		return err
	}
	c.dropCopyHold(r)
	c.log.Info("snapshot copy completed", "snapshot", r.ID, "source", r.CopyOf, "data_bytes", m.DataBytes)
	return nil
}
