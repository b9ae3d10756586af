package cow

import (
	"testing"
)

// BenchmarkSealedRedirect: a 4 KiB write that is the first to its block
// since the last sync round, on an encrypted volume: the block goes to a
// new slot (redirectSealed). The syncs between rounds are not timed.
func BenchmarkSealedRedirect(b *testing.B) {
	const size, block = 64 << 20, 64 << 10
	h, big := filledBenchVolume(b, size, true)
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
