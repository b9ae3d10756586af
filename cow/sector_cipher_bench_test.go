package cow

import (
	"crypto/rand"
	"encoding/binary"
	"testing"

	"github.com/cowvol/cowvol/cow/snapfmt"
)

// BenchmarkSectorCipher is the ceiling of an encrypted volume on this CPU:
// AES-256-GCM sealing and opening one 4 KiB sector at a time, on one core,
// with the nonce and additional data as the volume passes them
// (go test -run '^$' -bench SectorCipher -cpu 1 ./cow/).
func BenchmarkSectorCipher(b *testing.B) {
	key := make([]byte, 32)
	rand.Read(key)
	aead, err := snapfmt.NewAEAD(key)
	if err != nil {
		b.Fatal(err)
	}
	plain := make([]byte, sealSector)
	rand.Read(plain)
	out := make([]byte, 0, sealSector+16)
	var nonce [12]byte
	var aad [8]byte
	b.Run("seal", func(b *testing.B) {
		b.SetBytes(sealSector)
		for i := range b.N {
			binary.BigEndian.PutUint64(nonce[:8], uint64(i))
			binary.BigEndian.PutUint64(aad[:], uint64(i))
			aead.Seal(out[:0], nonce[:], plain, aad[:])
		}
	})
	sealed := aead.Seal(nil, nonce[:], plain, aad[:])
	b.Run("open", func(b *testing.B) {
		b.SetBytes(sealSector)
		for range b.N {
			if _, err := aead.Open(out[:0], nonce[:], sealed, aad[:]); err != nil {
				b.Fatal(err)
			}
		}
	})
	// One call over a whole 64 KiB block, which the format does not do:
	// what the per-sector set-up (nonce, tag, length block) costs.
	block := make([]byte, 64<<10)
	rand.Read(block)
	sealedBlock := aead.Seal(nil, nonce[:], block, aad[:])
	b.Run("open 64k in one call", func(b *testing.B) {
		b.SetBytes(int64(len(block)))
		for range b.N {
			if _, err := aead.Open(block[:0], nonce[:], sealedBlock, aad[:]); err != nil {
				b.Fatal(err)
			}
		}
	})
}
