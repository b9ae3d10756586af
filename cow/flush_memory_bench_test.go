package cow

import (
	"log/slog"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"testing"
	"time"

	"github.com/cowvol/cowvol/cow/snapstore"
)

// BenchmarkFlushMemory: the heap a flush of a snapshot of millions of
// changed blocks takes on top of what the daemon held before it. The
// volume is large and sparse: made from a small snapshot, then 2^21 blocks
// (8 GiB at 4 KiB) discarded, which records a zero version of each in the
// change set without writing data. The flush plans them (a segment at a
// time) and stores segments with the blocks dropped. Reported: the peak
// live heap (as collections mark it, with GOGC at 10 so that they are
// frequent) while the flush runs, over the live heap before it. Run once
// (-benchtime 1x): each run builds its volume.
//
//	go test -run '^$' -bench FlushMemory -benchtime 1x ./cow/
func BenchmarkFlushMemory(b *testing.B) {
	const blocks = 1 << 21
	const bs = 4 << 10
	st, err := snapstore.OpenDir(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	eng, err := Open(Options{DataDir: b.TempDir(), SyncInterval: time.Hour, SnapshotStore: st, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close()
	small, err := eng.CreateVolume(ctx, CreateVolumeParams{Size: 1 << 20, BlockSize: bs})
	if err != nil {
		b.Fatal(err)
	}
	h := openHandle(b, eng, small.ID)
	if _, err := h.WriteAt(pattern(1, bs), 0); err != nil {
		b.Fatal(err)
	}
	h.Close()
	base, err := eng.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: small.ID})
	if err != nil {
		b.Fatal(err)
	}
	waitSnapshot(b, eng, base.ID)
	vi, err := eng.CreateVolume(ctx, CreateVolumeParams{SnapshotID: base.ID, Size: blocks * bs * 2})
	if err != nil {
		b.Fatal(err)
	}
	big := openHandle(b, eng, vi.ID)
	for off := int64(0); off < blocks*bs; off += 64 << 20 {
		if err := big.Punch(off, 64<<20); err != nil {
			b.Fatal(err)
		}
	}
	if err := big.Sync(); err != nil {
		b.Fatal(err)
	}
	// Frequent collections, so that the live heap is sampled often (the
	// peak of allocated heap would measure the collector's pacing).
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	runtime.GC()
	before := heapBytes()
	var peak uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			peak = max(peak, heapBytes())
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	b.ResetTimer()
	s, err := eng.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID})
	if err != nil {
		b.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Minute); ; time.Sleep(20 * time.Millisecond) {
		si, err := eng.SnapshotInfo(s.ID)
		if err != nil || si.State == SnapshotError {
			b.Fatalf("snapshot %s: %v %s", s.ID, err, si.StatusMessage)
		}
		if si.State == SnapshotCompleted {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("snapshot %s still pending", s.ID)
		}
	}
	b.StopTimer()
	close(stop)
	wg.Wait()
	b.ReportMetric(float64(peak-min(peak, before))/(1<<20), "heap-growth-MiB")
	b.ReportMetric(float64(before)/(1<<20), "heap-before-MiB")
}

// heapBytes is the live heap as the last collection marked it.
func heapBytes() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}
