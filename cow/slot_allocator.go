package cow

// slotAllocator hands out block-sized slots of a volume's data file.
//
// Invariant: every slot on the free list reads as zeros (its range in the data
// file is a hole) and no durable metadata refers to it. A freed slot therefore
// goes first to the pending list; it becomes reusable only after the metadata
// change that freed it, and the hole punched in its place, are durable
// (release). Otherwise a crash could leave durable metadata pointing a block at
// a slot that already holds another block's data.
//
// slotAllocator is not safe for concurrent use; the volume guards it with mapMu.
type slotAllocator struct {
	next    uint64   // slots >= next have never been used
	free    []uint64 // reusable slots, a min-heap (reuse, popFree)
	pending []uint64 // freed, awaiting durability
	// retired slots are no longer mapped, but durable metadata still
	// refers to them: they are punched and freed only once the sync round
	// that drops that reference has made it durable (a crash before would
	// find the durable mapping pointing at a hole).
	retired []uint64
	// recycled slots are retired ones that are not punched: an encrypted
	// volume's redirects leave one behind per block and round, and every
	// later use of a slot there writes it whole, so the hole (an extent
	// change that makes the next fdatasync commit the file system's
	// journal) would buy nothing.
	recycled []uint64

	// floor is the data file's length in slots when the engine opened:
	// while the volume's map loads (map_loader.go), not every slot below
	// it that durable records refer to is known yet, so nothing below it
	// is free and new slots come from floor up (every durable record names
	// a slot below floor: meta/slots_end.go).
	floor uint64
}

// startLoad sets up a volume whose map is about to load: nothing is free,
// new slots come from floor up. (A slot below floor that the volume frees
// meanwhile was named by a record the load reads, which sees the records
// as they were before the engine served: it is never taken for unused.)
func (a *slotAllocator) startLoad(floor uint64) {
	a.floor, a.next = floor, floor
}

// endLoad ends the load: holes, slots below floor that the load found
// nothing refers to (punched), become free.
func (a *slotAllocator) endLoad(holes [][2]uint64) {
	var free []uint64
	for _, h := range holes {
		for s := h[0]; s < h[1]; s++ {
			free = append(free, s)
		}
	}
	a.reuse(free)
}

// listed calls fn for every slot the allocator holds on a list: free or
// waiting for a round.
func (a *slotAllocator) listed(fn func(uint64)) {
	for _, l := range [][]uint64{a.free, a.pending, a.retired, a.recycled} {
		for _, s := range l {
			fn(s)
		}
	}
}

// retire queues a slot that durable metadata still refers to; see retired.
// punch: whether its space goes back to the file system.
func (a *slotAllocator) retire(s uint64, punch bool) {
	if punch {
		a.retired = append(a.retired, s)
	} else {
		a.recycled = append(a.recycled, s)
	}
}

// takeRetired detaches the retired and recycled lists: the caller frees the
// slots once the changes captured with them are durable.
func (a *slotAllocator) takeRetired() (retired, recycled []uint64) {
	retired, recycled = a.retired, a.recycled
	a.retired, a.recycled = nil, nil
	return retired, recycled
}

// waiting counts the slots waiting on a sync round.
func (a *slotAllocator) waiting() int { return len(a.pending) + len(a.retired) + len(a.recycled) }

// alloc returns a slot that reads as zeros.
func (a *slotAllocator) alloc() uint64 {
	if len(a.free) > 0 {
		return a.popFree()
	}
	s := a.next
	a.next++
	return s
}

// release frees a slot whose hole is punched. It is reusable after the
// next durable sync.
func (a *slotAllocator) release(s uint64) { a.pending = append(a.pending, s) }

// takePending detaches the pending list: the caller makes it durable and
// then hands the slots back with reuse.
func (a *slotAllocator) takePending() []uint64 {
	p := a.pending
	a.pending = nil
	return p
}

// reuse makes slots from takePending available again. The free list is a
// min-heap, so that low slots go first and the data file stays compact: a
// round hands back a few slots into a list that may hold hundreds of
// thousands, and pushing them costs O(log n) each (re-sorting the whole
// list every round was most of an encrypted volume's CPU at fsync QD1).
func (a *slotAllocator) reuse(slots []uint64) {
	for _, s := range slots {
		a.free = append(a.free, s)
		siftUp(a.free, len(a.free)-1)
	}
}

// popFree takes the lowest free slot; the list is not empty.
func (a *slotAllocator) popFree() uint64 {
	h := a.free
	s := h[0]
	last := len(h) - 1
	h[0] = h[last]
	a.free = h[:last]
	siftDown(a.free, 0)
	return s
}

func siftUp(h []uint64, i int) {
	for i > 0 {
		parent := (i - 1) / 2
		if h[parent] <= h[i] {
			return
		}
		h[parent], h[i] = h[i], h[parent]
		i = parent
	}
}

func siftDown(h []uint64, i int) {
	for {
		low, l, r := i, 2*i+1, 2*i+2
		if l < len(h) && h[l] < h[low] {
			low = l
		}
		if r < len(h) && h[r] < h[low] {
			low = r
		}
		if low == i {
			return
		}
		h[i], h[low] = h[low], h[i]
		i = low
	}
}
