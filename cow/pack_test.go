package cow

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cowvol/cowvol/cow/snapfmt"
	"github.com/cowvol/cowvol/cow/snapstore"
)

// TestPackWriterAndReader: chunks added to a pack writer come back through
// the pack cache from their locations, verified; each pack's own index
// names exactly the chunks at those locations; a sequential reader fetches
// each window once; segments round-trip with their locations.
func TestPackWriterAndReader(t *testing.T) {
	st, err := snapstore.OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pw := newPackWriter(ctx, st)
	rng := rand.New(rand.NewPCG(7, 7))
	const n = 400 // 64 KiB blocks of random data: about 3 packs
	blocks := make([][]byte, n)
	seg := snapfmt.Segment{}
	lastSeq := -1
	for i := range blocks {
		b := make([]byte, 64<<10)
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		blocks[i] = b
		id := snapfmt.ChunkID(sha256.Sum256(b))
		loc, seq, err := pw.add(id, snapfmt.EncodeChunk(nil, nil, id, b))
		if err != nil {
			t.Fatal(err)
		}
		if seq < lastSeq {
			t.Fatalf("pack sequence went back: %d after %d", seq, lastSeq)
		}
		lastSeq = seq
		seg[uint32(i)] = loc
	}
	if err := pw.finish(); err != nil {
		t.Fatal(err)
	}
	if below, _ := pw.durableBelow(); below != lastSeq+1 || pw.packs != lastSeq+1 || pw.packs < 3 {
		t.Fatalf("durable below %d, %d packs stored, last sequence %d", below, pw.packs, lastSeq)
	}
	if err := pw.fillSizes(seg); err != nil {
		t.Fatal(err)
	}
	enc, err := snapfmt.EncodeSegment(nil, seg)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := snapfmt.DecodeSegment(nil, enc)
	if err != nil || len(dec) != len(seg) {
		t.Fatalf("segment round trip: %d entries, %v", len(dec), err)
	}
	for k, l := range seg {
		if dec[k] != l {
			t.Fatalf("entry %d: %+v, want %+v", k, dec[k], l)
		}
	}

	// Each pack's trailer index agrees with the locations.
	byPack := map[snapfmt.PackID]map[uint32]snapfmt.Loc{}
	for _, l := range seg {
		if byPack[l.Pack] == nil {
			byPack[l.Pack] = map[uint32]snapfmt.Loc{}
		}
		byPack[l.Pack][l.Off] = l
	}
	for p, locs := range byPack {
		b, err := st.Get(ctx, snapfmt.PackKey(p))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasSuffix(b, snapfmt.PackMagic) || uint32(len(b)) != locs[0].PackSize {
			t.Fatalf("pack %s: %d bytes, magic %v", p, len(b), bytes.HasSuffix(b, snapfmt.PackMagic))
		}
		count := int(binary.BigEndian.Uint32(b[len(b)-len(snapfmt.PackMagic)-4:]))
		idx := b[len(b)-len(snapfmt.PackMagic)-4-count*snapfmt.PackIndexEntrySize : len(b)-len(snapfmt.PackMagic)-4]
		if count != len(locs) {
			t.Fatalf("pack %s indexes %d chunks, the segment %d", p, count, len(locs))
		}
		for i := 0; i < count; i++ {
			e := idx[i*snapfmt.PackIndexEntrySize:]
			off, ln := binary.BigEndian.Uint32(e[32:]), binary.BigEndian.Uint32(e[36:])
			l, ok := locs[off]
			if !ok || l.N != ln || !bytes.Equal(l.ID[:], e[:32]) {
				t.Fatalf("pack %s index entry %d (%d+%d) does not match the segment", p, i, off, ln)
			}
		}
	}

	// Sequential reads: one fetch per window (or per straddling chunk).
	pc := newPackCache(packCacheBytes)
	dst := make([]byte, 64<<10)
	for i := range n {
		l := dec[uint32(i)]
		b, err := pc.chunk(ctx, "test", st, l)
		if err != nil {
			t.Fatal(err)
		}
		if err := snapfmt.DecodeChunk(nil, l.ID, b, dst); err != nil || !bytes.Equal(dst, blocks[i]) {
			t.Fatalf("block %d: %v", i, err)
		}
	}
	if windows := n * (64<<10 + 64) / packWindow; pc.fetches > 2*(windows+4) {
		t.Fatalf("%d fetches for %d blocks (about %d windows)", pc.fetches, n, windows)
	}

	// A location that runs past its pack, or a corrupt chunk, is an error.
	bad := dec[0]
	bad.Off = bad.PackSize - 1
	if _, err := pc.chunk(ctx, "test", st, bad); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("location past the pack's end: %v", err)
	}
	b, _ := pc.chunk(ctx, "test", st, dec[1])
	if err := snapfmt.DecodeChunk(nil, dec[0].ID, b, dst); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a chunk under another's ID: %v", err)
	}
}

// TestPackWriterMemoryBound: with every upload stalled, the flush's
// workers together get no more than (packUploads+1) packs of chunks
// accepted: sealed packs do not pile up, one per worker, waiting for an
// upload slot.
func TestPackWriterMemoryBound(t *testing.T) {
	hs := &hookStore{Store: sharedDir(t)}
	gate := make(chan struct{})
	hs.setPut(func(key string) error { <-gate; return nil })
	wctx, cancel := context.WithCancel(ctx)
	pw := newPackWriter(wctx, hs)
	var accepted atomic.Int64
	var wg sync.WaitGroup
	const chunk = 256 << 10
	data := make([]byte, chunk)
	for w := range flushWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				id := sha256.Sum256([]byte(fmt.Sprint(w, i)))
				if _, _, err := pw.add(id, data); err != nil {
					return
				}
				accepted.Add(chunk)
			}
		}()
	}
	time.Sleep(300 * time.Millisecond) // the workers fill what they may
	got := accepted.Load()
	cancel()
	close(gate)
	wg.Wait()
	pw.abort()
	if limit := int64(packUploads+1)*packTarget + flushWorkers*chunk; got > limit {
		t.Fatalf("%d MiB of chunks accepted with every upload stalled, want at most %d MiB", got>>20, limit>>20)
	}
	t.Logf("%d MiB accepted with uploads stalled", got>>20)
}
