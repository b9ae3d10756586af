package cow

import "sync"

// blockLocks serialises access to individual blocks with a fixed array of
// striped reader/writer locks: readers and in-place writers of a block share
// its stripe, a writer that moves the block to a new slot (or frees it) holds
// it alone. Different blocks rarely share a stripe, so I/O to different
// blocks runs in parallel.
type blockLocks struct {
	stripes [1024]sync.RWMutex
}

func (l *blockLocks) of(blk uint64) *sync.RWMutex { return &l.stripes[blk%uint64(len(l.stripes))] }
