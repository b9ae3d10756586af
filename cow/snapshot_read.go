package cow

import (
	"cmp"
	"context"
	"crypto/sha256"
	"fmt"
	"slices"

	"github.com/cowvol/cowvol/cow/lineage"
	"github.com/cowvol/cowvol/cow/snapfmt"
	"github.com/cowvol/cowvol/cow/snapstore"
)

// snapshotReader reads stored snapshots: manifests, segments and chunks,
// from the stores through the object and pack caches, which it owns, and
// opens encrypted ones with their lineage's keys. The flusher, hydration,
// CopySnapshot, collection and ReadSnapshot all read through it.
type snapshotReader struct {
	store    func(name string) (snapstore.Store, error)
	lineages *lineage.Cache
	objects  *objectCache // decoded manifests and segments
	packs    *packCache   // windows of packs read
	ahead    *fetchAhead  // fetches windows ahead of sequential reads
}

func newSnapshotReader(store func(string) (snapstore.Store, error), lineages *lineage.Cache) *snapshotReader {
	rd := &snapshotReader{store: store, lineages: lineages, objects: newObjectCache(objectCacheBytes), packs: newPackCache(packCacheBytes)}
	rd.ahead = newFetchAhead(rd)
	return rd
}

// cacheKey names object key of store st, of kind ("m" manifest, "s"
// segment), in the object cache.
func cacheKey(kind string, st snapstore.Store, key string) string {
	return kind + ":" + st.String() + ":" + key
}

func (rd *snapshotReader) cacheManifest(st snapstore.Store, key string, m *snapfmt.Manifest) {
	rd.objects.put(cacheKey("m", st, key), m, 256+len(m.Segments)*manifestEntryCost)
}

// loadManifest reads and decodes a manifest (or a hold of one), opened:
// an encrypted one's segments are unsealed with its lineage's keys, which
// fails while its KMS key is disabled or missing. Only opened manifests are
// cached.
func (rd *snapshotReader) loadManifest(ctx context.Context, st snapstore.Store, key string) (*snapfmt.Manifest, error) {
	if m, ok := rd.objects.get(cacheKey("m", st, key)); ok {
		return m.(*snapfmt.Manifest), nil
	}
	m, _, err := getManifest(ctx, st, key)
	if err != nil {
		return nil, err
	}
	k, err := rd.lineages.Get(lineage.FromFormat(m.Encryption))
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", m.SnapshotID, err)
	}
	if err := snapfmt.OpenManifest(k.Format(), m); err != nil {
		return nil, fmt.Errorf("%s in %s: %w", key, st, err)
	}
	rd.cacheManifest(st, key, m)
	return m, nil
}

// getManifest reads the manifest or hold under key from st, never through
// the object cache, and decodes it (snapfmt.DecodeManifest); it returns the stored
// bytes too. An object that fails the checks, or that is another
// snapshot's manifest than its key names, is ErrCorrupt naming the key and
// the store; the store's own errors (snapstore.ErrNotFound, ...) are
// returned as they are.
func getManifest(ctx context.Context, st snapstore.Store, key string) (*snapfmt.Manifest, []byte, error) {
	b, err := st.Get(ctx, key)
	if err != nil {
		return nil, nil, err
	}
	m, err := snapfmt.DecodeManifest(b)
	if err == nil && m.SnapshotID != snapfmt.SnapshotOfManifestKey(key) {
		err = fmt.Errorf("%w: the manifest of snapshot %s", ErrCorrupt, m.SnapshotID)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s in %s: %w", key, st, err)
	}
	return m, b, nil
}

// loadSegment reads and decodes a segment, in the mutable form a flush
// merges into.
func (rd *snapshotReader) loadSegment(ctx context.Context, st snapstore.Store, key string, k *lineage.Keys) (snapfmt.Segment, error) {
	s, err := rd.sharedSegment(ctx, st, key, k)
	if err != nil {
		return nil, err
	}
	return s.ToMap(), nil
}

// sharedSegment reads and decodes a segment of lineage k (nil: plaintext)
// through the object cache. The index is shared: callers only read it.
func (rd *snapshotReader) sharedSegment(ctx context.Context, st snapstore.Store, key string, k *lineage.Keys) (*snapfmt.SegmentIndex, error) {
	if s, ok := rd.objects.get(cacheKey("s", st, key)); ok {
		return s.(*snapfmt.SegmentIndex), nil
	}
	b, err := st.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("get segment %s: %w", key, err)
	}
	// Content-addressed: check it against its key (the directory store
	// keeps no checksums of its own).
	if want, ok := snapfmt.SegmentSum(key); !ok || sha256.Sum256(b) != want {
		return nil, fmt.Errorf("%w: segment %s does not match its key", ErrCorrupt, key)
	}
	s, err := snapfmt.DecodeSegmentIndex(k.Format(), b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	rd.objects.put(cacheKey("s", st, key), s, 64+len(s.Entries)*segmentEntryCost)
	return s, nil
}

// lookupChunk finds block blk in the manifest under key: its chunk and the
// lineage it is sealed in, or ok=false when the block is all zeros. A
// failure to read the manifest or the segment is an *objectError naming it.
func (rd *snapshotReader) lookupChunk(ctx context.Context, st snapstore.Store, key string, blk uint64) (loc snapfmt.Loc, k *lineage.Keys, ok bool, err error) {
	m, err := rd.loadManifest(ctx, st, key)
	if err != nil {
		return loc, nil, false, &objectError{kind: objManifest, key: key, err: err}
	}
	if k, err = rd.lineages.Get(lineage.FromFormat(m.Encryption)); err != nil {
		return loc, nil, false, fmt.Errorf("snapshot %s: %w", m.SnapshotID, err)
	}
	idx := blk >> snapfmt.SegmentShift
	i, found := searchSegments(m.Segments, idx)
	if !found {
		return loc, k, false, nil
	}
	seg, err := rd.sharedSegment(ctx, st, m.Segments[i].Key, k)
	if err != nil {
		return loc, k, false, &objectError{kind: objSegment, key: m.Segments[i].Key, err: fmt.Errorf("snapshot %s: %w", m.SnapshotID, err)}
	}
	loc, ok = seg.Lookup(uint32(blk & (1<<snapfmt.SegmentShift - 1)))
	return loc, k, ok, nil
}

// searchSegments finds segment idx in refs, sorted by index.
func searchSegments(refs []snapfmt.SegmentRef, idx uint64) (int, bool) {
	return slices.BinarySearchFunc(refs, idx, func(r snapfmt.SegmentRef, idx uint64) int { return cmp.Compare(r.Index, idx) })
}

// readStoredBlock fills dst (one block) with block blk of the manifest
// under key in store storeName. A failure to read an object of the store
// (the manifest, the segment, the chunk's pack) is an *objectError naming it.
func (rd *snapshotReader) readStoredBlock(ctx context.Context, storeName, key string, blk uint64, dst []byte) error {
	st, err := rd.store(storeName)
	if err != nil {
		return err
	}
	loc, k, ok, err := rd.lookupChunk(ctx, st, key, blk)
	if err != nil {
		return err
	}
	rd.ahead.note(storeName, st, key, blk, len(dst))
	if !ok {
		clear(dst)
		return nil
	}
	_, err = rd.packs.checkedChunk(ctx, storeName, st, loc, func(b []byte) error { return snapfmt.DecodeChunk(k.Format(), loc.ID, b, dst) })
	if err != nil {
		return &objectError{kind: objChunk, key: loc.ObjectKey(), err: fmt.Errorf("get chunk of block %d from %s: %w", blk, loc.ObjectKey(), err)}
	}
	return nil
}
