package cow

// extentMap is the in-memory live map of one volume: block number -> newest
// version. It is paged so that a sparse 64 TiB volume costs memory only for
// the regions that were written: 16 bytes per block in 8 KiB pages.
//
// extentMap is not safe for concurrent use; the volume guards it with mapMu.
type extentMap struct {
	pages map[uint64]*extentPage
	// mapped counts entries holding data (not zero entries).
	dataBlocks int64
}

const (
	pageShift = 9
	pageLen   = 1 << pageShift // entries per page
)

type extentPage struct {
	e    [pageLen]extent
	used int // entries with flagMapped
}

// extent is one block's newest version.
type extent struct {
	slot  uint64
	gen   uint32
	flags uint8
}

const (
	flagMapped uint8 = 1 << 0 // the entry exists
	flagZero   uint8 = 1 << 1 // the block reads as zeros; slot is meaningless
	// flagCaptured: a sync round has captured this mapping, so durable
	// metadata may refer to its slot (in memory only: every entry loaded
	// at start is captured). Its slot is punched only after the round that
	// drops the reference, and an encrypted volume never rewrites it.
	flagCaptured uint8 = 1 << 2
)

func (e extent) mapped() bool   { return e.flags&flagMapped != 0 }
func (e extent) zero() bool     { return e.flags&flagZero != 0 }
func (e extent) captured() bool { return e.flags&flagCaptured != 0 }

// hasData reports whether the block's data lives in a slot.
func (e extent) hasData() bool { return e.mapped() && !e.zero() }

func newExtentMap() *extentMap { return &extentMap{pages: make(map[uint64]*extentPage)} }

func (m *extentMap) get(blk uint64) extent {
	p := m.pages[blk>>pageShift]
	if p == nil {
		return extent{}
	}
	return p.e[blk&(pageLen-1)]
}

// set stores e (which must be mapped) for blk.
func (m *extentMap) set(blk uint64, e extent) {
	e.flags |= flagMapped
	p := m.pages[blk>>pageShift]
	if p == nil {
		p = new(extentPage)
		m.pages[blk>>pageShift] = p
	}
	old := &p.e[blk&(pageLen-1)]
	if !old.mapped() {
		p.used++
	}
	if old.hasData() {
		m.dataBlocks--
	}
	if e.hasData() {
		m.dataBlocks++
	}
	*old = e
}

// clear removes blk's entry.
func (m *extentMap) clear(blk uint64) {
	p := m.pages[blk>>pageShift]
	if p == nil {
		return
	}
	old := &p.e[blk&(pageLen-1)]
	if !old.mapped() {
		return
	}
	if old.hasData() {
		m.dataBlocks--
	}
	*old = extent{}
	p.used--
	if p.used == 0 {
		delete(m.pages, blk>>pageShift)
	}
}

// allMapped reports whether every block from lo to hi (exclusive) has an
// entry, a page at a time.
func (m *extentMap) allMapped(lo, hi uint64) bool {
	for lo < hi {
		p := m.pages[lo>>pageShift]
		end := min(hi, (lo>>pageShift+1)<<pageShift)
		switch {
		case p == nil:
			return false
		case lo&(pageLen-1) == 0 && end-lo == pageLen:
			if p.used != pageLen {
				return false
			}
		default:
			for b := lo; b < end; b++ {
				if !p.e[b&(pageLen-1)].mapped() {
					return false
				}
			}
		}
		lo = end
	}
	return true
}
