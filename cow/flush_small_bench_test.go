package cow

import (
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cowvol/cowvol/cow/snapstore"
)

// BenchmarkFlushSmallBlocks: the first snapshot of a 4 KiB-block volume
// written sequentially with random data (COWVOL_BENCH_MIB, default 512
// MiB), flushed to a directory store. Reported: flush MiB/s and the peak
// live heap growth during the flush. Profile with -cpuprofile/-memprofile:
//
//	go test -run '^$' -bench FlushSmallBlocks -benchtime 1x -cpuprofile cpu.out ./cow/
func BenchmarkFlushSmallBlocks(b *testing.B) {
	size := int64(512 << 20)
	if s, err := strconv.Atoi(os.Getenv("COWVOL_BENCH_MIB")); err == nil && s > 0 {
		size = int64(s) << 20
	}
	// 64 KiB, the default, in the same run for the ratio.
	for _, bs := range []int{4 << 10, 64 << 10} {
		b.Run(fmt.Sprintf("%dKiB", bs>>10), func(b *testing.B) { benchFlushBlocks(b, size, bs) })
	}
}

func benchFlushBlocks(b *testing.B, size int64, bs int) {
	st, err := snapstore.OpenDir(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	eng, err := Open(Options{DataDir: b.TempDir(), SyncInterval: time.Hour, SnapshotStore: st, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close()
	vi, err := eng.CreateVolume(ctx, CreateVolumeParams{Size: 2 * size, BlockSize: bs})
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 8<<20)
	var flush time.Duration
	var growth uint64
	var cpu time.Duration
	for range b.N {
		h := openHandle(b, eng, vi.ID)
		for off := int64(0); off < size; off += int64(len(buf)) {
			rand.Read(buf)
			if _, err := h.WriteAt(buf, off); err != nil {
				b.Fatal(err)
			}
		}
		// Synced first: the snapshot's own sync round is not the
		// flush's cost.
		if err := h.Sync(); err != nil {
			b.Fatal(err)
		}
		h.Close()
		stop := watchHeap()
		cpu0 := cpuTime()
		start := time.Now()
		s, err := eng.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID})
		if err != nil {
			b.Fatal(err)
		}
		created := time.Now()
		waitSnapshotFor(b, eng, s.ID, 30*time.Minute)
		b.Logf("CreateSnapshot %v, flush %v", created.Sub(start), time.Since(created))
		flush += time.Since(start)
		cpu += cpuTime() - cpu0
		growth = max(growth, stop())
	}
	b.ReportMetric(float64(size>>20)*float64(b.N)/flush.Seconds(), "flush-MiB/s")
	b.ReportMetric(float64(growth)/(1<<20), "heap-growth-MiB")
	// CPU seconds per GiB flushed (the whole process, collector
	// included): on a shared machine, a steadier figure than MiB/s.
	b.ReportMetric(cpu.Seconds()/(float64(size)*float64(b.N)/(1<<30)), "cpu-s/GiB")
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// watchHeap samples the live heap until the returned stop is called, which
// reports the peak over the live heap at the start.
func watchHeap() (stop func() uint64) {
	runtime.GC()
	before := heapBytes()
	var peak atomic.Uint64
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			if h := heapBytes(); h > peak.Load() {
				peak.Store(h)
				writeHeapProfile(os.Getenv("COWVOL_BENCH_HEAPPROF"))
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 {
		close(done)
		<-finished
		return peak.Load() - min(peak.Load(), before)
	}
}

// writeHeapProfile writes the heap profile to path (none if empty): the
// one written last is the profile at the peak.
func writeHeapProfile(path string) {
	if path == "" {
		return
	}
	f, err := os.Create(path)
	if err != nil {
		return
	}
	defer f.Close()
	_ = pprof.Lookup("heap").WriteTo(f, 0)
}
