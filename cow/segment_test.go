package cow

import (
	"crypto/sha256"
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// randomSegment makes a segment of n random blocks in packs.
func randomSegment(rng *rand.Rand, n int) segment {
	s := segment{}
	for len(s) < n {
		off := uint32(rng.IntN(1 << segmentShift))
		var id chunkID
		binary.BigEndian.PutUint32(id[:], off)
		id = sha256.Sum256(id[:])
		s[off] = chunkLoc{id: id, pack: packID{byte(rng.IntN(8)) + 1}, packSize: 8 << 20, off: uint32(rng.IntN(8 << 19)), n: uint32(rng.IntN(1<<16) + 1)}
	}
	return s
}

// TestSegmentIndexAgreesWithMap: the read-only index decoded from a
// segment finds exactly what the map form holds, and converts back to it.
func TestSegmentIndexAgreesWithMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 2, 100, 5000} {
		want := randomSegment(rng, n)
		enc, err := encodeSegment(nil, want)
		if err != nil {
			t.Fatal(err)
		}
		idx, err := decodeSegmentIndex(nil, enc)
		if err != nil {
			t.Fatal(err)
		}
		for i := 1; i < len(idx.entries); i++ {
			if idx.entries[i-1].off >= idx.entries[i].off {
				t.Fatalf("n=%d: entries out of order at %d", n, i)
			}
		}
		for range 2000 {
			off := uint32(rng.IntN(1 << segmentShift))
			if rng.IntN(2) == 0 && n > 0 { // half the probes hit
				off = idx.entries[rng.IntN(len(idx.entries))].off
			}
			got, ok := idx.lookup(off)
			w, wok := want[off]
			if ok != wok || got != w {
				t.Fatalf("n=%d: lookup(%d) = %v %v, want %v %v", n, off, got, ok, w, wok)
			}
		}
		m := idx.toMap()
		if len(m) != len(want) {
			t.Fatalf("n=%d: toMap has %d entries, want %d", n, len(m), len(want))
		}
		for off, l := range want {
			if m[off] != l {
				t.Fatalf("n=%d: toMap[%d] = %v, want %v", n, off, m[off], l)
			}
		}
	}
}

// BenchmarkDecodeSegment: a full segment (65536 blocks), decoded into the
// read-only index a reader uses and into the map a flush merges into.
func BenchmarkDecodeSegment(b *testing.B) {
	enc, _ := encodeSegment(nil, randomSegment(rand.New(rand.NewPCG(1, 2)), 1<<segmentShift))
	b.Run("index", func(b *testing.B) {
		for range b.N {
			if _, err := decodeSegmentIndex(nil, enc); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("map", func(b *testing.B) {
		for range b.N {
			if _, err := decodeSegment(nil, enc); err != nil {
				b.Fatal(err)
			}
		}
	})
}
