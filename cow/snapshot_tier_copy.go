package cow

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/cowvol/cowvol/cow/snapfmt"
	"github.com/cowvol/cowvol/cow/snapstore"
)

// copyTier copies completed snapshot s, whole, from store from to store
// to (named toName) under the same snapshot ID, with CopySnapshot's
// machinery: every chunk verified and stored again in packs of the target
// (the lineage stays, so encrypted chunks are copied as they are sealed),
// new segments, and a manifest published last, under a flush lease of the
// target store so that its collector leaves the copy alone. The manifest
// is the source's with the new segments.
//
// adopt takes a manifest an earlier attempt stored in the target as the
// copy (an archival: the archive's manifest is only ever this snapshot's
// full copy). A restore does not adopt: the standard store's manifest is
// the one being replaced. done, if set, runs after the manifest is stored
// and before the lease is dropped.
func (e *Engine) copyTier(ctx context.Context, s *snapshot, from copySource, toName string, to snapstore.Store, adopt bool, done func(context.Context) error) (err error) {
	r := s.record()
	k, err := e.lineages.Get(r.Encryption)
	if err != nil {
		return fmt.Errorf("snapshot %s: %w", r.ID, err)
	}
	from.k = k
	// From the store, not the cache: a restored snapshot's manifest is
	// replaced.
	sm, _, err := getManifest(ctx, from.st, snapfmt.ManifestKey(r.ID))
	if errors.Is(err, snapstore.ErrNotFound) {
		return fmt.Errorf("%w: the %s store has no manifest of %s", ErrSnapshotNotFound, from.name, r.ID)
	}
	if err != nil {
		return fmt.Errorf("manifest of %s in the %s store: %w", r.ID, from.name, err)
	}
	if err := snapfmt.OpenManifest(k.Format(), sm); err != nil {
		return fmt.Errorf("manifest of %s in the %s store: %w", r.ID, from.name, err)
	}
	lease, stopLease, err := e.holdLease(ctx, to, r.ID)
	if err != nil {
		return err
	}
	defer stopLease()
	ctx = lease.ctx
	defer func() { err = lease.blame(err) }()
	// The copy's own snapshot state: its progress is the operation's.
	cp := e.tiers.job(r.ID, r)
	cp.rec.Store = toName
	pub := &manifestPublisher{log: e.log, st: to, s: cp, k: k, lease: lease}
	if adopt {
		if m, _, err := pub.adopt(ctx); err != nil || m != nil {
			if err == nil && done != nil {
				err = done(ctx)
			}
			return err
		}
	}
	pw := newPackWriter(ctx, to)
	defer func() { e.closePacks(pw, err != nil && !pub.sent, r.ID) }()
	segs := map[uint64]snapfmt.SegmentRef{}
	if err := e.copySegments(ctx, cp, from, sm, k, pw, segs); err != nil {
		return err
	}
	m := *sm
	m.Checksum, m.Refs, m.Sealed, m.Segments = "", nil, nil, nil
	for _, sr := range segs {
		m.Segments = append(m.Segments, sr)
	}
	sort.Slice(m.Segments, func(i, j int) bool { return m.Segments[i].Index < m.Segments[j].Index })
	if _, _, err := pub.publish(ctx, &m); err != nil {
		return err
	}
	e.reader.objects.remove(cacheKey("m", to, snapfmt.ManifestKey(r.ID)))
	if done != nil {
		return done(ctx)
	}
	return nil
}
