package cow

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/cowvol/cowvol/cow/snapfmt"
	"github.com/cowvol/cowvol/cow/snapstore"
)

// collectArchive has the engine's collector collect the archive store's
// garbage (see collector.collectArchive); tierLoop calls it.
func (e *Engine) collectArchive() {
	newCollector(e).collectArchive()
}

// collectArchive collects the archive store's garbage when asked
// (collectSoon) and once per grace period: it first drops the copies of
// snapshots deleted from the standard store (their manifests there are
// gone), with their tier objects, then marks and sweeps the archive store
// as the standard ones are (collectLocked's steps, under the same
// leases and grace period).
func (c *collector) collectArchive() {
	ast := c.tiers.archive
	if ast == nil {
		return
	}
	c.tiers.mu.Lock()
	due := c.tiers.collect || time.Since(c.tiers.lastCollect) >= c.state.grace
	c.tiers.collect = false
	c.tiers.mu.Unlock()
	if !due {
		return
	}
	ctx, cancel := context.WithTimeout(c.ctx, 10*time.Minute)
	defer cancel()
	err := c.dropOrphanCopies(ctx, ast)
	deferred := 0
	if err == nil {
		deferred, err = c.sweepArchive(ctx, ast)
	}
	c.tiers.mu.Lock()
	switch {
	case err != nil:
		c.tiers.collect = true // again next round
	case deferred > 0:
		// Again a quarter of the grace period on, as loop does.
		c.tiers.lastCollect = time.Now().Add(-c.state.grace * 3 / 4)
	default:
		c.tiers.lastCollect = time.Now()
	}
	c.tiers.mu.Unlock()
	if err != nil && c.ctx.Err() == nil {
		c.log.Warn("archive store garbage collection failed", "err", err)
	}
}

// dropOrphanCopies deletes the archive manifests of snapshots whose
// standard manifest is gone (deleted, and not kept by the recycle bin),
// and their tier objects.
func (c *collector) dropOrphanCopies(ctx context.Context, ast snapstore.Store) error {
	st, err := c.store(StoreRegional)
	if err != nil {
		return nil
	}
	var ids []string
	err = ast.List(ctx, snapfmt.SnapshotPrefix, func(o snapstore.ObjectInfo) error {
		if id, ok := strings.CutSuffix(strings.TrimPrefix(o.Key, snapfmt.SnapshotPrefix), "/manifest"); ok && !strings.Contains(id, "/") {
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list archived manifests: %w", err)
	}
	for _, id := range ids {
		if c.tiers.running(id) {
			continue
		}
		ok, err := st.Exists(ctx, snapfmt.ManifestKey(id))
		if err != nil {
			return fmt.Errorf("look for the manifest of archived %s: %w", id, err)
		}
		if !ok {
			// Deleted into the recycle bin: the archive copy is its
			// data until the bin lets it go.
			ok, err = st.Exists(ctx, recycleRecordKey(id))
			if err != nil {
				return fmt.Errorf("look for the recycle-bin record of archived %s: %w", id, err)
			}
		}
		if ok {
			continue
		}
		if err := ast.Delete(ctx, snapfmt.ManifestKey(id)); err != nil {
			return fmt.Errorf("drop the archive copy of deleted %s: %w", id, err)
		}
		if err := st.Delete(ctx, tierKey(id)); err != nil {
			return fmt.Errorf("drop the tier of deleted %s: %w", id, err)
		}
		c.log.Info("dropped the archive copy of a deleted snapshot", "snapshot", id)
	}
	return nil
}

// sweepArchive marks and sweeps the archive store; it returns how many
// unmarked objects are still in their grace period.
func (c *collector) sweepArchive(ctx context.Context, ast snapstore.Store) (int, error) {
	cutoff, deadLeases, err := c.cutoff(ctx, ast)
	if err != nil {
		return 0, err
	}
	live, roots, err := c.mark(ctx, ast)
	if err != nil {
		return 0, err
	}
	deleted, deferred, err := c.sweep(ctx, ast, StoreArchive, live, cutoff)
	if err != nil {
		return 0, err
	}
	for _, k := range deadLeases {
		if err := ast.Delete(ctx, k); err != nil {
			return 0, fmt.Errorf("gc: %w", err)
		}
	}
	if deleted > 0 || deferred > 0 {
		c.log.Info("archive store garbage collected", "objects_deleted", deleted, "deferred_in_grace", deferred, "roots", roots)
	}
	return deferred, nil
}
