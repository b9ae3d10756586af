package cow

import (
	"sync/atomic"

	"github.com/cowvol/cowvol/cow/snapfmt"
)

// hydrationProgress is how far a volume's running hydration pass is: the
// segments of the snapshot it fetched of those it must visit.
type hydrationProgress struct {
	done, total atomic.Int64
}

// start begins a pass over segs (only those in only, when only is set).
func (p *hydrationProgress) start(segs []snapfmt.SegmentRef, only map[uint64]bool) {
	total := len(segs)
	if only != nil {
		total = 0
		for _, ref := range segs {
			if only[ref.Index] {
				total++
			}
		}
	}
	p.done.Store(0)
	p.total.Store(int64(total))
}

// get returns the segments done and the pass's total.
func (p *hydrationProgress) get() (done, total int64) {
	return p.done.Load(), p.total.Load()
}
