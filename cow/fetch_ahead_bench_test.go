package cow

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/cowvol/cowvol/cow/snapstore"
	"github.com/cowvol/cowvol/cow/snapstore/miniotest"
)

// BenchmarkFetchAheadS3 reads a 256 MiB snapshot in MinIO sequentially
// through ReadSnapshot, with fetch-ahead off and on, alternately, each
// time through a fresh pack cache, and reports MiB/s of each:
//
//	go test -run '^$' -bench FetchAheadS3 -benchtime 1x ./cow/
func BenchmarkFetchAheadS3(b *testing.B) {
	srv := miniotest.Start(b)
	st, err := snapstore.Open(ctx, srv.URL("bench", "ahead"))
	if err != nil {
		b.Fatal(err)
	}
	benchFetchAhead(b, st)
}

// BenchmarkFetchAheadFarStore is BenchmarkFetchAheadS3 against a
// directory store whose ranged reads each take 20 ms more (a bucket
// across a network, which loopback MinIO is not):
//
//	go test -run '^$' -bench FetchAheadFarStore -benchtime 1x ./cow/
func BenchmarkFetchAheadFarStore(b *testing.B) {
	st, err := snapstore.OpenDir(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	benchFetchAhead(b, farStore{st, 20 * time.Millisecond})
}

// BenchmarkFetchAheadDir is the same against a plain directory store (a
// restore from the local store).
func BenchmarkFetchAheadDir(b *testing.B) {
	st, err := snapstore.OpenDir(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	benchFetchAhead(b, st)
}

// farStore adds a delay to every ranged read of its store.
type farStore struct {
	snapstore.Store
	delay time.Duration
}

func (f farStore) GetRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	time.Sleep(f.delay)
	return f.Store.GetRange(ctx, key, off, n)
}

func benchFetchAhead(b *testing.B, st snapstore.Store) {
	const size = 256 << 20
	eng, err := Open(Options{DataDir: b.TempDir(), SyncInterval: time.Hour, SnapshotStore: st, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close()
	vi, _ := eng.CreateVolume(ctx, CreateVolumeParams{Size: size})
	buf := make([]byte, 8<<20)
	h := openHandle(b, eng, vi.ID)
	for off := 0; off < size; off += len(buf) {
		rand.Read(buf)
		if _, err := h.WriteAt(buf, int64(off)); err != nil {
			b.Fatal(err)
		}
	}
	h.Close()
	s, err := eng.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID})
	if err != nil {
		b.Fatal(err)
	}
	waitSnapshot(b, eng, s.ID)
	rb := make([]byte, 1<<20)
	for round := range 2 * b.N {
		for _, ahead := range []bool{false, true} {
			eng.reader.packs = newPackCache(packCacheBytes)
			eng.reader.ahead.stop()
			eng.reader.ahead = newFetchAhead(eng.reader)
			if !ahead {
				eng.reader.ahead.stop()
			}
			start := time.Now()
			for off := int64(0); off < size; off += int64(len(rb)) {
				if _, err := eng.ReadSnapshot(ctx, s.ID, rb, off); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(size>>20)/time.Since(start).Seconds(), fmt.Sprintf("MiB/s-ahead=%v-round%d", ahead, round))
		}
	}
}
