package cow

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cowvol/cowvol/cow/lineage"
	"github.com/cowvol/cowvol/cow/snapfmt"
	"github.com/cowvol/cowvol/meta"
)

// Fast snapshot restores, as EC2's EnableFastSnapshotRestores in the
// daemon's one Availability Zone. Enabling one moves a snapshot through
// enabling and optimizing (its manifest and every segment read, which
// checks the snapshot can be read) to enabled; disabling through
// disabling to disabled. A volume created from a snapshot whose fast
// restores are enabled is FastRestore: its hydrator fetches at full
// bucket speed (not paced against foreground I/O; the reads ahead of
// fetch_ahead.go run in parallel) and the volume reports creating until
// every block is local, then available, as EBS's fully initialized
// volumes. The states are stored (meta.FastRestoreRecord); a restart
// resumes an optimization and finishes a disable.

// FastRestoreState is a snapshot's fast restore state, named as EC2 names them.
type FastRestoreState string

// The fast restore states.
const (
	FastRestoreEnabling   FastRestoreState = "enabling"
	FastRestoreOptimizing FastRestoreState = "optimizing"
	FastRestoreEnabled    FastRestoreState = "enabled"
	FastRestoreDisabling  FastRestoreState = "disabling"
	FastRestoreDisabled   FastRestoreState = "disabled"
)

// VolumeCreating: a volume created from a snapshot with fast restores
// enabled, still hydrating.
const VolumeCreating VolumeState = "creating"

// Why a fast restore state changed (StateTransitionReason, as EC2 gives it).
const (
	fastRestoreByUser     = "Client.UserInitiated"
	fastRestoreLifecycle  = "Client.UserInitiated - Lifecycle state transition"
	fastRestoreFailedText = "Server.InternalError"
)

// FastRestoreInfo describes a snapshot's fast restore state.
type FastRestoreInfo struct {
	SnapshotID string
	State      FastRestoreState
	Reason     string
	OwnerID    string // the account that enabled it
	EnablingTime, OptimizingTime, EnabledTime,
	DisablingTime, DisabledTime time.Time
}

func fastRestoreInfo(r meta.FastRestoreRecord) FastRestoreInfo {
	return FastRestoreInfo{SnapshotID: r.SnapshotID, State: FastRestoreState(r.State), Reason: r.Reason, OwnerID: r.OwnerID,
		EnablingTime: r.EnablingTime, OptimizingTime: r.OptimizingTime, EnabledTime: r.EnabledTime,
		DisablingTime: r.DisablingTime, DisabledTime: r.DisabledTime}
}

// fastRestores holds the fast restore records and the optimizations
// running; the optimizations are the engine's goroutines (env.wg).
type fastRestores struct {
	// step, when set (tests), runs after each state an optimization or a
	// disable stores: an injection point to hold a snapshot in a state.
	step func(snapID string, st FastRestoreState)

	mu      sync.Mutex
	loaded  bool
	recs    map[string]meta.FastRestoreRecord
	running map[string]*fastRestoreRun

	env *fastRestoreEnv // what fast restores use of the engine
}

// fastRestoreRun is an optimization in flight.
type fastRestoreRun struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// EnableFastSnapshotRestore enables fast restores of completed snapshot
// id (this account's, or one shared with it), for owner; enabling,
// optimizing or enabled already, it answers the state as it is.
func (e *Engine) EnableFastSnapshotRestore(ctx context.Context, id, owner string) (FastRestoreInfo, error) {
	return e.fast.enable(ctx, id, owner)
}

// DisableFastSnapshotRestore disables fast restores of snapshot id: it
// answers disabling, and disabled follows once a running optimization
// stopped. Disabled already, it answers that; never enabled, it is
// ErrIncorrectState.
func (e *Engine) DisableFastSnapshotRestore(ctx context.Context, id string) (FastRestoreInfo, error) {
	return e.fast.disable(ctx, id)
}

// DescribeFastSnapshotRestores returns the fast restore state of every
// snapshot that has one, sorted by snapshot ID; the records of snapshots
// deleted since are dropped.
func (e *Engine) DescribeFastSnapshotRestores(ctx context.Context) ([]FastRestoreInfo, error) {
	return e.fast.describe(ctx)
}

// fastRestoreEnabled reports whether volumes created from snapshot id
// now are fast restores.
func (e *Engine) fastRestoreEnabled(id string) bool { return e.fast.enabled(id) }

// resumeFastRestores, at start, resumes the optimizations a stop
// interrupted and finishes the disables.
func (e *Engine) resumeFastRestores() { e.fast.resume() }

// recordsLocked returns the records, loading them first. f.mu is held.
func (f *fastRestores) recordsLocked() (map[string]meta.FastRestoreRecord, error) {
	if !f.loaded {
		recs, err := f.env.records.FastRestores()
		if err != nil {
			return nil, err
		}
		f.recs, f.running = map[string]meta.FastRestoreRecord{}, map[string]*fastRestoreRun{}
		for _, r := range recs {
			f.recs[r.SnapshotID] = r
		}
		f.loaded = true
	}
	return f.recs, nil
}

// putLocked stores r. f.mu is held.
func (f *fastRestores) putLocked(r meta.FastRestoreRecord) error {
	if err := f.env.records.PutFastRestore(r); err != nil {
		return err
	}
	f.recs[r.SnapshotID] = r
	return nil
}

// enable enables fast restores of completed snapshot id for owner
// (EnableFastSnapshotRestore).
func (f *fastRestores) enable(ctx context.Context, id, owner string) (FastRestoreInfo, error) {
	s, err := f.env.lookup(ctx, id)
	if err != nil {
		return FastRestoreInfo{}, err
	}
	if err := f.env.checkPermission(ctx, id); err != nil {
		return FastRestoreInfo{}, err
	}
	if st := s.record().State; st != string(SnapshotCompleted) {
		return FastRestoreInfo{}, fmt.Errorf("%w: snapshot %s is %s, not completed", ErrIncorrectState, id, st)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	recs, err := f.recordsLocked()
	if err != nil {
		return FastRestoreInfo{}, err
	}
	r, ok := recs[id]
	switch {
	case ok && r.State == string(FastRestoreDisabling):
		return FastRestoreInfo{}, fmt.Errorf("%w: fast snapshot restores of %s are being disabled", ErrIncorrectState, id)
	case ok && r.State != string(FastRestoreDisabled):
		return fastRestoreInfo(r), nil
	}
	r = meta.FastRestoreRecord{SnapshotID: id, State: string(FastRestoreEnabling), Reason: fastRestoreByUser,
		OwnerID: owner, EnablingTime: time.Now().UTC().Truncate(time.Millisecond)}
	if err := f.putLocked(r); err != nil {
		return FastRestoreInfo{}, err
	}
	f.startOptimizeLocked(id)
	return fastRestoreInfo(r), nil
}

// disable disables fast restores of snapshot id
// (DisableFastSnapshotRestore): disabling now, disabled once a running
// optimization stopped.
func (f *fastRestores) disable(ctx context.Context, id string) (FastRestoreInfo, error) {
	if _, err := f.env.lookup(ctx, id); err != nil {
		return FastRestoreInfo{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	recs, err := f.recordsLocked()
	if err != nil {
		return FastRestoreInfo{}, err
	}
	r, ok := recs[id]
	switch {
	case !ok:
		return FastRestoreInfo{}, fmt.Errorf("%w: fast snapshot restores of %s are not enabled", ErrIncorrectState, id)
	case r.State == string(FastRestoreDisabling) || r.State == string(FastRestoreDisabled):
		return fastRestoreInfo(r), nil
	}
	r.State, r.Reason, r.DisablingTime = string(FastRestoreDisabling), fastRestoreByUser, time.Now().UTC().Truncate(time.Millisecond)
	if err := f.putLocked(r); err != nil {
		return FastRestoreInfo{}, err
	}
	run := f.running[id]
	f.env.wg.Add(1)
	go func() {
		defer f.env.wg.Done()
		if run != nil {
			run.cancel()
			<-run.done
		}
		f.advance(id, FastRestoreDisabling, FastRestoreDisabled, fastRestoreByUser)
	}()
	return fastRestoreInfo(r), nil
}

// describe returns the fast restore state of every snapshot that has one,
// sorted by snapshot ID, dropping the records of snapshots deleted since
// (DescribeFastSnapshotRestores).
func (f *fastRestores) describe(ctx context.Context) ([]FastRestoreInfo, error) {
	f.mu.Lock()
	recs, err := f.recordsLocked()
	var all []meta.FastRestoreRecord
	for _, r := range recs {
		all = append(all, r)
	}
	f.mu.Unlock()
	if err != nil {
		return nil, err
	}
	out := []FastRestoreInfo{}
	for _, r := range all {
		if _, err := f.env.lookup(ctx, r.SnapshotID); errors.Is(err, ErrSnapshotNotFound) {
			f.forget(r.SnapshotID)
			continue
		}
		out = append(out, fastRestoreInfo(r))
	}
	slices.SortFunc(out, func(a, b FastRestoreInfo) int { return strings.Compare(a.SnapshotID, b.SnapshotID) })
	return out, nil
}

// forget drops the record of a deleted snapshot, stopping its
// optimization.
func (f *fastRestores) forget(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if run := f.running[id]; run != nil {
		run.cancel()
	}
	if err := f.env.records.DeleteFastRestore(id); err != nil {
		f.env.log.Warn("dropping the fast restore record of a deleted snapshot", "snapshot", id, "err", err)
		return
	}
	delete(f.recs, id)
}

// enabled reports whether volumes created from snapshot id now are fast
// restores.
func (f *fastRestores) enabled(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	recs, err := f.recordsLocked()
	return err == nil && recs[id].State == string(FastRestoreEnabled)
}

// resume, at start, resumes the optimizations a stop interrupted and
// finishes the disables.
func (f *fastRestores) resume() {
	f.mu.Lock()
	defer f.mu.Unlock()
	recs, err := f.recordsLocked()
	if err != nil {
		f.env.log.Warn("reading fast snapshot restores", "err", err)
		return
	}
	for id, r := range recs {
		switch FastRestoreState(r.State) {
		case FastRestoreEnabling, FastRestoreOptimizing:
			f.startOptimizeLocked(id)
		case FastRestoreDisabling:
			r.State, r.DisabledTime = string(FastRestoreDisabled), time.Now().UTC().Truncate(time.Millisecond)
			if err := f.putLocked(r); err != nil {
				f.env.log.Warn("finishing a fast restore disable", "snapshot", id, "err", err)
			}
		}
	}
}

// startOptimizeLocked runs snapshot id's optimization in the background:
// optimizing, its manifest and segments read, then enabled (or, if the
// snapshot cannot be read, disabled with the reason). f.mu is held.
func (f *fastRestores) startOptimizeLocked(id string) {
	ctx, cancel := context.WithCancel(f.env.ctx())
	run := &fastRestoreRun{cancel: cancel, done: make(chan struct{})}
	f.running[id] = run
	f.env.wg.Add(1)
	go func() {
		defer f.env.wg.Done()
		defer close(run.done)
		defer cancel()
		defer func() {
			f.mu.Lock()
			if f.running[id] == run {
				delete(f.running, id)
			}
			f.mu.Unlock()
		}()
		if !f.advance(id, FastRestoreEnabling, FastRestoreOptimizing, fastRestoreLifecycle) {
			return
		}
		err := f.readWholeIndex(ctx, id)
		switch {
		case ctx.Err() != nil:
		case err != nil:
			f.env.log.Warn("fast snapshot restore: the snapshot cannot be read", "snapshot", id, "err", err)
			f.advance(id, FastRestoreOptimizing, FastRestoreDisabled, fastRestoreFailedText+": "+err.Error())
		default:
			f.advance(id, FastRestoreOptimizing, FastRestoreEnabled, fastRestoreLifecycle)
		}
	}()
}

// advance moves snapshot id from state from (or, for enabling to
// optimizing, already optimizing after a restart) to state to, stamping
// the time; false if it was in another state (disabled meanwhile).
func (f *fastRestores) advance(id string, from, to FastRestoreState, reason string) bool {
	f.mu.Lock()
	r, ok := f.recs[id]
	if !ok || r.State != string(from) && !(from == FastRestoreEnabling && r.State == string(to)) {
		f.mu.Unlock()
		return false
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	r.State, r.Reason = string(to), reason
	switch to {
	case FastRestoreOptimizing:
		r.OptimizingTime = now
	case FastRestoreEnabled:
		r.EnabledTime = now
	case FastRestoreDisabled:
		r.DisabledTime = now
	}
	err := f.putLocked(r)
	f.mu.Unlock()
	if err != nil {
		f.env.log.Warn("storing a fast snapshot restore state", "snapshot", id, "state", to, "err", err)
		return false
	}
	if f.step != nil {
		f.step(id, to)
	}
	return true
}

// readWholeIndex reads completed snapshot id's manifest and every segment
// through the snapshot reader.
func (f *fastRestores) readWholeIndex(ctx context.Context, id string) error {
	s, err := f.env.lookup(ctx, id)
	if err != nil {
		return err
	}
	r := s.record()
	st, err := f.env.store(r.Store)
	if err != nil {
		return err
	}
	m, err := f.env.reader.loadManifest(ctx, st, snapfmt.ManifestKey(r.ID))
	if err != nil {
		return err
	}
	k, err := f.env.lineages.Get(lineage.FromFormat(m.Encryption))
	if err != nil {
		return err
	}
	for _, ref := range m.Segments {
		if _, err := f.env.reader.sharedSegment(ctx, st, ref.Key, k); err != nil {
			return err
		}
	}
	return nil
}
