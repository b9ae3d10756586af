package cow

import (
	"fmt"
	"time"

	"github.com/cowvol/cowvol/meta"
)

// The fork without waiting on data. A snapshot must survive a crash right
// after CreateSnapshot returns, so everything written to the volume before
// the fork is durable (data, then metadata) before the fork's record is.
// That wait grows with the dirty data; it is kept out of every lock that
// others wait on:
//
//  1. The volume's snapshot turn (volume.snapTurn) serialises the
//     volume's forks and DeleteVolume's pending check; no other volume's
//     call and no Describe* takes it.
//  2. drainForFork syncs the volume with writers running: the dirty data
//     and map go out while nothing is held but the turn.
//  3. forkOne (or forkAll, CreateSnapshots) takes the fork lock, which
//     holds off the volume's writers, syncs only what was written since
//     the drain (syncWrites: no round at all when nothing was, even if
//     the drain left freed slots waiting for a round), and records the
//     snapshot and the next generation in one metadata transaction.
//  4. The caller enters the snapshot in e.snapshots.byID under
//     e.snapshots.mu, briefly, after the fork lock is released.

// drainForFork makes the volume's writes so far durable ahead of a fork,
// holding no lock (the caller holds v.snapTurn): the fork's own sync then
// has only what is written meanwhile. A volume being deleted is not found.
func (v *volume) drainForFork() error {
	v.mapMu.Lock()
	doomed := v.doomed
	v.mapMu.Unlock()
	if doomed {
		return fmt.Errorf("%w: %s", ErrVolumeNotFound, v.id)
	}
	return v.sync()
}

// forkOne moves volume v to its next generation and durably records sr
// (its ID, description, store and tags filled in) as the snapshot of the
// current one, filling in the rest. The caller holds v.snapTurn and has
// drained the volume.
func (e *Engine) forkOne(v *volume, sr *meta.SnapshotRecord) error {
	// Hold off writers: each write is wholly before the fork or wholly after.
	v.fork.Lock()
	defer v.fork.Unlock()
	// What was written since the drain becomes durable too, so the
	// snapshot's content survives a crash right after the call returns.
	if err := v.syncWrites(); err != nil {
		return err
	}
	// One transaction: the snapshot record and the volume's next generation.
	v.recMu.Lock()
	defer v.recMu.Unlock()
	v.mapMu.Lock()
	gen, vr := v.gen, v.record
	v.mapMu.Unlock()
	sr.Gen = uint64(gen)
	sr.StartTime = time.Now().UTC().Truncate(time.Millisecond)
	sr.VolumeSize = v.sizeNow()
	// A snapshot of an encrypted volume is encrypted, under the volume's
	// data key.
	sr.Encryption = vr.Encryption
	vr.Generation = uint64(gen) + 1
	err := e.meta.Fork(vr, *sr)
	if err == nil {
		err = e.metaSync.sync()
	}
	if err != nil {
		return err
	}
	v.mapMu.Lock()
	v.gen = gen + 1
	v.record = vr
	v.mapMu.Unlock()
	return nil
}
