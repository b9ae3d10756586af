package cow

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cowvol/cowvol/meta"
)

// CreateSnapshots snapshots many volumes at one fork point: every volume's
// writers are held off together, everything written to any of them is
// made durable, and one metadata transaction records every snapshot and
// every volume's next generation (meta.ForkMany). So the snapshots are
// crash-consistent with each other: a write to one volume that completed
// before a write to another began is in the second's snapshot only if it
// is in the first's; and a crash leaves all the snapshots or none.

// MaxCreateSnapshotsVolumes bounds the volumes of one CreateSnapshots call.
const MaxCreateSnapshotsVolumes = 128

// CreateSnapshotsParams are the inputs to Engine.CreateSnapshots.
type CreateSnapshotsParams struct {
	VolumeIDs   []string
	Description string
	// Tags go on every snapshot; CopyTagsFromSource adds each volume's
	// own tags to its snapshot (Tags win for a key both have).
	Tags               []Tag
	CopyTagsFromSource bool
	// DryRun checks the call and creates nothing.
	DryRun bool
}

// CreateSnapshots snapshots the volumes at one fork point. Every volume
// must exist and have fewer than MaxPendingSnapshots pending snapshots;
// if one does not, nothing is created and the error (a *ResourceError)
// names it. The snapshots are returned in the order of p.VolumeIDs.
func (e *Engine) CreateSnapshots(ctx context.Context, p CreateSnapshotsParams) ([]SnapshotInfo, error) {
	if err := validateSnapshotParams(CreateSnapshotParams{Description: p.Description, Tags: p.Tags}); err != nil {
		return nil, err
	}
	switch n := len(p.VolumeIDs); {
	case n == 0:
		return nil, fmt.Errorf("%w: no volumes to snapshot", ErrInvalidParameter)
	case n > MaxCreateSnapshotsVolumes:
		return nil, fmt.Errorf("%w: %d volumes (at most %d in one call)", ErrInvalidParameter, n, MaxCreateSnapshotsVolumes)
	}
	if _, err := e.store(StoreRegional); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidParameter, err)
	}
	vols := make([]*volume, len(p.VolumeIDs))
	for i, id := range p.VolumeIDs {
		if slices.Index(p.VolumeIDs, id) != i {
			return nil, fmt.Errorf("%w: volume %s named twice", ErrInvalidParameter, id)
		}
		v, err := e.lookupLive(id)
		if err != nil {
			return nil, &ResourceError{ID: id, Err: err}
		}
		vols[i] = v
	}
	// Every volume's snapshot turn, in ID order (the order of any other
	// taker of many): the pending counts, the fork and the snapshots'
	// entries are one step (volume_fork.go).
	ordered := slices.Clone(vols)
	slices.SortFunc(ordered, func(a, b *volume) int { return strings.Compare(a.id, b.id) })
	for _, v := range ordered {
		v.snapTurn.Lock()
		defer v.snapTurn.Unlock()
	}
	if err := e.checkSnapshots(vols, p); err != nil || p.DryRun {
		return nil, err
	}
	// Each volume's dirty data goes out with its writers running.
	for _, v := range ordered {
		if err := v.drainForFork(); err != nil {
			if errors.Is(err, ErrVolumeNotFound) {
				return nil, &ResourceError{ID: v.id, Err: err}
			}
			return nil, fmt.Errorf("create snapshot of %s: %w", v.id, err)
		}
	}
	forks, err := e.forkAll(vols, ordered, p)
	if err != nil {
		return nil, err
	}
	out := make([]SnapshotInfo, len(vols))
	e.snapshots.mu.Lock()
	for i, sr := range forks.Snapshots {
		s := &snapshot{rec: sr}
		e.snapshots.byID[sr.ID] = s
		out[i] = s.info()
	}
	e.snapshots.mu.Unlock()
	for _, sr := range forks.Snapshots {
		e.log.Info("snapshot created", "snapshot", sr.ID, "volume", sr.VolumeID, "gen", sr.Gen, "with", len(vols)-1)
	}
	e.wakeFlusher()
	return out, nil
}

// checkSnapshots refuses CreateSnapshots when a volume has too many
// pending snapshots or its snapshot would have too many tags. The caller
// holds every volume's snapshot turn.
func (e *Engine) checkSnapshots(vols []*volume, p CreateSnapshotsParams) error {
	e.snapshots.mu.Lock()
	defer e.snapshots.mu.Unlock()
	for _, v := range vols {
		if n := e.pendingSnapshotsLocked(v.id); n >= MaxPendingSnapshots {
			return &ResourceError{ID: v.id, Err: fmt.Errorf("%w: %s has %d pending snapshots", ErrConcurrentSnapshotLimit, v.id, n)}
		}
		if err := ValidateTags(snapshotTags(p, v)); err != nil {
			return &ResourceError{ID: v.id, Err: err}
		}
	}
	return nil
}

// forkAll is CreateSnapshots' fork: every volume's writers held off at
// once (their fork locks, in ID order), so that one instant is every fork
// point; what was written since the drain synced; one transaction; then
// memory. It returns the forks recorded, snapshots in the order of vols.
func (e *Engine) forkAll(vols, ordered []*volume, p CreateSnapshotsParams) (meta.Forks, error) {
	for _, v := range ordered {
		v.fork.Lock()
		defer v.fork.Unlock()
	}
	for _, v := range ordered {
		if err := v.syncWrites(); err != nil {
			return meta.Forks{}, fmt.Errorf("create snapshot of %s: %w", v.id, err)
		}
	}
	for _, v := range ordered {
		v.recMu.Lock()
		defer v.recMu.Unlock()
	}
	start := time.Now().UTC().Truncate(time.Millisecond)
	var forks meta.Forks
	for _, v := range vols {
		v.mapMu.Lock()
		gen, vr := v.gen, v.record
		v.mapMu.Unlock()
		sr := meta.SnapshotRecord{
			ID:          newID("snap"),
			VolumeID:    v.id,
			Gen:         uint64(gen),
			State:       string(SnapshotPending),
			StartTime:   start,
			Description: p.Description,
			VolumeSize:  v.sizeNow(),
			BlockSize:   int(v.blockSize),
			Store:       StoreRegional,
			Tags:        tagsToMeta(snapshotTags(p, v)),
			Encryption:  vr.Encryption,
		}
		vr.Generation = uint64(gen) + 1
		forks.Volumes = append(forks.Volumes, vr)
		forks.Snapshots = append(forks.Snapshots, sr)
	}
	err := e.meta.ForkMany(forks)
	if err == nil {
		err = e.metaSync.sync()
	}
	if err != nil {
		return meta.Forks{}, fmt.Errorf("create snapshots of %d volumes: %w", len(vols), err)
	}
	for i, v := range vols {
		v.mapMu.Lock()
		v.gen++
		v.record = forks.Volumes[i]
		v.mapMu.Unlock()
	}
	return forks, nil
}

// snapshotTags are the tags CreateSnapshots gives volume v's snapshot.
func snapshotTags(p CreateSnapshotsParams, v *volume) []Tag {
	tags := slices.Clone(p.Tags)
	if !p.CopyTagsFromSource {
		return tags
	}
	v.mapMu.Lock()
	own := tagsFromMeta(v.record.Tags)
	v.mapMu.Unlock()
	for _, t := range own {
		if !slices.ContainsFunc(tags, func(x Tag) bool { return x.Key == t.Key }) {
			tags = append(tags, t)
		}
	}
	return tags
}
