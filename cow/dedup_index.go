package cow

import (
	"sync"

	"github.com/cowvol/cowvol/cow/snapfmt"
)

// dedupIndex finds the chunks a flush stored already (or its base holds),
// so that each content is stored once; concurrent stores of one content
// wait for the first. Entries are values (about 100 bytes per distinct
// chunk); only the stores in flight, at most one per worker, have a
// channel.
type dedupIndex struct {
	// mu guards the fields that follow.
	mu       sync.Mutex
	m        map[snapfmt.ChunkID]dedupEntry
	inFlight map[snapfmt.ChunkID]*dedupWait
}

type dedupEntry struct {
	loc snapfmt.Loc
	seq int // pack sequence number in this flush; -1: stored before it
}

// dedupWait is a store in flight: done is closed once entry or err is set.
type dedupWait struct {
	done  chan struct{}
	entry dedupEntry
	err   error
}

func newDedupIndex() *dedupIndex {
	return &dedupIndex{m: map[snapfmt.ChunkID]dedupEntry{}, inFlight: map[snapfmt.ChunkID]*dedupWait{}}
}

// addBase records the chunks of a base segment (stored before the flush).
func (d *dedupIndex) addBase(seg snapfmt.Segment) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, l := range seg {
		if _, ok := d.m[l.ID]; !ok {
			d.m[l.ID] = dedupEntry{loc: l, seq: -1}
		}
	}
}

// store returns where chunk id is, calling put to store it if no one has.
func (d *dedupIndex) store(id snapfmt.ChunkID, put func(snapfmt.ChunkID) (snapfmt.Loc, int, error)) (snapfmt.Loc, int, error) {
	d.mu.Lock()
	if e, ok := d.m[id]; ok {
		d.mu.Unlock()
		return e.loc, e.seq, nil
	}
	if w, ok := d.inFlight[id]; ok {
		d.mu.Unlock()
		<-w.done
		return w.entry.loc, w.entry.seq, w.err
	}
	w := &dedupWait{done: make(chan struct{})}
	d.inFlight[id] = w
	d.mu.Unlock()
	loc, seq, err := put(id)
	d.mu.Lock()
	w.entry, w.err = dedupEntry{loc: loc, seq: seq}, err
	if err == nil {
		d.m[id] = w.entry
	}
	delete(d.inFlight, id)
	d.mu.Unlock()
	close(w.done)
	return loc, seq, err
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}
