package snapfmt

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// Golden objects other than manifests (manifest_sum_test.go has those):
// one of every object kind in every format version, as a daemon stored
// it. The test decodes each and compares with what it describes, so a
// change that stops old objects from reading fails here; where the
// encoding is deterministic (packs, plaintext segments) it also checks the
// encoder still writes the golden bytes. -update-golden rewrites them
// (encrypted segments carry random nonces: rewriting changes their bytes).

// goldenBlock is block i of the golden objects: 4 KiB, compressible.
func goldenBlock(i int) []byte {
	b := bytes.Repeat([]byte{byte(i), byte(i * 7), 'c', 'o', 'w'}, 4096/5+1)
	return b[:4096]
}

// goldenChunk describes the golden chunk objects.
var goldenChunks = []struct {
	file      string
	encrypted bool
}{
	{"chunk-v1.bin", false}, // format 1: a chunk object of its own, zstd of the block
	{"chunk-encrypted.bin", true},
}

// goldenSegment is what every golden segment describes (the format-1 one
// without packs).
func goldenSegment(v1 bool) Segment {
	s := Segment{}
	for i, off := range []uint32{0, 1, 7, 65535} {
		id := sha256.Sum256(goldenBlock(i))
		l := Loc{ID: id}
		if !v1 {
			l.Pack, l.PackSize, l.Off, l.N = PackID{byte(i%2 + 1)}, 1<<20, uint32(i)*1000, 900
		}
		s[off] = l
	}
	return s
}

var goldenSegments = []struct {
	file      string
	v1        bool
	encrypted bool
}{
	{"segment-v1.bin", true, false},
	{"segment-v2.bin", false, false},
	{"segment-v3-encrypted.bin", false, true},
}

// encodeSegmentV1 writes the first segment format (block -> chunk object),
// which no daemon writes any more.
func encodeSegmentV1(s Segment) []byte {
	raw := append([]byte(nil), segmentMagicV1...)
	raw = binary.AppendUvarint(raw, uint64(len(s)))
	prev := uint32(0)
	for _, e := range mustIndex(s).Entries {
		raw = binary.AppendUvarint(raw, uint64(e.Off-prev))
		raw = append(raw, e.Loc.ID[:]...)
		prev = e.Off
	}
	return ZstdEncoder().EncodeAll(raw, nil)
}

func mustIndex(s Segment) *SegmentIndex {
	b, err := EncodeSegment(nil, s)
	if err != nil {
		panic(err)
	}
	idx, err := DecodeSegmentIndex(nil, b)
	if err != nil {
		panic(err)
	}
	return idx
}

// goldenOrWrite returns the golden file's bytes, rewriting them with
// make()'s first under -update-golden.
func goldenOrWrite(t testing.TB, file string, make func() []byte) []byte {
	t.Helper()
	path := filepath.Join("testdata", file)
	if *updateGolden {
		if err := os.WriteFile(path, make(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return readGolden(t, file)
}

func keysFor(t testing.TB, encrypted bool) *Keys {
	if encrypted {
		return goldenKeys(t)
	}
	return nil
}

func TestChunkGoldenFiles(t *testing.T) {
	for _, g := range goldenChunks {
		t.Run(g.file, func(t *testing.T) {
			k := keysFor(t, g.encrypted)
			block := goldenBlock(0)
			id := ChunkIDOf(k, block)
			b := goldenOrWrite(t, g.file, func() []byte { return EncodeChunk(k, nil, id, block) })
			dst := make([]byte, len(block))
			if err := DecodeChunk(k, id, b, dst); err != nil || !bytes.Equal(dst, block) {
				t.Fatalf("decode: %v", err)
			}
			if err := VerifyChunk(k, id, b); err != nil {
				t.Fatalf("verify: %v", err)
			}
			if g.encrypted {
				if err := DecodeChunk(nil, id, b, dst); err == nil {
					t.Fatal("an encrypted chunk decoded without its key")
				}
			}
		})
	}
}

func TestSegmentGoldenFiles(t *testing.T) {
	for _, g := range goldenSegments {
		t.Run(g.file, func(t *testing.T) {
			k := keysFor(t, g.encrypted)
			want := goldenSegment(g.v1)
			b := goldenOrWrite(t, g.file, func() []byte {
				if g.v1 {
					return encodeSegmentV1(want)
				}
				b, err := EncodeSegment(k, want)
				if err != nil {
					t.Fatal(err)
				}
				return b
			})
			got, err := DecodeSegment(k, b)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if len(got) != len(want) {
				t.Fatalf("%d entries, want %d", len(got), len(want))
			}
			for off, l := range want {
				if got[off] != l {
					t.Errorf("block %d: %+v, want %+v", off, got[off], l)
				}
			}
			objs, err := SegmentObjects(b)
			if err != nil {
				t.Fatalf("objects: %v", err)
			}
			if g.v1 && len(objs) != len(want) || !g.v1 && len(objs) != 2 {
				t.Errorf("objects %v", objs)
			}
			if !g.v1 && !g.encrypted {
				if enc, err := EncodeSegment(nil, want); err != nil || !bytes.Equal(enc, b) {
					t.Errorf("the encoder no longer writes the golden segment (%v)", err)
				}
			}
		})
	}
}

// goldenPack is the golden pack: three golden blocks' chunks.
func goldenPack(t testing.TB) []byte {
	var buf bytes.Buffer
	pb := NewPackBuilder(&buf)
	for i := range 3 {
		block := goldenBlock(i)
		id := ChunkIDOf(nil, block)
		if _, _, err := pb.Add(id, EncodeChunk(nil, nil, id, block)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pb.Finish(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestPackGoldenFile(t *testing.T) {
	b := goldenOrWrite(t, "pack-v1.bin", func() []byte { return goldenPack(t) })
	p, err := OpenPack(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Entries()) != 3 {
		t.Fatalf("%d entries", len(p.Entries()))
	}
	for i, e := range p.Entries() {
		block := goldenBlock(i)
		if e.ID != ChunkIDOf(nil, block) {
			t.Fatalf("entry %d names another chunk", i)
		}
		c, err := p.Chunk(e)
		if err != nil {
			t.Fatal(err)
		}
		dst := make([]byte, len(block))
		if err := DecodeChunk(nil, e.ID, c, dst); err != nil || !bytes.Equal(dst, block) {
			t.Fatalf("entry %d: %v", i, err)
		}
	}
	if !bytes.Equal(goldenPack(t), b) {
		t.Error("the pack builder no longer writes the golden pack")
	}
}

// TestStoreKeys: every key builder's spelling, and its parser's inverse.
func TestStoreKeys(t *testing.T) {
	sum := sha256.Sum256([]byte("x"))
	pack := PackID{0xab, 0xcd}
	tests := []struct{ got, want string }{
		{ChunkKey(ChunkID(sum)), "chunks/2d/2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"},
		{SegmentKey(sum), "segments/2d/2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"},
		{PackKey(pack), "packs/ab/abcd0000000000000000000000000000"},
		{ManifestKey("snap-1"), "snapshots/snap-1/manifest"},
		{HoldKey("vol-1", "snap-1"), "holds/vol-1/snap-1"},
		{HoldsOf("vol-1"), "holds/vol-1/"},
		{LeaseKey("snap-1", timeMs(1700000000123)), "leases/snap-1.1700000000123"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%q, want %q", tt.got, tt.want)
		}
	}
	if s, ok := SegmentSum(SegmentKey(sum)); !ok || s != sum {
		t.Error("SegmentSum does not invert SegmentKey")
	}
	if p, ok := ParsePackKey(PackKey(pack)); !ok || p != pack {
		t.Error("ParsePackKey does not invert PackKey")
	}
	if ts, ok := LeaseStart(LeaseKey("snap-1", timeMs(1700000000123))); !ok || !ts.Equal(timeMs(1700000000123)) {
		t.Error("LeaseStart does not invert LeaseKey")
	}
	parses := []struct {
		key      string
		snap     string
		manifest bool
	}{
		{"snapshots/snap-1/manifest", "snap-1", true},
		{"holds/vol-1/snap-1", "snap-1", false},
		{"snapshots/snap-1/other", "", false},
		{"snapshots/a/b/manifest", "", false},
		{"snapshots//manifest", "", false},
		{"holds//snap-1", "", false},
		{"holds/vol-1/a/b", "", false},
		{"packs/ab/abcd", "", false},
	}
	for _, p := range parses {
		if got := SnapshotOfManifestKey(p.key); got != p.snap {
			t.Errorf("SnapshotOfManifestKey(%q) = %q, want %q", p.key, got, p.snap)
		}
		if _, ok := ParseManifestKey(p.key); ok != p.manifest {
			t.Errorf("ParseManifestKey(%q) ok = %v", p.key, ok)
		}
	}
	for _, bad := range []string{"segments/2d/2e71", "segments/2d2d711642", "packs/ab/ab", "chunks/2d/2d71", SegmentKey(sum) + "0"} {
		if _, ok := SegmentSum(bad); ok {
			t.Errorf("SegmentSum(%q) accepted", bad)
		}
		if _, ok := ParsePackKey(bad); ok {
			t.Errorf("ParsePackKey(%q) accepted", bad)
		}
	}
}
