package cow

import "sort"

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
	free    []uint64 // reusable slots, popped from the end
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
	if n := len(a.free); n > 0 {
		s := a.free[n-1]
		a.free = a.free[:n-1]
		return s
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

// reuse makes slots from takePending available again.
func (a *slotAllocator) reuse(slots []uint64) {
	a.free = append(a.free, slots...)
	// Hand out low slots first so the data file stays compact.
	sort.Slice(a.free, func(i, j int) bool { return a.free[i] > a.free[j] })
}

// rebuild sets the allocator from the set of used slots (recovery). It
// returns the runs of unused slots below the high-water mark, which the
// caller must punch (they may hold data whose metadata was never made durable)
// before the allocator hands them out.
func (a *slotAllocator) rebuild(used []uint64) (holes [][2]uint64) {
	sort.Slice(used, func(i, j int) bool { return used[i] < used[j] })
	a.free, a.pending, a.retired, a.recycled = nil, nil, nil, nil
	var prev uint64 // first slot not yet accounted for
	for _, s := range used {
		if s < prev {
			continue // duplicate
		}
		if s > prev {
			holes = append(holes, [2]uint64{prev, s})
			for f := prev; f < s; f++ {
				a.free = append(a.free, f)
			}
		}
		prev = s + 1
	}
	a.next = prev
	sort.Slice(a.free, func(i, j int) bool { return a.free[i] > a.free[j] })
	return holes
}
