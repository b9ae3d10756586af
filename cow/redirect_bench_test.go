package cow

import (
	"crypto/rand"
	"log/slog"
	"testing"
	"time"
)

// BenchmarkSealedRedirect: a 4 KiB write that is the first to its block
// since the last sync round, on an encrypted volume: the block goes to a
// new slot (redirectSealed). The syncs between rounds are not timed.
func BenchmarkSealedRedirect(b *testing.B) {
	const size, block = 64 << 20, 64 << 10
	eng, err := Open(Options{DataDir: b.TempDir(), SyncInterval: time.Hour, Logger: slog.New(slog.DiscardHandler), Keys: testKeyring(b)})
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close()
	vi, err := eng.CreateVolume(ctx, CreateVolumeParams{Size: size, Encrypted: true})
	if err != nil {
		b.Fatal(err)
	}
	h := openHandle(b, eng, vi.ID)
	big := make([]byte, 1<<20)
	rand.Read(big)
	for off := int64(0); off < size; off += int64(len(big)) {
		if _, err := h.WriteAt(big, off); err != nil {
			b.Fatal(err)
		}
	}
	page := big[:4096]
	b.SetBytes(4096)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range int64(b.N) {
		blk := i % (size / block)
		if blk == 0 {
			b.StopTimer()
			if err := h.Sync(); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		if _, err := h.WriteAt(page, blk*block+4096); err != nil {
			b.Fatal(err)
		}
	}
}
