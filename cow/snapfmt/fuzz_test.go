package snapfmt

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func timeMs(ms int64) time.Time { return time.UnixMilli(ms) }

// Fuzz targets for every decoder of stored objects: objects written by
// another host are untrusted input. Each checks that a decoder never
// panics, refuses with ErrCorrupt, and that what it accepts encodes and
// decodes back to the same value. FuzzDecodeManifest is in
// manifest_sum_test.go.

// FuzzDecodeSegment: plaintext segments (formats 1 and 2).
func FuzzDecodeSegment(f *testing.F) {
	for _, g := range goldenSegments {
		if !g.encrypted {
			f.Add(readGolden(f, g.file))
		}
	}
	f.Add(ZstdEncoder().EncodeAll(append(append([]byte(nil), segmentMagic...), 0, 1, 0), nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		checkSegment(t, nil, b)
		// The same bytes, compressed: reaches past the zstd frame.
		checkSegment(t, nil, ZstdEncoder().EncodeAll(b, nil))
	})
}

// FuzzDecodeEncryptedSegment: encrypted segments under the golden keys.
// The fuzzer cannot forge a seal, so it reaches the pack table (read
// without the key) and the authentication; a plaintext key-less read of
// the pack table (SegmentObjects) is checked too.
func FuzzDecodeEncryptedSegment(f *testing.F) {
	f.Add(readGolden(f, "segment-v3-encrypted.bin"))
	k := goldenKeys(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		checkSegment(t, k, b)
	})
}

func checkSegment(t *testing.T, k *Keys, b []byte) {
	idx, err := DecodeSegmentIndex(k, b)
	objs, oerr := SegmentObjects(b)
	if err != nil {
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("decode error not ErrCorrupt: %v", err)
		}
		if oerr != nil && !errors.Is(oerr, ErrCorrupt) {
			t.Fatalf("objects error not ErrCorrupt: %v", oerr)
		}
		return
	}
	if oerr != nil {
		t.Fatalf("a segment that decodes has no object list: %v", oerr)
	}
	_ = objs
	for i := 1; i < len(idx.Entries); i++ {
		if idx.Entries[i-1].Off >= idx.Entries[i].Off {
			t.Fatalf("entries out of order at %d", i)
		}
	}
	s := idx.ToMap()
	enc, err := EncodeSegment(k, s)
	if err != nil {
		t.Fatal(err)
	}
	again, err := DecodeSegment(k, enc)
	if err != nil || len(again) != len(s) {
		t.Fatalf("re-encoded segment: %d entries, %v", len(again), err)
	}
	for off, l := range s {
		if l.InPack() && again[off] != l || !l.InPack() && again[off].ID != l.ID {
			t.Fatalf("block %d: %+v, want %+v", off, again[off], l)
		}
	}
}

// FuzzDecodeChunk: stored chunks, plaintext and encrypted, under the ID
// they claim: a chunk that decodes must be the block its ID names.
func FuzzDecodeChunk(f *testing.F) {
	k := goldenKeys(f)
	for _, g := range goldenChunks {
		f.Add(readGolden(f, g.file), g.encrypted, 4096)
	}
	f.Fuzz(func(t *testing.T, b []byte, encrypted bool, size int) {
		if size < 0 || size > MaxBlockSize {
			return
		}
		kk := (*Keys)(nil)
		if encrypted {
			kk = k
		}
		// The ID of the golden block; whatever decodes must be it.
		block := goldenBlock(0)
		id := ChunkIDOf(kk, block)
		dst := make([]byte, size)
		err := DecodeChunk(kk, id, b, dst)
		verr := VerifyChunk(kk, id, b)
		if (err == nil) != (verr == nil) && size == len(block) {
			t.Fatalf("decode %v but verify %v", err, verr)
		}
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error not ErrCorrupt: %v", err)
			}
			return
		}
		if !bytes.Equal(dst, block) {
			t.Fatal("a chunk decoded to another block than its ID names")
		}
	})
}

// FuzzOpenPack: a pack's index and chunks.
func FuzzOpenPack(f *testing.F) {
	f.Add(readGolden(f, "pack-v1.bin"))
	f.Add(PackMagic)
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := OpenPack(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error not ErrCorrupt: %v", err)
			}
			return
		}
		for _, e := range p.Entries() {
			c, err := p.Chunk(e)
			if err != nil {
				t.Fatalf("an indexed chunk does not read: %v", err)
			}
			if len(c) != int(e.N) {
				t.Fatalf("chunk of %d bytes, want %d", len(c), e.N)
			}
			dst := make([]byte, 4096)
			if err := DecodeChunk(nil, e.ID, c, dst); err != nil && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("chunk error not ErrCorrupt: %v", err)
			}
		}
	})
}

// FuzzOpenManifest: encrypted manifests under the golden keys, their
// checksum made right so that the fuzzer reaches the seal and what the
// opened list must satisfy.
func FuzzOpenManifest(f *testing.F) {
	for _, g := range goldenFiles {
		if g.encrypted {
			f.Add(readGolden(f, g.file))
		}
	}
	k := goldenKeys(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		if hasManifestSum(b) {
			b = bytes.Clone(b)
			copy(manifestSumField(b), manifestSum(b))
		}
		m, err := DecodeManifest(b)
		if err != nil {
			return // FuzzDecodeManifest's ground
		}
		if err := OpenManifest(k, m); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("open error not ErrCorrupt: %v", err)
			}
			return
		}
		if m.Encryption != nil && len(m.Segments) != len(m.Refs) {
			t.Fatalf("opened %d segments for %d refs", len(m.Segments), len(m.Refs))
		}
		if err := m.checkSegments(); err != nil {
			t.Fatalf("an opened manifest fails its checks: %v", err)
		}
	})
}

// FuzzStoreKeys: the key parsers accept exactly what the builders write.
func FuzzStoreKeys(f *testing.F) {
	f.Add("segments/2d/2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881")
	f.Add("packs/ab/abcd0000000000000000000000000000")
	f.Add("snapshots/snap-1/manifest")
	f.Add("holds/vol-1/snap-1")
	f.Add("leases/snap-1.1700000000123")
	f.Fuzz(func(t *testing.T, key string) {
		if sum, ok := SegmentSum(key); ok && !equalFold(SegmentKey(sum), key) {
			t.Fatalf("SegmentSum(%q) accepted, builds %q", key, SegmentKey(sum))
		}
		if p, ok := ParsePackKey(key); ok && !equalFold(PackKey(p), key) {
			t.Fatalf("ParsePackKey(%q) accepted, builds %q", key, PackKey(p))
		}
		if id, ok := ParseManifestKey(key); ok && ManifestKey(id) != key {
			t.Fatalf("ParseManifestKey(%q) = %q", key, id)
		}
		if id := SnapshotOfManifestKey(key); id != "" {
			if _, ok := ParseManifestKey(key); !ok && !IsHoldKey(key) {
				t.Fatalf("SnapshotOfManifestKey(%q) = %q from neither a manifest nor a hold", key, id)
			}
		}
		LeaseStart(key)
	})
}

// equalFold: the parsers take hex digits of either case (as they always
// have); the builders write lowercase.
func equalFold(a, b string) bool { return bytes.EqualFold([]byte(a), []byte(b)) }
