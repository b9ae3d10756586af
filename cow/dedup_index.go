package cow

import (
	"sync"

	"github.com/cowvol/cowvol/cow/snapfmt"
)

// dedupGeneration is how many chunks one generation of a dedup index
// holds, a segment's worth; an index holds at most two generations, about
// 2 × 2^16 entries of 64 bytes (some 20 MiB with the maps' slack) however
// large the flush. (A
// first snapshot of 6 GiB written at 4 KiB blocks has 1.57 million
// chunks: an index of all of them took some 250 MiB with its map's
// growth, above the daemon's default memory limit, and the collector then
// ran without pause.)
const dedupGeneration = 1 << snapfmt.SegmentShift

// dedupIndex finds the chunks a flush stored already (or its base holds),
// so that each content is stored once; concurrent stores of one content
// wait for the first. Its memory is bounded: it remembers the chunks of
// the last two generations of dedupGeneration entries (newest first, a
// hit moves an entry to the newest), a few segments' worth, which is where
// duplicates mostly are (a block rewritten with what it held, copies of a
// file nearby); a content seen longer ago is stored again, which costs
// space, never correctness. Entries are values; only the stores in flight,
// at most one per worker, have a channel.
type dedupIndex struct {
	// mu guards the fields that follow.
	mu       sync.Mutex
	cur, old map[snapfmt.ChunkID]dedupEntry
	inFlight map[snapfmt.ChunkID]*dedupWait
	limit    int // entries per generation
}

// dedupEntry is where a chunk is: its Loc without the ID (the map's key).
type dedupEntry struct {
	pack     snapfmt.PackID
	packSize uint32
	off, n   uint32
	seq      int32 // pack sequence number in this flush; -1: stored before it
}

func newDedupEntry(l snapfmt.Loc, seq int) dedupEntry {
	return dedupEntry{pack: l.Pack, packSize: l.PackSize, off: l.Off, n: l.N, seq: int32(seq)}
}

func (e dedupEntry) loc(id snapfmt.ChunkID) (snapfmt.Loc, int) {
	return snapfmt.Loc{ID: id, Pack: e.pack, PackSize: e.packSize, Off: e.off, N: e.n}, int(e.seq)
}

// dedupWait is a store in flight: done is closed once entry or err is set.
type dedupWait struct {
	done  chan struct{}
	entry dedupEntry
	err   error
}

func newDedupIndex() *dedupIndex {
	return newDedupIndexLimit(dedupGeneration)
}

func newDedupIndexLimit(limit int) *dedupIndex {
	return &dedupIndex{cur: map[snapfmt.ChunkID]dedupEntry{}, inFlight: map[snapfmt.ChunkID]*dedupWait{}, limit: limit}
}

// addBase records the chunks of a base segment (stored before the flush).
func (d *dedupIndex) addBase(seg snapfmt.Segment) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, l := range seg {
		if _, ok := d.getLocked(l.ID); !ok {
			d.putLocked(l.ID, newDedupEntry(l, -1))
		}
	}
}

// getLocked finds id, moving an entry of the old generation to the new.
func (d *dedupIndex) getLocked(id snapfmt.ChunkID) (dedupEntry, bool) {
	if e, ok := d.cur[id]; ok {
		return e, true
	}
	e, ok := d.old[id]
	if ok {
		delete(d.old, id)
		d.putLocked(id, e)
	}
	return e, ok
}

// putLocked records id in the newest generation, starting a new one (and
// forgetting the oldest) when it is full.
func (d *dedupIndex) putLocked(id snapfmt.ChunkID, e dedupEntry) {
	if len(d.cur) >= d.limit {
		d.old, d.cur = d.cur, make(map[snapfmt.ChunkID]dedupEntry, d.limit)
	}
	d.cur[id] = e
}

// store returns where chunk id is, calling put to store it if no one has.
func (d *dedupIndex) store(id snapfmt.ChunkID, put func(snapfmt.ChunkID) (snapfmt.Loc, int, error)) (snapfmt.Loc, int, error) {
	d.mu.Lock()
	if e, ok := d.getLocked(id); ok {
		d.mu.Unlock()
		loc, seq := e.loc(id)
		return loc, seq, nil
	}
	if w, ok := d.inFlight[id]; ok {
		d.mu.Unlock()
		<-w.done
		loc, seq := w.entry.loc(id)
		return loc, seq, w.err
	}
	w := &dedupWait{done: make(chan struct{})}
	d.inFlight[id] = w
	d.mu.Unlock()
	loc, seq, err := put(id)
	d.mu.Lock()
	w.entry, w.err = newDedupEntry(loc, seq), err
	if err == nil {
		d.putLocked(id, w.entry)
	}
	delete(d.inFlight, id)
	d.mu.Unlock()
	close(w.done)
	return loc, seq, err
}

// len is the number of chunks the index remembers.
func (d *dedupIndex) len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.cur) + len(d.old)
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}
