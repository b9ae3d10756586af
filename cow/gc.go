package cow

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
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
//
// A collector (below) does the collecting; the engine keeps only the entry
// points the rest of it calls: gcLoop, requestGC and collectArchive.

// Defaults for Options.GCGrace and Options.LeaseTTL.
const (
	DefaultGCGrace  = time.Hour
	DefaultLeaseTTL = 10 * time.Minute
)

// collector collects the garbage of the snapshot stores by the rules
// above: the background loop, each round's cutoff, mark and sweep, and the
// archive store's collection (snapshot_tier_gc.go). Its fields are all it
// uses of the engine.
type collector struct {
	state    *gcState        // the engine's gc: its lock and pending rounds
	ctx      context.Context // the engine's background work's
	stores   map[string]snapstore.Store
	store    func(name string) (snapstore.Store, error)
	owner    string        // the account ID, which names the clock probes
	leaseTTL time.Duration // Options.LeaseTTL
	objects  *objectCache  // the reader's: segments' object lists
	packs    *packCache    // the reader's: a deleted pack's windows go
	tiers    *tiering      // the archive tier (snapshot_tier_state.go)
	log      *slog.Logger
	// expireRecycled deletes what the recycle bin keeps past its
	// retention (recycleBin.expire); dropArchivedRoots drops the manifests of
	// archived snapshots from a mark's roots (snapshot_tier_state.go).
	expireRecycled    func(ctx context.Context, st snapstore.Store) error
	dropArchivedRoots func(ctx context.Context, st snapstore.Store, roots []string) ([]string, error)
}

// newCollector is the collector of e's stores.
func newCollector(e *Engine) *collector {
	return &collector{
		state: &e.gc, ctx: e.ctx, stores: e.stores, store: e.store,
		owner: e.accountID, leaseTTL: e.leaseTTL,
		objects: e.reader.objects, packs: e.reader.packs, tiers: e.tiers, log: e.log,
		expireRecycled: e.bin.expire, dropArchivedRoots: e.gcDropArchivedRoots,
	}
}

// gcLoop runs the engine's collector in the background until the engine
// stops (see collector.loop).
func (e *Engine) gcLoop() {
	defer e.wg.Done()
	newCollector(e).loop()
}

// requestGC asks the background collector for a round on store name soon
// (after a deletion); the caller does not wait for it.
func (e *Engine) requestGC(name string) {
	e.gc.request(name)
}

// request asks the background collector for a round on store name soon;
// the caller does not wait for it.
func (g *gcState) request(name string) {
	g.setPending(name)
	select {
	case g.wake <- struct{}{}:
	default:
	}
}

// setPending marks store name as due for a round.
func (g *gcState) setPending(name string) {
	g.mu.Lock()
	g.pending[name] = true
	g.mu.Unlock()
}

// takePending reports whether store name is due for a round, and clears
// it: a request that arrives during the round asks for another.
func (g *gcState) takePending(name string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	pending := g.pending[name]
	g.pending[name] = false
	return pending
}

// storeNow returns the store's clock: the mtime of a probe object put now.
// Lease ages are judged by it, as the leases' mtimes are the store's too.
// A store too full to take the probe is exactly one that needs its garbage
// collected: then it returns the local clock and exact false, and the
// collector judges nothing by it but what is safe (see collectLocked).
func (c *collector) storeNow(ctx context.Context, st snapstore.Store) (now time.Time, exact bool, err error) {
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return time.Time{}, false, fmt.Errorf("clock probe: %w", err)
	}
	key := "gc-clock/" + c.owner + "-" + hex.EncodeToString(rnd[:])
	if err := st.Put(ctx, key, nil); errors.Is(err, snapstore.ErrStoreFull) {
		c.log.Warn("the snapshot store is full: collecting its garbage by the local clock", "store", st.String(), "err", err)
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
		c.log.Warn("dropping the clock probe", "key", key, "err", derr)
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

// collectLocked deletes the segments, packs and chunks of store
// storeName that no manifest and no hold references, subject to the grace
// period and live flush leases (see above). c.state is held exclusively.
func (c *collector) collectLocked(ctx context.Context, storeName string) error {
	st, err := c.store(storeName)
	if err != nil {
		return err
	}
	start := time.Now()
	cutoff, deadLeases, err := c.cutoff(ctx, st)
	if err != nil {
		return err
	}
	if err := c.expireRecycled(ctx, st); err != nil {
		return err
	}
	live, roots, err := c.mark(ctx, st)
	if err != nil {
		return err
	}
	deleted, deferred, err := c.sweep(ctx, st, storeName, live, cutoff)
	if err != nil {
		return err
	}
	for _, k := range deadLeases {
		if err := st.Delete(ctx, k); err != nil {
			return fmt.Errorf("gc: %w", err)
		}
	}
	if deferred > 0 { // loop cleared it before the round
		c.state.setPending(storeName)
	}
	if deleted > 0 || deferred > 0 {
		c.log.Info("snapshot store garbage collected", "store", storeName, "objects_deleted", deleted,
			"deferred_in_grace", deferred, "roots", roots, "took", time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// cutoff returns the time before which an unmarked object is garbage:
// the start of the oldest live lease (or now), less the grace period; and
// the leases that are dead.
func (c *collector) cutoff(ctx context.Context, st snapstore.Store) (time.Time, []string, error) {
	// The store's time: lease and object mtimes are by its clock.
	now, exact, err := c.storeNow(ctx, st)
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
		case exact && now.Sub(o.ModTime) > c.leaseTTL:
			deadLeases = append(deadLeases, o.Key)
		case ls.Before(cutoff):
			cutoff = ls
		}
		return nil
	})
	if err != nil {
		return time.Time{}, nil, fmt.Errorf("gc: list leases: %w", err)
	}
	return cutoff.Add(-c.state.grace), deadLeases, nil
}

// mark returns the keys of every object a root (a manifest or a hold)
// in st refers to, and the number of roots.
func (c *collector) mark(ctx context.Context, st snapstore.Store) (map[string]bool, int, error) {
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
	roots, err := c.dropArchivedRoots(ctx, st, roots)
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
			objs, err := c.segmentObjectKeys(ctx, st, key)
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

// sweep deletes the data objects of st (store storeName) that are not
// live and older than cutoff; it returns how many it deleted and how many
// unmarked ones are still in their grace period.
func (c *collector) sweep(ctx context.Context, st snapstore.Store, storeName string, live map[string]bool, cutoff time.Time) (deleted, deferred int, err error) {
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
				c.packs.drop(storeName, id)
			}
			deleted++
		}
	}
	return deleted, deferred, nil
}

// loop collects garbage in the background: when a deletion asks
// (requestGC), again after a collection that deferred objects still in
// their grace period, and once per grace period in any case (another
// daemon may have left garbage behind).
func (c *collector) loop() {
	interval := max(c.state.grace/4, time.Second)
	t := time.NewTicker(interval)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		case <-c.state.wake:
		}
		for name := range c.stores {
			if !c.state.takePending(name) && time.Since(last) < c.state.grace {
				continue
			}
			c.state.Lock()
			err := c.collectLocked(c.ctx, name)
			c.state.Unlock()
			if err != nil && c.ctx.Err() == nil {
				// Raced a flush or a deletion (errRootVanished), or
				// the store failed: try again at the next tick.
				c.state.setPending(name)
				switch {
				case errors.Is(err, errRootVanished):
					c.log.Info("garbage collection round abandoned; retrying", "store", name, "err", err)
				case errors.Is(err, ErrCorrupt) || errors.Is(err, snapstore.ErrCorrupt):
					c.log.Error("garbage collection stopped: a stored object is damaged; nothing is deleted from this store until it is repaired or removed",
						"store", name, "err", err)
				default:
					c.log.Warn("background garbage collection failed", "store", name, "err", err)
				}
			}
		}
		if time.Since(last) >= c.state.grace {
			last = time.Now()
		}
	}
}

// segmentObjectKeys returns the keys of the objects the segment under key
// refers to, through the object cache (segments are immutable).
func (c *collector) segmentObjectKeys(ctx context.Context, st snapstore.Store, key string) ([]string, error) {
	ck := cacheKey("r", st, key)
	if v, ok := c.objects.get(ck); ok {
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
	c.objects.put(ck, objs, cost)
	return objs, nil
}
