package cow

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/cowvol/cowvol/cow/snapfmt"
	"github.com/cowvol/cowvol/cow/snapstore"
)

// Reads of stored chunks go through a cache of pack windows: a chunk is
// fetched with the rest of its packWindow-aligned window of the pack (one
// ranged GET), so the blocks after it, which the flusher packed after it,
// are read ahead. Sequential reads of a restored volume and its background
// hydration cost one request per window, not one per block.
const (
	packWindow     = 4 << 20
	packCacheBytes = 64 << 20
)

type windowKey struct {
	store string
	pack  snapfmt.PackID
	start uint32
}

// packCache is an LRU of pack windows with at most one fetch per window in
// flight (later readers wait for it).
type packCache struct {
	max int64

	// mu guards the fields that follow.
	mu      sync.Mutex
	windows *byteLRU[windowKey, []byte]
	loading map[windowKey]*windowLoad
	fetches int // ranged reads issued (for tests and logs)
}

type windowLoad struct {
	done  chan struct{}
	data  []byte
	err   error
	ahead bool // a fetch ahead (fetch_ahead.go): a reader that finds it failed fetches again
}

func newPackCache(max int64) *packCache {
	return &packCache{max: max, windows: newByteLRU[windowKey, []byte](max), loading: map[windowKey]*windowLoad{}}
}

// chunk returns the stored (compressed) bytes of the chunk at l in store
// st (named storeName).
func (c *packCache) chunk(ctx context.Context, storeName string, st snapstore.Store, l snapfmt.Loc) ([]byte, error) {
	if !l.InPack() {
		return st.Get(ctx, snapfmt.ChunkKey(l.ID))
	}
	if l.PackSize == 0 || l.Off+l.N > l.PackSize {
		return nil, fmt.Errorf("%w: chunk %s at %d+%d of a %d-byte pack", ErrCorrupt, l.ID, l.Off, l.N, l.PackSize)
	}
	start := l.Off / packWindow * packWindow
	end := min(start+packWindow, l.PackSize)
	if l.Off+l.N > end {
		// It straddles two windows: read it alone.
		c.mu.Lock()
		c.fetches++
		c.mu.Unlock()
		return st.GetRange(ctx, snapfmt.PackKey(l.Pack), int64(l.Off), int64(l.N))
	}
	w, err := c.window(ctx, windowKey{storeName, l.Pack, start}, func() ([]byte, error) {
		return st.GetRange(ctx, snapfmt.PackKey(l.Pack), int64(start), int64(end-start))
	})
	if err != nil {
		return nil, err
	}
	return w[l.Off-start : l.Off-start+l.N], nil
}

// checkedChunk returns chunk l's stored bytes once check accepts them. A
// window that fails check with ErrCorrupt (read damaged, or damaged in
// memory since) is dropped and fetched once more before the error stands.
func (c *packCache) checkedChunk(ctx context.Context, storeName string, st snapstore.Store, l snapfmt.Loc, check func([]byte) error) ([]byte, error) {
	b, err := c.chunk(ctx, storeName, st, l)
	if err != nil {
		return nil, err
	}
	if err = check(b); err == nil || !errors.Is(err, ErrCorrupt) || !l.InPack() {
		return b, err
	}
	c.dropWindow(storeName, l)
	b, err2 := c.chunk(ctx, storeName, st, l)
	if err2 != nil {
		return nil, fmt.Errorf("%w; fetched again: %w", err, err2)
	}
	if err := check(b); err != nil {
		return nil, fmt.Errorf("fetched twice: %w", err)
	}
	return b, nil
}

// dropWindow forgets the window holding chunk l.
func (c *packCache) dropWindow(storeName string, l snapfmt.Loc) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.windows.remove(windowKey{storeName, l.Pack, l.Off / packWindow * packWindow})
}

func (c *packCache) window(ctx context.Context, k windowKey, fetch func() ([]byte, error)) ([]byte, error) {
	for {
		c.mu.Lock()
		if w, ok := c.windows.get(k); ok {
			c.mu.Unlock()
			return w, nil
		}
		ld, ok := c.loading[k]
		if !ok {
			break
		}
		c.mu.Unlock()
		select {
		case <-ld.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if ld.err == nil || !ld.ahead {
			return ld.data, ld.err
		}
	}
	ld := &windowLoad{done: make(chan struct{})}
	c.loading[k] = ld
	c.fetches++
	c.mu.Unlock()
	data, err := fetch()
	c.finishLoad(k, ld, data, err)
	return data, err
}

// finishLoad ends the fetch of window k: cached if it was read, and its
// waiters woken.
func (c *packCache) finishLoad(k windowKey, ld *windowLoad, data []byte, err error) {
	ld.data, ld.err = data, err
	c.mu.Lock()
	delete(c.loading, k)
	if err == nil {
		c.windows.put(k, data, int64(len(data)))
	}
	c.mu.Unlock()
	close(ld.done)
}

// drop forgets every window of pack p (after garbage collection deleted it).
func (c *packCache) drop(storeName string, p snapfmt.PackID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.windows.removeIf(func(k windowKey) bool { return k.store == storeName && k.pack == p })
}
