package snapfmt

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// randomSegment makes a segment of n random blocks in packs.
func randomSegment(rng *rand.Rand, n int) Segment {
	s := Segment{}
	for len(s) < n {
		off := uint32(rng.IntN(1 << SegmentShift))
		var id ChunkID
		binary.BigEndian.PutUint32(id[:], off)
		id = sha256.Sum256(id[:])
		s[off] = Loc{ID: id, Pack: PackID{byte(rng.IntN(8)) + 1}, PackSize: 8 << 20, Off: uint32(rng.IntN(8 << 19)), N: uint32(rng.IntN(1<<16) + 1)}
	}
	return s
}

// TestSegmentIndexAgreesWithMap: the read-only index decoded from a
// segment finds exactly what the map form holds, and converts back to it.
func TestSegmentIndexAgreesWithMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 2, 100, 5000} {
		want := randomSegment(rng, n)
		enc, err := EncodeSegment(nil, want)
		if err != nil {
			t.Fatal(err)
		}
		idx, err := DecodeSegmentIndex(nil, enc)
		if err != nil {
			t.Fatal(err)
		}
		for i := 1; i < len(idx.Entries); i++ {
			if idx.Entries[i-1].Off >= idx.Entries[i].Off {
				t.Fatalf("n=%d: entries out of order at %d", n, i)
			}
		}
		for range 2000 {
			off := uint32(rng.IntN(1 << SegmentShift))
			if rng.IntN(2) == 0 && n > 0 { // half the probes hit
				off = idx.Entries[rng.IntN(len(idx.Entries))].Off
			}
			got, ok := idx.Lookup(off)
			w, wok := want[off]
			if ok != wok || got != w {
				t.Fatalf("n=%d: lookup(%d) = %v %v, want %v %v", n, off, got, ok, w, wok)
			}
		}
		m := idx.ToMap()
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
	enc, _ := EncodeSegment(nil, randomSegment(rand.New(rand.NewPCG(1, 2)), 1<<SegmentShift))
	b.Run("index", func(b *testing.B) {
		for range b.N {
			if _, err := DecodeSegmentIndex(nil, enc); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("map", func(b *testing.B) {
		for range b.N {
			if _, err := DecodeSegment(nil, enc); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestSegmentFormat1StillReads: a segment of format 1 (one object per
// chunk) decodes to locations outside packs.
func TestSegmentFormat1StillReads(t *testing.T) {
	var raw []byte
	raw = append(raw, segmentMagicV1...)
	raw = binary.AppendUvarint(raw, 2)
	id1, id2 := ChunkID{1}, ChunkID{2}
	raw = binary.AppendUvarint(raw, 5)
	raw = append(raw, id1[:]...)
	raw = binary.AppendUvarint(raw, 3)
	raw = append(raw, id2[:]...)
	s, err := DecodeSegment(nil, ZstdEncoder().EncodeAll(raw, nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(s) != 2 || s[5].ID != id1 || s[8].ID != id2 || s[5].InPack() || s[8].ObjectKey() != ChunkKey(id2) {
		t.Fatalf("decoded %+v", s)
	}
}

// TestEncodeSegmentDeterministic: a segment whose blocks live in many
// packs encodes to the same bytes every time (the pack table in order of
// first use by block, not in map order).
func TestEncodeSegmentDeterministic(t *testing.T) {
	s := Segment{}
	for b := uint32(0); b < 64; b++ {
		var l Loc
		l.ID[0], l.Pack[0] = byte(b), byte(b%7)+1
		l.PackSize, l.Off, l.N = 1<<20, b*4096, 4096
		s[b] = l
	}
	first, err := EncodeSegment(nil, s)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		if b, err := EncodeSegment(nil, s); err != nil || !bytes.Equal(b, first) {
			t.Fatalf("EncodeSegment gave other bytes for the same segment (%v)", err)
		}
	}
}
