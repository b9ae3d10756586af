package cow

import (
	"bytes"
	"context"
	"fmt"
	"sync"

	"github.com/cowvol/cowvol/cow/snapfmt"
	"github.com/cowvol/cowvol/cow/snapstore"
)

// Pack tuning.
const (
	// packTarget: a pack is finished and stored once it holds this much.
	packTarget = 8 << 20
	// packUploads bounds the finished packs being stored at once; a pack
	// takes its slot when it opens (see add), so with the open one a
	// flush holds at most (packUploads+1) × packTarget of pack data.
	packUploads = 4
)

// packWriter batches a flush's chunks into packs and stores them in the
// background. It owns its upload goroutines: finish (or abort) waits for
// them.
type packWriter struct {
	ctx context.Context
	st  snapstore.Store
	sem chan struct{} // one token per pack being stored
	wg  sync.WaitGroup

	// mu guards the fields that follow.
	mu       sync.Mutex
	cur      *openPack
	seq      int          // sequence number of cur (or of the next pack)
	done     map[int]bool // stored packs not yet below durable
	durable  int          // every pack with a lower sequence number is stored
	firstErr error
	sizes    map[snapfmt.PackID]uint32 // finished packs
	packs    int                       // packs stored
	bytes    int64                     // pack bytes stored
}

// openPack is a pack being filled: its layout built into buf.
type openPack struct {
	id  snapfmt.PackID
	buf *bytes.Buffer
	b   *snapfmt.PackBuilder
}

func newPackWriter(ctx context.Context, st snapstore.Store) *packWriter {
	return &packWriter{ctx: ctx, st: st, sem: make(chan struct{}, packUploads+1), done: map[int]bool{}, sizes: map[snapfmt.PackID]uint32{}}
}

// add appends a compressed chunk and returns where it will be and the
// sequence number of its pack: the chunk is durable once durableBelow()
// exceeds it. A full pack is finished and stored in the background; add
// blocks while packUploads packs are being stored (bounded memory).
func (w *packWriter) add(id snapfmt.ChunkID, data []byte) (snapfmt.Loc, int, error) {
	w.mu.Lock()
	if err := w.firstErr; err != nil {
		w.mu.Unlock()
		return snapfmt.Loc{}, 0, err
	}
	if w.cur == nil {
		// A pack takes its token when it opens and returns it once
		// stored, so that finished packs waiting for an upload slot
		// cannot pile up (one per worker): with the open one, at most
		// packUploads+1 packs are in memory. Uploads return tokens
		// without w.mu.
		select {
		case w.sem <- struct{}{}:
		case <-w.ctx.Done():
			err := w.ctx.Err()
			w.firstErr = cmpErr(w.firstErr, err)
			w.mu.Unlock()
			return snapfmt.Loc{}, 0, err
		}
		id, err := snapfmt.NewPackID()
		if err != nil {
			<-w.sem
			w.mu.Unlock()
			return snapfmt.Loc{}, 0, err
		}
		buf := bytes.NewBuffer(getPackBuffer())
		w.cur = &openPack{id: id, buf: buf, b: snapfmt.NewPackBuilder(buf)}
	}
	p := w.cur
	off, n, err := p.b.Add(id, data) // writes to a bytes.Buffer: fails only past 4 GiB
	if err != nil {
		w.mu.Unlock()
		return snapfmt.Loc{}, 0, err
	}
	loc := snapfmt.Loc{ID: id, Pack: p.id, Off: off, N: n}
	seq := w.seq
	var full *openPack
	if p.b.Len() >= packTarget {
		full, w.cur = p, nil
		w.seq++
	}
	w.mu.Unlock()
	if full != nil {
		if err := w.store(full, seq); err != nil {
			return snapfmt.Loc{}, 0, err
		}
	}
	// The location's pack size is filled in when the pack is finished
	// (fillSizes).
	return loc, seq, nil
}

// packBuffers recycles pack buffers between packs and flushes: without it
// a flush allocates (and the collector reclaims) its whole size in
// buffers, which doubles the heap the daemon needs.
var packBuffers sync.Pool

const packBufferCap = packTarget + MaxBlockSize + 1024 + snapfmt.PackIndexEntrySize*(packTarget/512)

func getPackBuffer() []byte {
	if b, ok := packBuffers.Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return make([]byte, 0, packBufferCap)
}

func putPackBuffer(b []byte) {
	if cap(b) == packBufferCap {
		b = b[:0]
		packBuffers.Put(&b)
	}
}

// store finishes p and stores it in the background (p holds a token).
func (w *packWriter) store(p *openPack, seq int) error {
	if _, err := p.b.Finish(); err != nil {
		<-w.sem
		w.fail(fmt.Errorf("pack %s: %w", p.id, err))
		return err
	}
	data := p.buf.Bytes()
	w.mu.Lock()
	w.sizes[p.id] = uint32(len(data))
	w.mu.Unlock()
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		err := w.st.Put(w.ctx, snapfmt.PackKey(p.id), data)
		size := len(data)
		putPackBuffer(data) // a store keeps nothing of data once Put returns
		<-w.sem             // before w.mu: add waits for a token holding it
		if err != nil {
			w.fail(fmt.Errorf("store pack %s: %w", p.id, err))
			return
		}
		w.mu.Lock()
		w.done[seq] = true
		for w.done[w.durable] {
			delete(w.done, w.durable)
			w.durable++
		}
		w.packs++
		w.bytes += int64(size)
		w.mu.Unlock()
	}()
	return nil
}

func (w *packWriter) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.firstErr == nil {
		w.firstErr = err
	}
}

// durableBelow returns n: every pack with a sequence number below n is stored.
func (w *packWriter) durableBelow() (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.durable, w.firstErr
}

// finish stores the open pack too, waits until every pack is stored and returns
// the first error.
func (w *packWriter) finish() error {
	w.mu.Lock()
	p, seq := w.cur, w.seq
	w.cur = nil
	if p != nil {
		w.seq++
	}
	err := w.firstErr
	w.mu.Unlock()
	if p != nil && err == nil {
		w.store(p, seq)
	}
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.firstErr
}

// abort waits for the uploads in flight (the caller cancelled ctx or gives
// up); what they stored is unreferenced: discard deletes it.
func (w *packWriter) abort() { w.wg.Wait() }

// discard deletes every pack the writer sent to its store, stored or not
// (a put that failed may have landed), after waiting for the uploads in
// flight, and returns how many deletions succeeded. It goes on past a
// failed deletion and returns the first error.
//
// Only for a flush attempt that failed before it sent its manifest: then
// nothing names these packs. Their IDs are random and new to this writer,
// and chunks the flush found in its base (or stored earlier in the attempt)
// are referenced where they are, never stored again.
func (w *packWriter) discard(ctx context.Context) (int, error) {
	w.wg.Wait()
	w.mu.Lock()
	ids := make([]snapfmt.PackID, 0, len(w.sizes))
	for id := range w.sizes { // every pack store() sent
		ids = append(ids, id)
	}
	w.mu.Unlock()
	n := 0
	var first error
	for _, id := range ids {
		if err := w.st.Delete(ctx, snapfmt.PackKey(id)); err != nil {
			first = cmpErr(first, err)
			continue
		}
		n++
	}
	return n, first
}

// fillSizes sets the pack size of seg's locations that lack it (chunks
// added by this writer). Every pack seg names must be finished.
func (w *packWriter) fillSizes(seg snapfmt.Segment) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for off, l := range seg {
		if !l.InPack() || l.PackSize != 0 {
			continue
		}
		size, ok := w.sizes[l.Pack]
		if !ok {
			return fmt.Errorf("pack %s of block %d is not finished", l.Pack, off)
		}
		l.PackSize = size
		seg[off] = l
	}
	return nil
}
