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
// running; the optimizations are the engine's goroutines (e.wg).
type fastRestores struct {
	// step, when set (tests), runs after each state an optimization or a
	// disable stores: an injection point to hold a snapshot in a state.
	step func(snapID string, st FastRestoreState)

	mu      sync.Mutex
	loaded  bool
	recs    map[string]meta.FastRestoreRecord
	running map[string]*fastRestoreRun
}

// fastRestoreRun is an optimization in flight.
type fastRestoreRun struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// fastRestoresLocked returns the records, loading them first. e.fast.mu is held.
func (e *Engine) fastRestoresLocked() (map[string]meta.FastRestoreRecord, error) {
	f := e.fast
	if !f.loaded {
		recs, err := e.meta.FastRestores()
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

// putFastRestoreLocked stores r. e.fast.mu is held.
func (e *Engine) putFastRestoreLocked(r meta.FastRestoreRecord) error {
	if err := e.meta.PutFastRestore(r); err != nil {
		return err
	}
	e.fast.recs[r.SnapshotID] = r
	return nil
}

// EnableFastSnapshotRestore enables fast restores of completed snapshot
// id (this account's, or one shared with it), for owner; enabling,
// optimizing or enabled already, it answers the state as it is.
func (e *Engine) EnableFastSnapshotRestore(ctx context.Context, id, owner string) (FastRestoreInfo, error) {
	s, err := e.lookupSnapshot(ctx, id)
	if err != nil {
		return FastRestoreInfo{}, err
	}
	if err := e.CheckCreateVolumePermission(ctx, id); err != nil {
		return FastRestoreInfo{}, err
	}
	if st := s.record().State; st != string(SnapshotCompleted) {
		return FastRestoreInfo{}, fmt.Errorf("%w: snapshot %s is %s, not completed", ErrIncorrectState, id, st)
	}
	e.fast.mu.Lock()
	defer e.fast.mu.Unlock()
	recs, err := e.fastRestoresLocked()
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
	if err := e.putFastRestoreLocked(r); err != nil {
		return FastRestoreInfo{}, err
	}
	e.startOptimizeLocked(id)
	return fastRestoreInfo(r), nil
}

// DisableFastSnapshotRestore disables fast restores of snapshot id: it
// answers disabling, and disabled follows once a running optimization
// stopped. Disabled already, it answers that; never enabled, it is
// ErrIncorrectState.
func (e *Engine) DisableFastSnapshotRestore(ctx context.Context, id string) (FastRestoreInfo, error) {
	if _, err := e.lookupSnapshot(ctx, id); err != nil {
		return FastRestoreInfo{}, err
	}
	e.fast.mu.Lock()
	defer e.fast.mu.Unlock()
	recs, err := e.fastRestoresLocked()
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
	if err := e.putFastRestoreLocked(r); err != nil {
		return FastRestoreInfo{}, err
	}
	run := e.fast.running[id]
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		if run != nil {
			run.cancel()
			<-run.done
		}
		e.fastRestoreStep(id, FastRestoreDisabling, FastRestoreDisabled, fastRestoreByUser)
	}()
	return fastRestoreInfo(r), nil
}

// DescribeFastSnapshotRestores returns the fast restore state of every
// snapshot that has one, sorted by snapshot ID; the records of snapshots
// deleted since are dropped.
func (e *Engine) DescribeFastSnapshotRestores(ctx context.Context) ([]FastRestoreInfo, error) {
	e.fast.mu.Lock()
	recs, err := e.fastRestoresLocked()
	var all []meta.FastRestoreRecord
	for _, r := range recs {
		all = append(all, r)
	}
	e.fast.mu.Unlock()
	if err != nil {
		return nil, err
	}
	out := []FastRestoreInfo{}
	for _, r := range all {
		if _, err := e.lookupSnapshot(ctx, r.SnapshotID); errors.Is(err, ErrSnapshotNotFound) {
			e.forgetFastRestore(r.SnapshotID)
			continue
		}
		out = append(out, fastRestoreInfo(r))
	}
	slices.SortFunc(out, func(a, b FastRestoreInfo) int { return strings.Compare(a.SnapshotID, b.SnapshotID) })
	return out, nil
}

// forgetFastRestore drops the record of a deleted snapshot, stopping its
// optimization.
func (e *Engine) forgetFastRestore(id string) {
	e.fast.mu.Lock()
	defer e.fast.mu.Unlock()
	if run := e.fast.running[id]; run != nil {
		run.cancel()
	}
	if err := e.meta.DeleteFastRestore(id); err != nil {
		e.log.Warn("dropping the fast restore record of a deleted snapshot", "snapshot", id, "err", err)
		return
	}
	delete(e.fast.recs, id)
}

// fastRestoreEnabled reports whether volumes created from snapshot id
// now are fast restores.
func (e *Engine) fastRestoreEnabled(id string) bool {
	e.fast.mu.Lock()
	defer e.fast.mu.Unlock()
	recs, err := e.fastRestoresLocked()
	return err == nil && recs[id].State == string(FastRestoreEnabled)
}

// resumeFastRestores, at start, resumes the optimizations a stop
// interrupted and finishes the disables.
func (e *Engine) resumeFastRestores() {
	e.fast.mu.Lock()
	defer e.fast.mu.Unlock()
	recs, err := e.fastRestoresLocked()
	if err != nil {
		e.log.Warn("reading fast snapshot restores", "err", err)
		return
	}
	for id, r := range recs {
		switch FastRestoreState(r.State) {
		case FastRestoreEnabling, FastRestoreOptimizing:
			e.startOptimizeLocked(id)
		case FastRestoreDisabling:
			r.State, r.DisabledTime = string(FastRestoreDisabled), time.Now().UTC().Truncate(time.Millisecond)
			if err := e.putFastRestoreLocked(r); err != nil {
				e.log.Warn("finishing a fast restore disable", "snapshot", id, "err", err)
			}
		}
	}
}

// startOptimizeLocked runs snapshot id's optimization in the background:
// optimizing, its manifest and segments read, then enabled (or, if the
// snapshot cannot be read, disabled with the reason). e.fast.mu is held.
func (e *Engine) startOptimizeLocked(id string) {
	ctx, cancel := context.WithCancel(e.ctx)
	run := &fastRestoreRun{cancel: cancel, done: make(chan struct{})}
	e.fast.running[id] = run
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer close(run.done)
		defer cancel()
		defer func() {
			e.fast.mu.Lock()
			if e.fast.running[id] == run {
				delete(e.fast.running, id)
			}
			e.fast.mu.Unlock()
		}()
		if !e.fastRestoreStep(id, FastRestoreEnabling, FastRestoreOptimizing, fastRestoreLifecycle) {
			return
		}
		err := e.readWholeIndex(ctx, id)
		switch {
		case ctx.Err() != nil:
		case err != nil:
			e.log.Warn("fast snapshot restore: the snapshot cannot be read", "snapshot", id, "err", err)
			e.fastRestoreStep(id, FastRestoreOptimizing, FastRestoreDisabled, fastRestoreFailedText+": "+err.Error())
		default:
			e.fastRestoreStep(id, FastRestoreOptimizing, FastRestoreEnabled, fastRestoreLifecycle)
		}
	}()
}

// fastRestoreStep moves snapshot id from state from (or, for enabling to
// optimizing, already optimizing after a restart) to state to, stamping
// the time; false if it was in another state (disabled meanwhile).
func (e *Engine) fastRestoreStep(id string, from, to FastRestoreState, reason string) bool {
	e.fast.mu.Lock()
	r, ok := e.fast.recs[id]
	if !ok || r.State != string(from) && !(from == FastRestoreEnabling && r.State == string(to)) {
		e.fast.mu.Unlock()
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
	err := e.putFastRestoreLocked(r)
	e.fast.mu.Unlock()
	if err != nil {
		e.log.Warn("storing a fast snapshot restore state", "snapshot", id, "state", to, "err", err)
		return false
	}
	if e.fast.step != nil {
		e.fast.step(id, to)
	}
	return true
}

// readWholeIndex reads completed snapshot id's manifest and every segment
// through the snapshot reader.
func (e *Engine) readWholeIndex(ctx context.Context, id string) error {
	s, err := e.lookupSnapshot(ctx, id)
	if err != nil {
		return err
	}
	r := s.record()
	st, err := e.store(r.Store)
	if err != nil {
		return err
	}
	m, err := e.reader.loadManifest(ctx, st, snapfmt.ManifestKey(r.ID))
	if err != nil {
		return err
	}
	k, err := e.lineages.Get(lineage.FromFormat(m.Encryption))
	if err != nil {
		return err
	}
	for _, ref := range m.Segments {
		if _, err := e.reader.sharedSegment(ctx, st, ref.Key, k); err != nil {
			return err
		}
	}
	return nil
}
