package cow

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/cowvol/cowvol/meta"
)

// A volume grows online (EC2's ModifyVolume with a larger Size): the new
// size is recorded in the volume's record, with the modification, in one
// durable write, under the volume's fork lock, so that a snapshot taken
// before it has the old size and one taken after it the new one. Blocks past
// the old end read as zeros (they were never written); nothing in the data
// file changes (its slots are allocated as blocks are written).
//
// A modification goes modifying -> optimizing -> completed, each step
// durable: modifying while the engine grows the volume and the host (the
// FUSE file, loop devices) learns the new size, optimizing once it has
// (there is nothing to optimize: the step completes at once), completed
// with its end time. A modification a crash interrupted is completed at the
// next start (the size it recorded is the volume's), and its FinishVolume-
// Modification called again by whoever resizes the host's devices.

// ModificationState is a volume modification's state, named as EC2 names
// them.
type ModificationState string

// The modification states.
const (
	ModificationModifying  ModificationState = "modifying"
	ModificationOptimizing ModificationState = "optimizing"
	ModificationCompleted  ModificationState = "completed"
)

// ErrModificationInProgress: a volume's last modification has not
// completed yet.
var ErrModificationInProgress = errors.New("a modification of the volume is in progress")

// VolumeModification describes a volume's last modification.
type VolumeModification struct {
	VolumeID     string
	State        ModificationState
	Progress     int // percent
	StartTime    time.Time
	EndTime      time.Time // zero until completed
	OriginalSize int64     // bytes
	TargetSize   int64     // bytes
}

func modificationFromMeta(id string, m *meta.VolumeModification) VolumeModification {
	return VolumeModification{VolumeID: id, State: ModificationState(m.State), Progress: m.Progress,
		StartTime: m.StartTime, EndTime: m.EndTime, OriginalSize: m.OriginalSize, TargetSize: m.TargetSize}
}

// sizeNow is the volume's size in bytes.
func (v *volume) sizeNow() int64 { return v.size.Load() }

// blockCount is the number of blocks of the volume.
func (v *volume) blockCount() uint64 { return uint64(v.size.Load()) >> v.shift }

// OnVolumeResized registers fn to be called after a volume grew (the FUSE
// layer uses it to drop the file's attributes from the kernel's caches).
func (e *Engine) OnVolumeResized(fn func(id string)) {
	e.volumes.mu.Lock()
	defer e.volumes.mu.Unlock()
	e.volumes.onResized = fn
}

// ModifyVolumeSize grows volume id to size bytes: larger than its size, a
// multiple of its block size, at most MaxVolumeSize. It returns the
// modification, in state modifying; the caller makes the host see the new
// size and then calls FinishVolumeModification.
func (e *Engine) ModifyVolumeSize(ctx context.Context, id string, size int64) (VolumeModification, error) {
	v, err := e.lookup(id)
	if err != nil {
		return VolumeModification{}, err
	}
	// The map loader reads pages up to the volume's end.
	if err := v.waitLoaded(ctx); err != nil {
		return VolumeModification{}, fmt.Errorf("modify volume %s: %w", id, err)
	}
	if err := ValidateGeometry(size, int(v.blockSize)); err != nil {
		return VolumeModification{}, err
	}
	v.fork.Lock()
	defer v.fork.Unlock()
	v.mapMu.Lock()
	doomed, last := v.doomed, v.record.Modification
	v.mapMu.Unlock()
	old := v.sizeNow()
	switch {
	case doomed:
		return VolumeModification{}, fmt.Errorf("%w: %s", ErrVolumeNotFound, id)
	case last != nil && last.State != string(ModificationCompleted):
		return VolumeModification{}, fmt.Errorf("%w: %s is %s", ErrModificationInProgress, id, last.State)
	case size < old:
		return VolumeModification{}, fmt.Errorf("%w: %d bytes is smaller than the volume's %d", ErrInvalidSize, size, old)
	case size == old:
		return VolumeModification{}, fmt.Errorf("%w: the volume is %d bytes already", ErrInvalidSize, size)
	}
	m := &meta.VolumeModification{State: string(ModificationModifying), StartTime: time.Now().UTC().Truncate(time.Millisecond),
		OriginalSize: old, TargetSize: size}
	err = v.updateRecord(func(r *meta.VolumeRecord) { r.Size, r.Modification = size, m },
		func(meta.VolumeRecord) { v.size.Store(size) })
	if err != nil {
		return VolumeModification{}, fmt.Errorf("modify volume %s: %w", id, e.diskErr("record the new size", err))
	}
	e.log.Info("volume growing", "volume", id, "from", old, "to", size)
	e.volumes.mu.Lock()
	fn := e.volumes.onResized
	e.volumes.mu.Unlock()
	if fn != nil {
		fn(id)
	}
	return modificationFromMeta(id, m), nil
}

// FinishVolumeModification moves volume id's last modification on to
// optimizing, then completed, each step durable. A completed one is left
// as it is.
func (e *Engine) FinishVolumeModification(ctx context.Context, id string) (VolumeModification, error) {
	v, err := e.lookup(id)
	if err != nil {
		return VolumeModification{}, err
	}
	steps := []struct {
		state    ModificationState
		progress int
	}{{ModificationOptimizing, 50}, {ModificationCompleted, 100}}
	var last meta.VolumeModification
	for _, st := range steps {
		v.mapMu.Lock()
		cur := v.record.Modification
		v.mapMu.Unlock()
		if cur == nil {
			return VolumeModification{}, fmt.Errorf("volume %s has no modification", id)
		}
		if cur.State == string(ModificationCompleted) {
			return modificationFromMeta(id, cur), nil
		}
		last = *cur
		last.State, last.Progress = string(st.state), st.progress
		if st.state == ModificationCompleted {
			last.EndTime = time.Now().UTC().Truncate(time.Millisecond)
		}
		next := last
		if err := v.updateRecord(func(r *meta.VolumeRecord) { r.Modification = &next }, nil); err != nil {
			return VolumeModification{}, fmt.Errorf("modify volume %s: %s: %w", id, st.state, err)
		}
	}
	e.log.Info("volume modification completed", "volume", id, "size", last.TargetSize)
	return modificationFromMeta(id, &last), nil
}

// VolumeModifications returns every volume's last modification (volumes
// never modified have none), sorted by volume ID.
func (e *Engine) VolumeModifications(ctx context.Context) ([]VolumeModification, error) {
	var out []VolumeModification
	for _, v := range e.allVolumes() {
		v.mapMu.Lock()
		m, doomed := v.record.Modification, v.doomed
		v.mapMu.Unlock()
		if m != nil && !doomed {
			out = append(out, modificationFromMeta(v.id, m))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].VolumeID < out[j].VolumeID })
	return out, nil
}

// UnfinishedModifications lists the volumes whose last modification a
// stop or crash interrupted: their new size is recorded; the host may not
// have seen it yet.
func (e *Engine) UnfinishedModifications() []string {
	var ids []string
	for _, v := range e.allVolumes() {
		v.mapMu.Lock()
		m := v.record.Modification
		v.mapMu.Unlock()
		if m != nil && m.State != string(ModificationCompleted) {
			ids = append(ids, v.id)
		}
	}
	sort.Strings(ids)
	return ids
}
