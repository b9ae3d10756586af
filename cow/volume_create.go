package cow

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/cowvol/cowvol/cow/snapfmt"
	"github.com/cowvol/cowvol/cow/snapstore"
	"github.com/cowvol/cowvol/meta"
)

// CreateVolume creates an empty, thin-provisioned volume. With a client
// token it is idempotent: the same token and parameters return the volume
// the first call created.
func (e *Engine) CreateVolume(ctx context.Context, p CreateVolumeParams) (VolumeInfo, error) {
	src, err := e.sourceSnapshot(ctx, &p)
	if err != nil {
		return VolumeInfo{}, err
	}
	if p.KMSKeyID != "" && !p.Encrypted && src.Encryption == nil {
		return VolumeInfo{}, fmt.Errorf("%w: KmsKeyId needs Encrypted", ErrParameterDependency)
	}
	if p.BlockSize == 0 {
		p.BlockSize = DefaultBlockSize
	}
	if err := ValidateGeometry(p.Size, p.BlockSize); err != nil {
		return VolumeInfo{}, err
	}
	if err := ValidateTags(p.Tags); err != nil {
		return VolumeInfo{}, err
	}
	if len(p.ClientToken) > 64 {
		return VolumeInfo{}, fmt.Errorf("%w: client token longer than 64 characters", ErrInvalidParameter)
	}
	digest := paramsDigest(p)
	enc, err := e.volumeEncryption(p, src)
	if err != nil {
		return VolumeInfo{}, err
	}

	volID := newID("vol")
	var hold string
	if src.ID != "" {
		// The volume holds its own copy of the snapshot's manifest, so
		// deleting the snapshot never breaks it while it hydrates. Stored
		// before e.volumes.mu is taken: it takes e.gc (see the lock order) and
		// talks to the store.
		var err error
		if hold, err = e.holdSnapshot(ctx, volID, src); err != nil {
			return VolumeInfo{}, err
		}
	}

	e.volumes.mu.Lock()
	v, created, err := e.createVolumeLocked(p, digest, volID, src, hold, enc)
	e.volumes.mu.Unlock()
	var vi VolumeInfo
	if err == nil {
		// The volume a repeated create returns may still be loading.
		vi, err = v.loadedInfo(ctx)
	}
	if !created && hold != "" {
		// A failed create, or a repeated one that returns the volume
		// the first call created.
		if st, serr := e.store(src.Store); serr == nil {
			if derr := st.Delete(context.WithoutCancel(ctx), hold); derr != nil {
				e.log.Warn("dropping the hold of a failed or repeated create", "key", hold, "err", derr)
			}
		}
	}
	return vi, err
}

// sourceSnapshot is the snapshot a volume is created from (none: a zero
// record): it must be completed, readable (not archived) and shared with
// the caller's account. A size or block size left zero in p is taken from
// it; one that does not fit it is refused.
func (e *Engine) sourceSnapshot(ctx context.Context, p *CreateVolumeParams) (meta.SnapshotRecord, error) {
	if p.SnapshotID == "" {
		return meta.SnapshotRecord{}, nil
	}
	s, err := e.lookupSnapshot(ctx, p.SnapshotID)
	if err != nil {
		return meta.SnapshotRecord{}, err
	}
	if err := e.checkCreateVolumePermission(ctx, s); err != nil {
		return meta.SnapshotRecord{}, err
	}
	src := s.record()
	if src.State != string(SnapshotCompleted) {
		return meta.SnapshotRecord{}, fmt.Errorf("%w: snapshot %s is %s, not completed", ErrIncorrectState, src.ID, src.State)
	}
	if err := e.checkReadable(ctx, s, true); err != nil {
		return meta.SnapshotRecord{}, err
	}
	if p.Size == 0 {
		p.Size = src.VolumeSize
	}
	if p.Size < src.VolumeSize {
		return meta.SnapshotRecord{}, fmt.Errorf("%w: %d bytes is smaller than snapshot %s (%d bytes)", ErrInvalidSize, p.Size, src.ID, src.VolumeSize)
	}
	if p.BlockSize == 0 {
		p.BlockSize = src.BlockSize
	}
	if p.BlockSize != src.BlockSize {
		return meta.SnapshotRecord{}, fmt.Errorf("%w: a volume from snapshot %s has its block size, %d", ErrInvalidBlockSize, src.ID, src.BlockSize)
	}
	return src, nil
}

// createVolumeLocked is CreateVolume's part under e.volumes.mu: the client token
// check, the data file and the record. It returns the volume, created by
// this call (a hold, if any, is then the volume's) or by the first call
// with the client token.
func (e *Engine) createVolumeLocked(p CreateVolumeParams, digest, volID string, src meta.SnapshotRecord, hold string, enc *meta.Encryption) (_ *volume, created bool, _ error) {
	if e.volumes.closed {
		return nil, false, ErrClosed
	}
	if p.ClientToken != "" {
		id, err := e.meta.VolumeByClientToken(p.ClientToken)
		switch {
		case err == nil:
			v, ok := e.volumes.byID[id]
			if !ok || v.record.ParamsDigest != digest {
				return nil, false, fmt.Errorf("%w: token %q", ErrIdempotentMismatch, p.ClientToken)
			}
			return v, false, nil
		case !errors.Is(err, meta.ErrNotFound):
			return nil, false, err
		}
	}

	r := meta.VolumeRecord{
		ID:           volID,
		Size:         p.Size,
		BlockSize:    p.BlockSize,
		Generation:   firstGeneration,
		CreateTime:   time.Now().UTC().Truncate(time.Millisecond),
		ClientToken:  p.ClientToken,
		ParamsDigest: digest,
		Encryption:   enc,
	}
	r.Tags = tagsToMeta(p.Tags)
	r.SlotStride = newSlotStride(r)
	if src.ID != "" {
		r.SnapshotID = src.ID
		r.BaseManifest, r.BaseStore, r.BaseGen = hold, src.Store, 0
		r.Hydrating = true
		r.FastRestore = e.fastRestoreEnabled(src.ID)
	}
	f, err := e.openDataFile(e.dataPath(r.ID), true)
	if err != nil {
		return nil, false, e.diskErr("create data file", err)
	}
	if err := syncDir(filepath.Join(e.dir, "volumes")); err != nil {
		f.Close()
		os.Remove(e.dataPath(r.ID))
		return nil, false, e.diskErr("create data file", err)
	}
	v := e.newVolume(r, f)
	if err := e.openJournal(v, nil); err != nil {
		f.Close()
		os.Remove(e.dataPath(r.ID))
		return nil, false, err
	}
	err = e.meta.CreateVolume(r)
	if err == nil {
		err = e.metaSync.sync()
		if err != nil {
			// Whether the record is durable is unknown: take it back.
			// Should that not stick either, the next start finds a
			// record without data and recreates its empty data file.
			if derr := e.meta.DeleteVolume(r); derr != nil {
				e.log.Warn("cannot take back the record of a failed create", "volume", r.ID, "err", derr)
			}
		}
	}
	if err != nil {
		f.Close()
		os.Remove(e.dataPath(r.ID))
		if v.journal != nil {
			v.journal.remove()
		}
		return nil, false, e.diskErr("create volume", err)
	}
	e.volumes.byID[r.ID] = v
	if r.Hydrating {
		e.hydrator.startHydrator(v)
	}
	e.log.Info("volume created", "volume", r.ID, "size", r.Size, "block_size", r.BlockSize, "snapshot", r.SnapshotID, "encrypted", enc != nil)
	return v, true, nil
}

// holdSnapshot copies snapshot src's manifest to a hold of volume volID.
// It takes e.gc shared: the caller holds neither e.gc nor e.volumes.mu.
func (e *Engine) holdSnapshot(ctx context.Context, volID string, src meta.SnapshotRecord) (string, error) {
	if h := e.hooks.holdWaitsForGC; h != nil {
		h()
	}
	e.gc.RLock()
	defer e.gc.RUnlock()
	st, err := e.store(src.Store)
	if err != nil {
		return "", err
	}
	// The hold is a copy of the bytes, checked first: a damaged manifest
	// makes no volume.
	_, b, err := getManifest(ctx, st, snapfmt.ManifestKey(src.ID))
	if errors.Is(err, snapstore.ErrNotFound) {
		return "", fmt.Errorf("%w: %s was deleted", ErrSnapshotNotFound, src.ID)
	}
	if err != nil {
		return "", fmt.Errorf("read manifest of %s: %w", src.ID, err)
	}
	hold := snapfmt.HoldKey(volID, src.ID)
	if err := st.Put(ctx, hold, b); err != nil {
		if errors.Is(err, ErrStoreFull) {
			return "", fmt.Errorf("a volume from snapshot %s keeps a copy of its manifest in the snapshot store, which is full (delete snapshots to make room): %w", src.ID, err)
		}
		return "", fmt.Errorf("hold snapshot %s: %w", src.ID, err)
	}
	// A daemon deleting the snapshot deletes its manifest, then marks
	// from every manifest and hold. If the manifest is still there now,
	// the deleter's mark comes after our hold and sees it; if it is gone,
	// the deleter may not have seen the hold: give up.
	ok, err := st.Exists(ctx, snapfmt.ManifestKey(src.ID))
	if err == nil && !ok {
		err = fmt.Errorf("%w: %s was deleted meanwhile", ErrSnapshotNotFound, src.ID)
	}
	if err != nil {
		if derr := st.Delete(context.WithoutCancel(ctx), hold); derr != nil {
			e.log.Warn("dropping the hold of a failed create", "key", hold, "err", derr)
		}
		return "", err
	}
	return hold, nil
}

// paramsDigest identifies a CreateVolume request for idempotency.
func paramsDigest(p CreateVolumeParams) string {
	h := sha256.New()
	fmt.Fprintf(h, "size=%d\nblock=%d\nsnapshot=%s\nencrypted=%t\nkey=%q\n", p.Size, p.BlockSize, p.SnapshotID, p.Encrypted, p.KMSKeyID)
	for _, t := range p.Tags {
		fmt.Fprintf(h, "tag=%q=%q\n", t.Key, t.Value)
	}
	return hex.EncodeToString(h.Sum(nil))
}
