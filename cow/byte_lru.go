package cow

import (
	"math"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// byteLRU is a least-recently-used cache bounded in bytes rather than
// entries: each entry comes with its cost, and the least recently used
// entries go while the sum exceeds the bound (the newest stays, whatever
// its cost). The LRU order is hashicorp/golang-lru's; the caller locks.
type byteLRU[K comparable, V any] struct {
	max   int64
	bytes int64
	lru   *simplelru.LRU[K, costed[V]]
}

type costed[V any] struct {
	val  V
	cost int64
}

func newByteLRU[K comparable, V any](max int64) *byteLRU[K, V] {
	c := &byteLRU[K, V]{max: max}
	// Bounded in bytes, not in entries: the entry bound never binds.
	l, err := simplelru.NewLRU(math.MaxInt, func(_ K, v costed[V]) { c.bytes -= v.cost })
	if err != nil {
		panic(err) // only for a size <= 0
	}
	c.lru = l
	return c
}

func (c *byteLRU[K, V]) get(k K) (V, bool) {
	v, ok := c.lru.Get(k)
	return v.val, ok
}

// put caches val under k, evicting beyond the bound.
func (c *byteLRU[K, V]) put(k K, val V, cost int64) {
	c.lru.Remove(k) // its cost goes through the eviction callback
	c.lru.Add(k, costed[V]{val, cost})
	c.bytes += cost
	for c.bytes > c.max && c.lru.Len() > 1 {
		c.lru.RemoveOldest()
	}
}

func (c *byteLRU[K, V]) remove(k K) { c.lru.Remove(k) }

// removeIf drops every entry whose key drop accepts.
func (c *byteLRU[K, V]) removeIf(drop func(K) bool) {
	for _, k := range c.lru.Keys() {
		if drop(k) {
			c.lru.Remove(k)
		}
	}
}

func (c *byteLRU[K, V]) len() int { return c.lru.Len() }
