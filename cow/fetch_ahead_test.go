package cow

import (
	"bytes"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
)

// readSnapshotRange reads n bytes at off of snapshot id through ReadSnapshot.
func readSnapshotRange(t *testing.T, eng *Engine, id string, off, n int64) []byte {
	t.Helper()
	p := make([]byte, n)
	if got, err := eng.ReadSnapshot(ctx, id, p, off); err != nil && err != io.EOF || int64(got) != n {
		t.Errorf("read %d at %d: %d bytes, %v", n, off, got, err)
	}
	return p
}

// TestFetchAheadReadsRightBytes: sequential readers (which fetch ahead)
// and random readers at once, through a pack cache smaller than what the
// streams fetch ahead, all read the snapshot's bytes; the sequential
// readers did fetch ahead.
func TestFetchAheadReadsRightBytes(t *testing.T) {
	const size = 48 << 20
	env := newFaultEnv(t, size)
	env.eng.reader.packs = newPackCache(16 << 20) // evictions while streams fetch ahead
	var wg sync.WaitGroup
	for r := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(r), 7))
			for i := 0; i < 200; i++ {
				off, n := int64(0), int64(1<<20)
				if r >= 2 { // random reader: any offset, any length
					off, n = rng.Int64N(size-1), 1+rng.Int64N(300<<10)
					n = min(n, size-off)
				} else { // sequential reader, twice over the snapshot
					off = int64(i) * n % size
				}
				if got := readSnapshotRange(t, env.eng, env.snap, off, n); !bytes.Equal(got, env.data[off:off+n]) {
					t.Errorf("reader %d: bytes at %d+%d differ from what was written", r, off, n)
					return
				}
			}
		}()
	}
	wg.Wait()
	fa := env.eng.reader.ahead
	fa.mu.Lock()
	defer fa.mu.Unlock()
	if fa.started == 0 {
		t.Fatal("sequential readers fetched nothing ahead")
	}
}

// TestFetchAheadBoundsFetchesInFlight: with every fetch ahead held at the
// injection point, a sequential reader has exactly fetchAheadFetches of
// them in flight, no more; a random read elsewhere is not held behind
// them; once released, the sequential read completes with the right bytes.
func TestFetchAheadBoundsFetchesInFlight(t *testing.T) {
	const size = 48 << 20
	env := newFaultEnv(t, size)
	env.eng.reader.packs = newPackCache(packCacheBytes) // nothing cached
	fa := env.eng.reader.ahead
	var inFlight, peak atomic.Int32
	release := make(chan struct{})
	fa.beforeFetch = func(windowKey) {
		n := inFlight.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		<-release
		inFlight.Add(-1)
	}
	// Two blocks in order start the stream (each read in its own call).
	for blk := int64(0); blk < 2; blk++ {
		readSnapshotRange(t, env.eng, env.snap, blk*faultBlock, faultBlock)
	}
	done := make(chan []byte)
	go func() { done <- readSnapshotRange(t, env.eng, env.snap, 2*faultBlock, size-2*faultBlock) }()
	waitUntil(t, "fetches ahead in flight", func() bool { return inFlight.Load() == fetchAheadFetches })
	// A random read far ahead is served by its own fetch meanwhile.
	far := int64(size - 3*faultBlock)
	if got := readSnapshotRange(t, env.eng, env.snap, far, 1000); !bytes.Equal(got, env.data[far:far+1000]) {
		t.Error("a random read during held fetches ahead read wrong bytes")
	}
	if n := inFlight.Load(); n != fetchAheadFetches {
		t.Errorf("%d fetches ahead in flight, want %d", n, fetchAheadFetches)
	}
	close(release)
	if got := <-done; !bytes.Equal(got, env.data[2*faultBlock:]) {
		t.Error("the sequential read read wrong bytes")
	}
	if p := peak.Load(); p > fetchAheadFetches {
		t.Errorf("%d fetches ahead were in flight at once, bound %d", p, fetchAheadFetches)
	}
	fa.stop()
	fa.mu.Lock()
	started := fa.started
	fa.mu.Unlock()
	readSnapshotRange(t, env.eng, env.snap, 0, size) // in order again, after stop
	fa.mu.Lock()
	defer fa.mu.Unlock()
	if fa.started != started {
		t.Errorf("%d fetches ahead started after stop", fa.started-started)
	}
}
