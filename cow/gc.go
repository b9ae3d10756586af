package cow

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cowvol/cowvol/cow/snapfmt"
	"github.com/cowvol/cowvol/cow/snapstore"
)

// Garbage collection is mark and sweep, safe with several daemons on one
// store:
//
//   - Roots are every manifest (snapshots/<id>/manifest) and every hold
//     (holds/<vol>/<snap>). Everything a root's segments name is live.
//     Roots are read from the store, never the object cache, and a root
//     listed but gone when read abandons the round (errRootVanished): the
//     root that replaced it may be missing from the listing.
//   - An object no root needs is deleted only if it is older than the grace
//     period and was stored before the start of every live flush lease less
//     the grace period. A flush holds a lease (leases/<snap>.<start-ms>,
//     refreshed every LeaseTTL/6) from before it stores its first pack until
//     after its manifest and hold are stored, so what it stores is never
//     collected under it, however long it runs. A flush whose lease was
//     not stored for LeaseTTL/2 stops (errLeaseLost) and is retried; a
//     collector judges a lease dead when the store's clock (the mtime of a
//     probe object it puts) is LeaseTTL past the lease's mtime. The grace
//     period also absorbs clock skew between daemons and the store (lease
//     starts are the flushing host's clock).
//   - A volume depends only on holds it owns (its base, and the snapshot it
//     hydrates from), never on another snapshot's manifest; a daemon
//     creating a volume stores its hold and then checks that the manifest
//     still exists (see holdSnapshot), so a deleter either sees the hold in
//     its mark or the creator sees the manifest gone.
//
// Within one daemon, e.gc (held shared by flushes) keeps collection and a
// flush apart as well.

// Defaults for Options.GCGrace and Options.LeaseTTL.
const (
	DefaultGCGrace  = time.Hour
	DefaultLeaseTTL = 10 * time.Minute
)

// storeNow returns the store's clock: the mtime of a probe object put now.
// Lease ages are judged by it, as the leases' mtimes are the store's too.
// A store too full to take the probe is exactly one that needs its garbage
// collected: then it returns the local clock and exact false, and the
// collector judges nothing by it but what is safe (see collectGarbageLocked).
func (e *Engine) storeNow(ctx context.Context, st snapstore.Store) (now time.Time, exact bool, err error) {
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return time.Time{}, false, fmt.Errorf("clock probe: %w", err)
	}
	key := "gc-clock/" + e.accountID + "-" + hex.EncodeToString(rnd[:])
	if err := st.Put(ctx, key, nil); errors.Is(err, snapstore.ErrStoreFull) {
		e.log.Warn("the snapshot store is full: collecting its garbage by the local clock", "store", st.String(), "err", err)
		return time.Now(), false, nil
	} else if err != nil {
		return time.Time{}, false, fmt.Errorf("clock probe: %w", err)
	}
	err = st.List(ctx, key, func(o snapstore.ObjectInfo) error {
		if o.Key == key {
			now = o.ModTime
		}
		return nil
	})
	if derr := st.Delete(context.WithoutCancel(ctx), key); derr != nil {
		e.log.Warn("dropping the clock probe", "key", key, "err", derr)
	}
	if err == nil && now.IsZero() {
		err = errors.New("not listed")
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("clock probe %s: %w", key, err)
	}
	return now, true, nil
}

// errRootVanished: a root listed at the start of a mark was gone when the
// mark read it. The round deletes nothing; the next one starts over.
var errRootVanished = errors.New("a root vanished during the mark; round abandoned")

// collectGarbageLocked deletes the segments, packs and chunks of store
// storeName that no manifest and no hold references, subject to the grace
// period and live flush leases (see above). e.gc is held exclusively.
func (e *Engine) collectGarbageLocked(ctx context.Context, storeName string) error {
	st, err := e.store(storeName)
	if err != nil {
		return err
	}
	start := time.Now()
	cutoff, deadLeases, err := e.gcCutoff(ctx, st)
	if err != nil {
		return err
	}
	if err := e.expireRecycled(ctx, st); err != nil {
		return err
	}
	live, roots, err := e.gcMark(ctx, st)
	if err != nil {
		return err
	}
	deleted, deferred, err := e.gcSweep(ctx, st, storeName, live, cutoff)
	if err != nil {
		return err
	}
	for _, k := range deadLeases {
		if err := st.Delete(ctx, k); err != nil {
			return fmt.Errorf("gc: %w", err)
		}
	}
	if deferred > 0 { // gcLoop cleared it before the round
		e.gc.mu.Lock()
		e.gc.pending[storeName] = true
		e.gc.mu.Unlock()
	}
	if deleted > 0 || deferred > 0 {
		e.log.Info("snapshot store garbage collected", "store", storeName, "objects_deleted", deleted,
			"deferred_in_grace", deferred, "roots", roots, "took", time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// gcCutoff returns the time before which an unmarked object is garbage:
// the start of the oldest live lease (or now), less the grace period; and
// the leases that are dead.
func (e *Engine) gcCutoff(ctx context.Context, st snapstore.Store) (time.Time, []string, error) {
	// The store's time: lease and object mtimes are by its clock.
	now, exact, err := e.storeNow(ctx, st)
	if err != nil {
		return time.Time{}, nil, fmt.Errorf("gc: %w", err)
	}
	// Without the store's clock (a full store) no lease is judged dead:
	// every one holds the cutoff back. Object ages are judged by the
	// local clock, whose skew the grace period absorbs, as it does the
	// skew of lease starts.
	// Leases first: a flush that starts after this listing stores only
	// objects newer than the cutoff.
	cutoff := now
	var deadLeases []string
	err = st.List(ctx, snapfmt.LeasePrefix, func(o snapstore.ObjectInfo) error {
		ls, ok := snapfmt.LeaseStart(o.Key)
		switch {
		case !ok:
		case exact && now.Sub(o.ModTime) > e.leaseTTL:
			deadLeases = append(deadLeases, o.Key)
		case ls.Before(cutoff):
			cutoff = ls
		}
		return nil
	})
	if err != nil {
		return time.Time{}, nil, fmt.Errorf("gc: list leases: %w", err)
	}
	return cutoff.Add(-e.gc.grace), deadLeases, nil
}

// gcMark returns the keys of every object a root (a manifest or a hold)
// in st refers to, and the number of roots.
func (e *Engine) gcMark(ctx context.Context, st snapstore.Store) (map[string]bool, int, error) {
	var roots []string
	for _, prefix := range []string{snapfmt.SnapshotPrefix, snapfmt.HoldPrefix} {
		err := st.List(ctx, prefix, func(o snapstore.ObjectInfo) error {
			if prefix == snapfmt.HoldPrefix || strings.HasSuffix(o.Key, "/manifest") {
				roots = append(roots, o.Key)
			}
			return nil
		})
		if err != nil {
			return nil, 0, fmt.Errorf("gc: list roots: %w", err)
		}
	}
	roots, err := e.gcDropArchivedRoots(ctx, st, roots)
	if err != nil {
		return nil, 0, err
	}
	live := map[string]bool{}
	for _, root := range roots {
		// From the store, never the object cache: the mark must see
		// what the store holds now.
		// A root that fails its checks (ErrCorrupt, naming it) stops
		// the round before the sweep: marking without it could delete
		// data it needs.
		m, _, err := getManifest(ctx, st, root)
		if errors.Is(err, snapstore.ErrNotFound) {
			// Deleted since the listing, perhaps because a flush
			// elsewhere stored a newer root that shares its data and
			// then dropped this one: the newer root is not in our
			// listing, so this mark is incomplete. Give up the round.
			return nil, 0, fmt.Errorf("gc: %w: %s", errRootVanished, root)
		}
		if err != nil {
			return nil, 0, fmt.Errorf("gc: read root: %w", err)
		}
		// An encrypted manifest's references and its segments' pack
		// tables are in the clear: no key is needed to mark.
		for _, key := range m.SegmentKeys() {
			if live[key] {
				continue
			}
			live[key] = true
			objs, err := e.segmentObjectKeys(ctx, st, key)
			if err != nil {
				return nil, 0, fmt.Errorf("gc: %w", err)
			}
			for _, o := range objs {
				live[o] = true
			}
		}
	}
	return live, len(roots), nil
}

// gcSweep deletes the data objects of st (store storeName) that are not
// live and older than cutoff; it returns how many it deleted and how many
// unmarked ones are still in their grace period.
func (e *Engine) gcSweep(ctx context.Context, st snapstore.Store, storeName string, live map[string]bool, cutoff time.Time) (deleted, deferred int, err error) {
	for _, prefix := range []string{snapfmt.SegmentPrefix, snapfmt.PackPrefix, snapfmt.ChunkPrefix} {
		var dead []string
		err := st.List(ctx, prefix, func(o snapstore.ObjectInfo) error {
			switch {
			case live[o.Key]:
			case o.ModTime.Before(cutoff):
				dead = append(dead, o.Key)
			default:
				deferred++
			}
			return nil
		})
		if err != nil {
			return deleted, deferred, fmt.Errorf("gc: list %s: %w", prefix, err)
		}
		for _, k := range dead {
			if err := st.Delete(ctx, k); err != nil {
				return deleted, deferred, fmt.Errorf("gc: %w", err)
			}
			if id, ok := snapfmt.ParsePackKey(k); ok {
				e.reader.packs.drop(storeName, id)
			}
			deleted++
		}
	}
	return deleted, deferred, nil
}

// requestGC asks the background collector for a round on store name soon
// (after a deletion); the caller does not wait for it.
func (e *Engine) requestGC(name string) {
	e.gc.mu.Lock()
	e.gc.pending[name] = true
	e.gc.mu.Unlock()
	select {
	case e.gc.wake <- struct{}{}:
	default:
	}
}

// gcLoop collects garbage in the background: when a deletion asks
// (requestGC), again after a collection that deferred objects still in
// their grace period, and once per grace period in any case (another
// daemon may have left garbage behind).
func (e *Engine) gcLoop() {
	defer e.wg.Done()
	interval := max(e.gc.grace/4, time.Second)
	t := time.NewTicker(interval)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-t.C:
		case <-e.gc.wake:
		}
		for name := range e.stores {
			// Taken and cleared before the round: a request that
			// arrives during it asks for another.
			e.gc.mu.Lock()
			pending := e.gc.pending[name]
			e.gc.pending[name] = false
			e.gc.mu.Unlock()
			if !pending && time.Since(last) < e.gc.grace {
				continue
			}
			e.gc.Lock()
			err := e.collectGarbageLocked(e.ctx, name)
			e.gc.Unlock()
			if err != nil && e.ctx.Err() == nil {
				// Raced a flush or a deletion (errRootVanished), or
				// the store failed: try again at the next tick.
				e.gc.mu.Lock()
				e.gc.pending[name] = true
				e.gc.mu.Unlock()
				switch {
				case errors.Is(err, errRootVanished):
					e.log.Info("garbage collection round abandoned; retrying", "store", name, "err", err)
				case errors.Is(err, ErrCorrupt) || errors.Is(err, snapstore.ErrCorrupt):
					e.log.Error("garbage collection stopped: a stored object is damaged; nothing is deleted from this store until it is repaired or removed",
						"store", name, "err", err)
				default:
					e.log.Warn("background garbage collection failed", "store", name, "err", err)
				}
			}
		}
		if time.Since(last) >= e.gc.grace {
			last = time.Now()
		}
	}
}

// segmentObjectKeys returns the keys of the objects the segment under key
// refers to, through the object cache (segments are immutable).
func (e *Engine) segmentObjectKeys(ctx context.Context, st snapstore.Store, key string) ([]string, error) {
	ck := cacheKey("r", st, key)
	if v, ok := e.reader.objects.get(ck); ok {
		return v.([]string), nil
	}
	b, err := st.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("get segment %s: %w", key, err)
	}
	if want, ok := snapfmt.SegmentSum(key); !ok || sha256.Sum256(b) != want {
		return nil, fmt.Errorf("%w: segment %s does not match its key", ErrCorrupt, key)
	}
	objs, err := snapfmt.SegmentObjects(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	cost := 64
	for _, o := range objs {
		cost += len(o) + 16
	}
	e.reader.objects.put(ck, objs, cost)
	return objs, nil
}
