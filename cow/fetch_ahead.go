package cow

import (
	"context"
	"sync"

	"github.com/cowvol/cowvol/cow/snapfmt"
	"github.com/cowvol/cowvol/cow/snapstore"
)

// Fetch-ahead: a reader of stored blocks that goes in block order (the
// first sequential read of a restored volume, the background hydrator)
// would otherwise wait for one ranged GET at a time, one pack window after
// the other, and see a fraction of what the bucket can give. The snapshot
// reader watches the order of the blocks it is asked for, per manifest,
// in a few streams; once a stream reads in order it fetches the pack
// windows of the next fetchAheadBytes of blocks in parallel, into the pack
// cache, with at most fetchAheadFetches ranged GETs in flight over all
// streams. Memory stays bounded: the fetched windows are the pack cache's
// (packCacheBytes, which holds two streams' worth), and the in-flight
// fetches add at most fetchAheadFetches × packWindow.
const (
	fetchAheadBytes   = 24 << 20
	fetchAheadFetches = 4
	fetchAheadStreams = 8
	// streamSlack: a read within this many blocks of a stream's next
	// block continues it (concurrent reads of one file arrive a little
	// out of order).
	streamSlack = 64
)

// readStream is one reader's position in a manifest.
type readStream struct {
	store, key string
	next       uint64 // one past the highest block read
	ahead      uint64 // blocks below this have their windows fetched or in flight
	inOrder    int    // reads in a row that continued the stream
	used       uint64 // fetchAhead.tick at the last read
}

// fetchAhead starts the fetches ahead of sequential streams. It owns the
// fetch goroutines: stop cancels and waits for them.
type fetchAhead struct {
	rd     *snapshotReader
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	slots  chan struct{} // one token per fetch in flight
	walk   sync.Mutex    // one walk ahead at a time; others skip theirs
	// beforeFetch, when set (tests), runs in each fetch goroutine before
	// its GET: an injection point to hold fetches in flight.
	beforeFetch func(windowKey)

	// mu guards the fields that follow.
	mu      sync.Mutex
	streams []readStream
	tick    uint64
	stopped bool
	started int // fetches started (for tests and logs)
}

func newFetchAhead(rd *snapshotReader) *fetchAhead {
	ctx, cancel := context.WithCancel(context.Background())
	return &fetchAhead{rd: rd, ctx: ctx, cancel: cancel, slots: make(chan struct{}, fetchAheadFetches)}
}

// stop cancels the fetches in flight, waits for them and starts no more.
func (fa *fetchAhead) stop() {
	fa.mu.Lock()
	fa.stopped = true
	fa.mu.Unlock()
	fa.cancel()
	fa.wg.Wait()
}

// note records that block blk of the manifest under key in store st
// (named storeName), of blockSize-byte blocks, was just read, and fetches
// ahead when that continues a stream read in order.
func (fa *fetchAhead) note(storeName string, st snapstore.Store, key string, blk uint64, blockSize int) {
	from, to, ok := fa.advance(storeName, key, blk, uint64(fetchAheadBytes/max(blockSize, 1)))
	if !ok || !fa.walk.TryLock() {
		return
	}
	defer fa.walk.Unlock()
	reached := fa.walkAhead(storeName, st, key, from, to)
	fa.mu.Lock()
	for i := range fa.streams {
		if s := &fa.streams[i]; s.store == storeName && s.key == key && s.ahead < reached && s.next <= to {
			s.ahead = reached
		}
	}
	fa.mu.Unlock()
}

// advance moves blk's stream (or starts one) and returns the blocks to
// fetch ahead of it, from to to, if it reads in order.
func (fa *fetchAhead) advance(storeName, key string, blk, aheadBlocks uint64) (from, to uint64, ok bool) {
	fa.mu.Lock()
	defer fa.mu.Unlock()
	fa.tick++
	s := fa.stream(storeName, key, blk)
	if s == nil {
		fa.replaceOldest(readStream{store: storeName, key: key, next: blk + 1, ahead: blk + 1, used: fa.tick})
		return 0, 0, false
	}
	s.next, s.used = max(s.next, blk+1), fa.tick
	s.inOrder++
	if s.inOrder < 2 || fa.stopped {
		return 0, 0, false
	}
	from, to = max(s.ahead, s.next), s.next+aheadBlocks
	return from, to, from < to
}

// stream finds the stream that a read of blk continues. fa.mu is held.
func (fa *fetchAhead) stream(storeName, key string, blk uint64) *readStream {
	for i := range fa.streams {
		s := &fa.streams[i]
		if s.store == storeName && s.key == key && blk+streamSlack >= s.next && blk <= s.next+streamSlack {
			return s
		}
	}
	return nil
}

// replaceOldest adds s, in place of the least recently used stream when
// there are fetchAheadStreams. fa.mu is held.
func (fa *fetchAhead) replaceOldest(s readStream) {
	if len(fa.streams) < fetchAheadStreams {
		fa.streams = append(fa.streams, s)
		return
	}
	oldest := 0
	for i := range fa.streams {
		if fa.streams[i].used < fa.streams[oldest].used {
			oldest = i
		}
	}
	fa.streams[oldest] = s
}

// walkAhead starts the fetches of the windows holding blocks from to to
// and returns the first block whose window it could not start (every
// fetch slot taken), or to.
func (fa *fetchAhead) walkAhead(storeName string, st snapstore.Store, key string, from, to uint64) uint64 {
	var last windowKey
	for b := from; b < to; b++ {
		loc, _, ok, err := fa.rd.lookupChunk(fa.ctx, st, key, b)
		if err != nil {
			return b // past the end, or unreadable: the read itself will say
		}
		if !ok || !loc.InPack() || loc.PackSize == 0 || loc.Off+loc.N > loc.PackSize {
			continue
		}
		k := windowKey{storeName, loc.Pack, loc.Off / packWindow * packWindow}
		if k == last {
			continue
		}
		last = k
		if !fa.start(st, k, loc.PackSize) {
			return b
		}
	}
	return to
}

// start fetches window k of a packSize-byte pack into the pack cache in
// the background, unless it is cached or being fetched; false when every
// fetch slot is taken.
func (fa *fetchAhead) start(st snapstore.Store, k windowKey, packSize uint32) bool {
	c := fa.rd.packs
	c.mu.Lock()
	if _, ok := c.windows.get(k); ok || c.loading[k] != nil {
		c.mu.Unlock()
		return true
	}
	select {
	case fa.slots <- struct{}{}:
	default:
		c.mu.Unlock()
		return false
	}
	fa.mu.Lock()
	if fa.stopped {
		fa.mu.Unlock()
		c.mu.Unlock()
		<-fa.slots
		return false
	}
	fa.started++
	fa.wg.Add(1)
	fa.mu.Unlock()
	ld := &windowLoad{done: make(chan struct{}), ahead: true}
	c.loading[k] = ld
	c.fetches++
	c.mu.Unlock()
	go func() {
		defer fa.wg.Done()
		defer func() { <-fa.slots }()
		if fa.beforeFetch != nil {
			fa.beforeFetch(k)
		}
		end := min(k.start+packWindow, packSize)
		data, err := st.GetRange(fa.ctx, snapfmt.PackKey(k.pack), int64(k.start), int64(end-k.start))
		c.finishLoad(k, ld, data, err)
	}()
	return true
}
