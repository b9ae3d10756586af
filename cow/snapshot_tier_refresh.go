package cow

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cowvol/cowvol/cow/snapfmt"
	"github.com/cowvol/cowvol/cow/snapstore"
)

// tierLoop runs the archive tier's loop (tiering.loop) as the engine's
// background work, until the engine stops.
func (e *Engine) tierLoop() {
	defer e.wg.Done()
	e.tiers.loop()
}

// loop keeps the tier states of the regional store's snapshots
// current (other daemons change them), asks for a collection of the
// standard store when a snapshot's data there becomes garbage (a grace
// period after it was archived or its temporary restore ended), and collects the archive
// store's garbage: the copies of permanently restored snapshots and of
// deleted ones.
func (t *tiering) loop() {
	interval := t.env.snapshots.catalogInterval
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		bg := t.env.ctx()
		ctx, cancel := context.WithTimeout(bg, max(interval, 30*time.Second))
		if err := t.refresh(ctx); err != nil && bg.Err() == nil {
			t.env.log.Warn("refreshing snapshot tiers", "err", err)
		}
		cancel()
		t.env.collectArchive()
		select {
		case <-bg.Done():
			return
		case <-tick.C:
		}
	}
}

// refresh reads the tier objects that changed since the last round
// and sets the snapshots' tier states.
func (t *tiering) refresh(ctx context.Context) error {
	st, err := t.env.store(StoreRegional)
	if err != nil {
		return nil
	}
	mods := map[string]time.Time{}
	err = st.List(ctx, tierPrefix, func(o snapstore.ObjectInfo) error {
		mods[strings.TrimPrefix(o.Key, tierPrefix)] = o.ModTime
		return nil
	})
	if err != nil {
		return fmt.Errorf("list tiers: %w", err)
	}
	now := time.Now()
	var errs []error
	for id, mod := range mods {
		t.mu.Lock()
		seen, ok := t.seen[id]
		old := t.states[id]
		t.mu.Unlock()
		if ok && seen.Equal(mod) {
			continue
		}
		tr, err := readTier(ctx, st, id)
		if err != nil || tr == nil {
			errs = append(errs, err)
			continue
		}
		t.mu.Lock()
		t.seen[id], t.states[id] = mod, tr
		t.mu.Unlock()
		if old == nil || old.Status != tr.Status || !old.RestoreExpiryTime.Equal(tr.RestoreExpiryTime) {
			// Restored elsewhere: the manifest was replaced.
			t.env.reader.objects.remove(cacheKey("m", st, snapfmt.ManifestKey(id)))
		}
	}
	t.applyStates(now, mods)
	return errors.Join(errs...)
}

// applyStates sets the tier state of every known snapshot from the
// states read; listed holds the IDs whose objects exist.
func (t *tiering) applyStates(now time.Time, listed map[string]time.Time) {
	t.mu.Lock()
	states := make(map[string]*tierRecord, len(t.states))
	for id, tr := range t.states {
		if _, ok := listed[id]; !ok && !t.runningLocked(id) {
			delete(t.states, id)
			delete(t.seen, id)
			continue
		}
		states[id] = tr
	}
	t.mu.Unlock()
	snaps, grace := t.env.snapshots, t.env.gcGrace
	expired := false
	snaps.mu.Lock()
	for id, tr := range states {
		for _, s := range []*snapshot{snaps.byID[id], snaps.catalog[id]} {
			if s == nil {
				continue
			}
			// Left the standard tier (past its grace) since the last
			// round: its data is garbage now.
			if tr.keepsStandardData(now.Add(-snaps.catalogInterval), grace) && !tr.keepsStandardData(now, grace) {
				expired = true
			}
			s.tier.Store(tr)
		}
	}
	snaps.mu.Unlock()
	if expired {
		t.env.requestGC(StoreRegional)
	}
}
