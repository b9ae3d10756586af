package cow

import (
	"fmt"
	"testing"
)

// TestObjectCacheBoundsBytes: the cache holds decoded objects up to its
// byte bound, least recently used out first, and always the newest.
func TestObjectCacheBoundsBytes(t *testing.T) {
	c := newObjectCache(100)
	for i := range 5 {
		c.put(fmt.Sprint(i), i, 30)
	}
	if c.lru.bytes > 100 {
		t.Fatalf("%d bytes cached, bound 100", c.lru.bytes)
	}
	for i, want := range []bool{false, false, true, true, true} {
		if _, ok := c.get(fmt.Sprint(i)); ok != want {
			t.Fatalf("entry %d cached: %v, want %v", i, ok, want)
		}
	}
	c.get("2") // most recently used now: 3 goes next
	c.put("5", 5, 30)
	if _, ok := c.get("3"); ok {
		t.Fatal("the least recently used entry stayed")
	}
	if _, ok := c.get("2"); !ok {
		t.Fatal("a recently used entry went")
	}
	c.put("big", 0, 1000) // over the bound alone: kept, everything else goes
	if _, ok := c.get("big"); !ok || c.lru.len() != 1 || c.lru.bytes != 1000 {
		t.Fatalf("after an oversized entry: %d entries, %d bytes", c.lru.len(), c.lru.bytes)
	}
	c.remove("big")
	if c.lru.bytes != 0 || c.lru.len() != 0 {
		t.Fatalf("after remove: %d entries, %d bytes", c.lru.len(), c.lru.bytes)
	}
}
