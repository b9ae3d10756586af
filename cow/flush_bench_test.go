package cow

import (
	"crypto/rand"
	"log/slog"
	"testing"
	"time"

	"github.com/cowvol/cowvol/cow/snapstore"
	"github.com/cowvol/cowvol/cow/snapstore/miniotest"
)

// Flush and restore throughput of 1 GiB of random (incompressible) data
// into a directory store and into MinIO on loopback, with the requests
// counted by a wrapper of the real store:
//
//	go test -run '^$' -bench Flush -benchtime 1x ./cow/
func BenchmarkFlushDir(b *testing.B) {
	st, err := snapstore.OpenDir(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	benchFlush(b, st)
}

func BenchmarkFlushS3(b *testing.B) {
	srv := miniotest.Start(b)
	st, err := snapstore.Open(ctx, srv.URL("bench", "flush"))
	if err != nil {
		b.Fatal(err)
	}
	benchFlush(b, st)
}

func benchFlush(b *testing.B, real snapstore.Store) {
	const size = 1 << 30
	cs := &countingStore{Store: real, puts: map[string]int{}}
	eng, err := Open(Options{DataDir: b.TempDir(), SyncInterval: time.Hour, SnapshotStore: cs, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close()
	vi, _ := eng.CreateVolume(ctx, CreateVolumeParams{Size: size})
	buf := make([]byte, 8<<20)
	var flush, restore time.Duration
	puts := 0
	for range b.N {
		// Fresh data each round: every block is flushed.
		h := openHandle(b, eng, vi.ID)
		for off := 0; off < size; off += len(buf) {
			rand.Read(buf)
			if _, err := h.WriteAt(buf, int64(off)); err != nil {
				b.Fatal(err)
			}
		}
		h.Close()
		cs.take()
		start := time.Now()
		s, err := eng.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID})
		if err != nil {
			b.Fatal(err)
		}
		waitSnapshot(b, eng, s.ID)
		flush += time.Since(start)
		for k, n := range cs.take() {
			if k != "chunks in packs" {
				puts += n
			}
		}
		start = time.Now()
		rv, err := eng.CreateVolume(ctx, CreateVolumeParams{SnapshotID: s.ID})
		if err != nil {
			b.Fatal(err)
		}
		rh := openHandle(b, eng, rv.ID)
		rb := make([]byte, 128<<10)
		for off := 0; off < size; off += len(rb) {
			if _, err := rh.ReadAt(rb, int64(off)); err != nil {
				b.Fatal(err)
			}
		}
		restore += time.Since(start)
		rh.Close()
		// The restored volume would go on hydrating in the background,
		// competing with the next round's writes and flush.
		if err := eng.DeleteVolume(ctx, rv.ID); err != nil {
			b.Fatal(err)
		}
	}
	gib := float64(b.N)
	b.ReportMetric(1024*gib/flush.Seconds(), "flush-MiB/s")
	b.ReportMetric(float64(puts)/gib, "PUTs/GiB")
	b.ReportMetric(1024*gib/restore.Seconds(), "restore-read-MiB/s")
}
