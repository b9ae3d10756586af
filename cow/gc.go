package cow

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

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
//     refreshed every LeaseTTL/3) from before it stores its first pack until
//     after its manifest and hold are stored, so what it stores is never
//     collected under it, however long it runs. The grace period also
//     absorbs clock skew between daemons and the store.
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

// leaseMargin: a lease starts this much before it is taken, since object
// timestamps can be coarser than time.Now (a filesystem's mtime is).
const leaseMargin = time.Second

// leaseKey names the lease of snapshot snapID's flush, started at start.
func leaseKey(snapID string, start time.Time) string {
	return "leases/" + snapID + "." + strconv.FormatInt(start.UnixMilli(), 10)
}

// parseLease returns the start time in a lease key.
func parseLease(key string) (time.Time, bool) {
	i := strings.LastIndexByte(key, '.')
	if i < 0 {
		return time.Time{}, false
	}
	ms, err := strconv.ParseInt(key[i+1:], 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.UnixMilli(ms), true
}

// holdLease stores a lease for snapshot snapID's flush into st and keeps it
// fresh until the returned stop is called (which deletes it).
func (e *Engine) holdLease(ctx context.Context, st snapstore.Store, snapID string) (stop func(), err error) {
	key := leaseKey(snapID, time.Now().Add(-leaseMargin))
	body := []byte(e.accountID + "\n")
	if err := st.Put(ctx, key, body); err != nil {
		return nil, fmt.Errorf("store flush lease: %w", err)
	}
	lctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(e.leaseTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-lctx.Done():
				return
			case <-t.C:
			}
			if err := st.Put(lctx, key, body); err != nil && lctx.Err() == nil {
				e.log.Warn("refreshing flush lease", "snapshot", snapID, "err", err)
			}
		}
	}()
	return func() {
		cancel()
		<-done
		// Bounded: at shutdown with the store down, the lease expires.
		dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer dcancel()
		if err := st.Delete(dctx, key); err != nil {
			e.log.Warn("dropping flush lease (it expires)", "snapshot", snapID, "err", err)
		}
	}, nil
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
	// Leases first: a flush that starts after this listing stores only
	// objects newer than the cutoff.
	cutoff := start
	var deadLeases []string
	err = st.List(ctx, "leases/", func(o snapstore.ObjectInfo) error {
		ls, ok := parseLease(o.Key)
		switch {
		case !ok:
		case start.Sub(o.ModTime) > e.leaseTTL:
			deadLeases = append(deadLeases, o.Key)
		case ls.Before(cutoff):
			cutoff = ls
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("gc: list leases: %w", err)
	}
	cutoff = cutoff.Add(-e.gcGrace)

	var roots []string
	for _, prefix := range []string{"snapshots/", "holds/"} {
		err := st.List(ctx, prefix, func(o snapstore.ObjectInfo) error {
			if prefix == "holds/" || strings.HasSuffix(o.Key, "/manifest") {
				roots = append(roots, o.Key)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("gc: list roots: %w", err)
		}
	}
	live := map[string]bool{}
	for _, root := range roots {
		// From the store, never the object cache: the mark must see
		// what the store holds now.
		b, err := st.Get(ctx, root)
		if errors.Is(err, snapstore.ErrNotFound) {
			// Deleted since the listing, perhaps because a flush
			// elsewhere stored a newer root that shares its data and
			// then dropped this one: the newer root is not in our
			// listing, so this mark is incomplete. Give up the round.
			return fmt.Errorf("gc: %w: %s", errRootVanished, root)
		}
		if err != nil {
			return fmt.Errorf("gc: read root: %w", err)
		}
		m, err := decodeManifest(b)
		if err != nil {
			return fmt.Errorf("gc: %s: %w", root, err)
		}
		for _, ref := range m.Segments {
			if live[ref.Key] {
				continue
			}
			live[ref.Key] = true
			seg, err := e.loadSegment(ctx, st, ref.Key)
			if err != nil {
				return fmt.Errorf("gc: %w", err)
			}
			for _, l := range seg {
				live[l.objectKey()] = true
			}
		}
	}
	deleted, deferred := 0, 0
	for _, prefix := range []string{"segments/", "packs/", "chunks/"} {
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
			return fmt.Errorf("gc: list %s: %w", prefix, err)
		}
		for _, k := range dead {
			if err := st.Delete(ctx, k); err != nil {
				return fmt.Errorf("gc: %w", err)
			}
			if p, ok := strings.CutPrefix(k, "packs/"); ok {
				var id packID
				if i := strings.LastIndexByte(p, '/'); i >= 0 {
					if n, err := hex.Decode(id[:], []byte(p[i+1:])); err == nil && n == len(id) {
						e.packs.drop(storeName, id)
					}
				}
			}
			deleted++
		}
	}
	for _, k := range deadLeases {
		if err := st.Delete(ctx, k); err != nil {
			return fmt.Errorf("gc: %w", err)
		}
	}
	e.gcMu.Lock()
	e.gcPending[storeName] = deferred > 0
	e.gcMu.Unlock()
	if deleted > 0 || deferred > 0 {
		e.log.Info("snapshot store garbage collected", "store", storeName, "objects_deleted", deleted,
			"deferred_in_grace", deferred, "roots", len(roots), "took", time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// gcLoop collects garbage in the background: again after a collection
// that deferred objects still in their grace period, and once per grace
// period in any case (another daemon may have left garbage behind).
func (e *Engine) gcLoop() {
	defer e.wg.Done()
	interval := max(e.gcGrace/4, time.Second)
	t := time.NewTicker(interval)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-t.C:
		}
		for name := range e.stores {
			e.gcMu.Lock()
			pending := e.gcPending[name]
			e.gcMu.Unlock()
			if !pending && time.Since(last) < e.gcGrace {
				continue
			}
			e.gc.Lock()
			err := e.collectGarbageLocked(e.ctx, name)
			e.gc.Unlock()
			if errors.Is(err, errRootVanished) {
				// Raced a flush or a deletion: try again soon.
				e.gcMu.Lock()
				e.gcPending[name] = true
				e.gcMu.Unlock()
				e.log.Info("garbage collection round abandoned; retrying", "store", name, "err", err)
				continue
			}
			if err != nil && e.ctx.Err() == nil {
				e.log.Warn("background garbage collection failed", "store", name, "err", err)
			}
		}
		if time.Since(last) >= e.gcGrace {
			last = time.Now()
		}
	}
}
