package cow

import (
	"crypto/rand"
	"log/slog"
	mrand "math/rand/v2"
	"testing"
	"time"
)

// The engine's data path without FUSE: what a request costs once it has
// reached the daemon (go test -run '^$' -bench Volume ./cow/). Writes in
// place into a prefilled 256 MiB volume at the default 64 KiB blocks,
// plaintext and encrypted.
func BenchmarkVolume(b *testing.B) {
	b.Run("plaintext", func(b *testing.B) { benchmarkVolume(b, false) })
	b.Run("encrypted", func(b *testing.B) { benchmarkVolume(b, true) })
}

func benchmarkVolume(b *testing.B, encrypted bool) {
	const size = 256 << 20
	h, big := filledBenchVolume(b, size, encrypted)
	h.Sync()
	rng := mrand.New(mrand.NewPCG(1, 2))
	page := big[:4096]
	randOff := func() int64 { return rng.Int64N(size/4096) * 4096 }
	for _, bm := range []struct {
		name string
		n    int
		op   func() error
	}{
		{"write 4k random", 4096, func() error { _, err := h.WriteAt(page, randOff()); return err }},
		{"read 4k random", 4096, func() error { _, err := h.ReadAt(page, randOff()); return err }},
		{"write 1M", 1 << 20, func() error { _, err := h.WriteAt(big, randOff()&^(1<<20-1)); return err }},
		{"read 1M", 1 << 20, func() error { _, err := h.ReadAt(big, randOff()&^(1<<20-1)); return err }},
		{"write 4k + sync", 4096, func() error {
			if _, err := h.WriteAt(page, randOff()); err != nil {
				return err
			}
			return h.Sync()
		}},
	} {
		b.Run(bm.name, func(b *testing.B) {
			b.SetBytes(int64(bm.n))
			b.ReportAllocs()
			for range b.N {
				if err := bm.op(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// filledBenchVolume opens an engine (closed with the benchmark) with a
// volume of size bytes written whole with random data, and returns a
// handle on the volume and the 1 MiB of data each MiB holds.
func filledBenchVolume(b *testing.B, size int64, encrypted bool) (*Volume, []byte) {
	b.Helper()
	eng, err := Open(Options{DataDir: b.TempDir(), SyncInterval: time.Hour, Logger: slog.New(slog.DiscardHandler), Keys: testKeyring(b)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { eng.Close() })
	vi, err := eng.CreateVolume(ctx, CreateVolumeParams{Size: size, Encrypted: encrypted})
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
	return h, big
}
