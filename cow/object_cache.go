package cow

import (
	"sync"
	"unsafe"

	"github.com/cowvol/cowvol/cow/snapfmt"
)

// objectCache is a small LRU of decoded manifests and segments, keyed by
// store and object key (cacheKey). Both are immutable: segments are
// content-addressed, and a manifest is written once (a retried flush that
// finds its manifest stored adopts it, never rewrites it), so cached copies
// never go stale. Garbage collection still reads its roots from the store:
// a root may be deleted.
type objectCache struct {
	mu  sync.Mutex
	lru *byteLRU[string, any]
}

// objectCacheBytes bounds the object cache: about four full segments.
const objectCacheBytes = 32 << 20

// Memory costs of decoded objects, for the cache's bound: a segment is a
// sorted array of entries and nothing else; a manifest is a list of
// segment references, each with its key's string (roughly).
const (
	segmentEntryCost  = int(unsafe.Sizeof(snapfmt.SegmentEntry{}))
	manifestEntryCost = 96
)

func newObjectCache(maxBytes int) *objectCache {
	return &objectCache{lru: newByteLRU[string, any](int64(maxBytes))}
}

func (c *objectCache) get(key string) (any, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.get(key)
}

// put caches val, which holds about cost bytes, evicting the least
// recently used entries beyond the cache's bound (the newest entry stays,
// whatever its cost).
func (c *objectCache) put(key string, val any, cost int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lru.put(key, val, int64(cost))
}

func (c *objectCache) remove(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lru.remove(key)
}
