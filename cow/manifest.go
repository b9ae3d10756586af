package cow

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
)

// Snapshot storage layout (keys in a snapstore.Store):
//
//	packs/<p[:2]>/<p>               many chunks (blocks, each zstd-compressed) and an index; p random
//	segments/<h[:2]>/<h>            a segment: block -> chunk (ID, pack, offset, length) for 65536 blocks
//	snapshots/<snap-id>/manifest    the manifest root (JSON), written last
//	holds/<vol-id>/<snap-id>        a volume's copy of a manifest it depends on
//	leases/<snap-id>                a flush in progress (refreshed while it runs)
//	chunks/<h[:2]>/<h>              format 1: one chunk per object (still read)
//
// A chunk is named by the SHA-256 of its block, which every read verifies.
// Segments are content-addressed, so an incremental snapshot writes only
// the segments that changed. Packs batch a flush's chunks into objects of
// several MiB, so a GiB of snapshot data is a few hundred requests, not
// sixteen thousand. All-zero blocks are not stored: a block missing from
// its segment reads as zeros.

// segmentShift: a segment covers 1<<segmentShift blocks (4 GiB at 64 KiB),
// so a 64 TiB volume's manifest root lists at most 16384 segments.
const segmentShift = 16

// ErrCorrupt: an object in snapshot storage fails its checksum or does
// not decode.
var ErrCorrupt = errors.New("snapshot data is corrupt")

// chunkID is the SHA-256 of a block's content.
type chunkID [sha256.Size]byte

func (c chunkID) String() string { return hex.EncodeToString(c[:]) }

func chunkKey(id chunkID) string {
	h := id.String()
	return "chunks/" + h[:2] + "/" + h
}

func segmentKey(sum [sha256.Size]byte) string {
	h := hex.EncodeToString(sum[:])
	return "segments/" + h[:2] + "/" + h
}

// segmentSum returns the SHA-256 a segment key names.
func segmentSum(key string) (sum [sha256.Size]byte, ok bool) {
	h, found := strings.CutPrefix(key, "segments/")
	if !found || len(h) != 3+2*sha256.Size || h[2] != '/' || h[:2] != h[3:5] {
		return sum, false
	}
	n, err := hex.Decode(sum[:], []byte(h[3:]))
	return sum, err == nil && n == sha256.Size
}

func manifestKey(snapID string) string { return "snapshots/" + snapID + "/manifest" }

const manifestVersion = 1

// manifest is the root object of a snapshot: what it is and where its
// segments are. It is written after every chunk and segment it names is
// durable, so a reader never sees a partial snapshot.
type manifest struct {
	Version    int       `json:"version"`
	SnapshotID string    `json:"snapshotId"`
	VolumeID   string    `json:"volumeId"`
	VolumeSize int64     `json:"volumeSize"` // bytes
	BlockSize  int       `json:"blockSize"`
	StartTime  time.Time `json:"startTime"`
	// CompletionTime: when the flush stored the manifest.
	CompletionTime time.Time    `json:"completionTime,omitzero"`
	Description    string       `json:"description,omitempty"`
	Tags           []Tag        `json:"tags,omitempty"`
	OwnerID        string       `json:"ownerId,omitempty"`
	OutpostArn     string       `json:"outpostArn,omitempty"`
	DataBytes      int64        `json:"dataBytes"` // non-zero blocks × block size
	Segments       []segmentRef `json:"segments"`
}

// segmentRef names the segment object of segment Index.
type segmentRef struct {
	Index  uint64 `json:"i"`
	Key    string `json:"key"`
	Blocks int    `json:"n"` // non-zero blocks in it
}

func encodeManifest(m *manifest) ([]byte, error) {
	m.Version = manifestVersion
	return json.Marshal(m)
}

func decodeManifest(b []byte) (*manifest, error) {
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: manifest: %v", ErrCorrupt, err)
	}
	if m.Version != manifestVersion {
		return nil, fmt.Errorf("%w: manifest version %d", ErrCorrupt, m.Version)
	}
	if m.BlockSize < MinBlockSize || m.BlockSize > MaxBlockSize || m.VolumeSize <= 0 || m.VolumeSize%int64(m.BlockSize) != 0 {
		return nil, fmt.Errorf("%w: manifest geometry %d/%d", ErrCorrupt, m.VolumeSize, m.BlockSize)
	}
	// Readers binary-search the segments by index, and a segment past the
	// volume's end names no block: sorted, unique, in range.
	last := uint64(m.VolumeSize/int64(m.BlockSize)-1) >> segmentShift
	for i, sr := range m.Segments {
		if sr.Index > last || i > 0 && sr.Index <= m.Segments[i-1].Index {
			return nil, fmt.Errorf("%w: manifest segment %d has index %d (want ascending, unique, at most %d)", ErrCorrupt, i, sr.Index, last)
		}
		if _, ok := segmentSum(sr.Key); !ok {
			return nil, fmt.Errorf("%w: manifest segment %d has key %q", ErrCorrupt, i, sr.Key)
		}
	}
	return &m, nil
}

// packID names a pack object (random: packs are not shared between
// flushes, so content addressing would buy nothing).
type packID [16]byte

func (p packID) String() string { return hex.EncodeToString(p[:]) }

func packKey(p packID) string {
	h := p.String()
	return "packs/" + h[:2] + "/" + h
}

// chunkLoc is where a block's stored chunk is: a byte range of a pack, or
// (format 1, pack zero) a chunk object of its own.
type chunkLoc struct {
	id   chunkID
	pack packID
	// packSize is the pack's length, so that readers can read ahead
	// within it without running past its end.
	packSize uint32
	off, n   uint32 // the compressed chunk within the pack
}

func (l chunkLoc) inPack() bool { return l.pack != packID{} }

// objectKey is the key of the object holding the chunk.
func (l chunkLoc) objectKey() string {
	if l.inPack() {
		return packKey(l.pack)
	}
	return chunkKey(l.id)
}

// segment maps block offsets within one segment to chunks.
type segment map[uint32]chunkLoc

var (
	segmentMagicV1 = []byte("CVSG\x01") // block -> chunk object
	segmentMagic   = []byte("CVSG\x02") // block -> chunk in a pack
)

// encodeSegment serialises a segment: magic; the pack table (count, then
// per pack its ID and size); the entry count; then entries sorted by block,
// each the block (delta-coded uvarint), the chunk ID, the pack (uvarint
// index into the table plus one; zero for a chunk object of its own) and,
// for a pack, the chunk's offset and length; zstd-compressed.
func encodeSegment(s segment) []byte {
	blks := make([]uint32, 0, len(s))
	packs := map[packID]int{}
	var table []chunkLoc
	for b, l := range s {
		blks = append(blks, b)
		if _, ok := packs[l.pack]; !ok && l.inPack() {
			packs[l.pack] = len(table)
			table = append(table, l)
		}
	}
	sort.Slice(blks, func(i, j int) bool { return blks[i] < blks[j] })
	raw := make([]byte, 0, len(segmentMagic)+2*binary.MaxVarintLen64+len(table)*24+len(s)*(sha256.Size+10))
	raw = append(raw, segmentMagic...)
	raw = binary.AppendUvarint(raw, uint64(len(table)))
	for _, l := range table {
		raw = append(raw, l.pack[:]...)
		raw = binary.AppendUvarint(raw, uint64(l.packSize))
	}
	raw = binary.AppendUvarint(raw, uint64(len(s)))
	prev := uint32(0)
	for _, b := range blks {
		raw = binary.AppendUvarint(raw, uint64(b-prev))
		l := s[b]
		raw = append(raw, l.id[:]...)
		if l.inPack() {
			raw = binary.AppendUvarint(raw, uint64(packs[l.pack]+1))
			raw = binary.AppendUvarint(raw, uint64(l.off))
			raw = binary.AppendUvarint(raw, uint64(l.n))
		} else {
			raw = binary.AppendUvarint(raw, 0)
		}
		prev = b
	}
	return zstdEncoder().EncodeAll(raw, nil)
}

// segReader decodes uvarints and fixed fields, remembering the first error.
type segReader struct {
	raw []byte
	err error
}

func (r *segReader) uvarint(what string) uint64 {
	if r.err != nil {
		return 0
	}
	v, k := binary.Uvarint(r.raw)
	if k <= 0 {
		r.err = fmt.Errorf("%w: segment %s", ErrCorrupt, what)
		return 0
	}
	r.raw = r.raw[k:]
	return v
}

func (r *segReader) bytes(dst []byte, what string) {
	if r.err != nil {
		return
	}
	if len(r.raw) < len(dst) {
		r.err = fmt.Errorf("%w: segment %s truncated", ErrCorrupt, what)
		return
	}
	copy(dst, r.raw)
	r.raw = r.raw[len(dst):]
}

func decodeSegmentIndex(b []byte) (*segmentIndex, error) {
	raw, err := zstdDecoder().DecodeAll(b, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: segment: %v", ErrCorrupt, err)
	}
	v1 := bytes.HasPrefix(raw, segmentMagicV1)
	if !v1 && !bytes.HasPrefix(raw, segmentMagic) {
		return nil, fmt.Errorf("%w: segment magic", ErrCorrupt)
	}
	r := &segReader{raw: raw[len(segmentMagic):]}
	var table []chunkLoc
	if !v1 {
		np := r.uvarint("pack count")
		if np > 1<<segmentShift {
			return nil, fmt.Errorf("%w: segment pack count %d", ErrCorrupt, np)
		}
		for i := uint64(0); i < np && r.err == nil; i++ {
			var l chunkLoc
			r.bytes(l.pack[:], "pack")
			size := r.uvarint("pack size")
			if size > 1<<32-1 || !l.inPack() {
				return nil, fmt.Errorf("%w: segment pack %d", ErrCorrupt, i)
			}
			l.packSize = uint32(size)
			table = append(table, l)
		}
	}
	n := r.uvarint("count")
	if r.err != nil {
		return nil, r.err
	}
	if n > 1<<segmentShift {
		return nil, fmt.Errorf("%w: segment count", ErrCorrupt)
	}
	s := &segmentIndex{entries: make([]segmentEntry, 0, n)}
	blk := uint64(0)
	for i := uint64(0); i < n; i++ {
		d := r.uvarint("entry")
		blk += d
		if r.err == nil && (blk >= 1<<segmentShift || (i > 0 && d == 0)) {
			return nil, fmt.Errorf("%w: segment block %d", ErrCorrupt, blk)
		}
		var l chunkLoc
		r.bytes(l.id[:], "chunk ID")
		if !v1 {
			if p := r.uvarint("pack index"); p > 0 {
				if p > uint64(len(table)) {
					return nil, fmt.Errorf("%w: segment entry %d names pack %d of %d", ErrCorrupt, i, p, len(table))
				}
				t := table[p-1]
				off, ln := r.uvarint("offset"), r.uvarint("length")
				if off+ln > uint64(t.packSize) || ln == 0 {
					return nil, fmt.Errorf("%w: segment entry %d: bytes %d+%d of a %d-byte pack", ErrCorrupt, i, off, ln, t.packSize)
				}
				l.pack, l.packSize, l.off, l.n = t.pack, t.packSize, uint32(off), uint32(ln)
			}
		}
		if r.err != nil {
			return nil, r.err
		}
		s.entries = append(s.entries, segmentEntry{off: uint32(blk), loc: l})
	}
	if len(r.raw) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes in segment", ErrCorrupt, len(r.raw))
	}
	return s, nil
}

// decodeSegment decodes a segment into its mutable form.
func decodeSegment(b []byte) (segment, error) {
	idx, err := decodeSegmentIndex(b)
	if err != nil {
		return nil, err
	}
	return idx.toMap(), nil
}

// segmentIndex is a decoded segment in read-only form: its entries in
// block order, found by binary search. Decoding into it costs a fraction of
// building the map (a full segment: about 26 ms as a map on this machine,
// which a restored volume's first read waited for), and it holds an entry
// in 64 bytes instead of about 110.
type segmentIndex struct {
	entries []segmentEntry // sorted by off, no duplicates
}

type segmentEntry struct {
	off uint32 // block offset within the segment
	loc chunkLoc
}

// lookup finds block offset off.
func (s *segmentIndex) lookup(off uint32) (chunkLoc, bool) {
	i, found := slices.BinarySearchFunc(s.entries, off, func(e segmentEntry, off uint32) int { return cmp.Compare(e.off, off) })
	if !found {
		return chunkLoc{}, false
	}
	return s.entries[i].loc, true
}

// toMap returns the segment in the mutable form a flush merges into.
func (s *segmentIndex) toMap() segment {
	m := make(segment, len(s.entries))
	for _, e := range s.entries {
		m[e.off] = e.loc
	}
	return m
}

// encodeChunk compresses a block for storage, appending to dst.
func encodeChunk(dst, data []byte) []byte { return zstdEncoder().EncodeAll(data, dst) }

// verifyChunk checks a stored chunk against its ID, block size unknown.
func verifyChunk(id chunkID, stored []byte) error {
	out, err := zstdDecoder().DecodeAll(stored, nil)
	if err != nil {
		return fmt.Errorf("%w: chunk %s: %v", ErrCorrupt, id, err)
	}
	if sha256.Sum256(out) != id {
		return fmt.Errorf("%w: chunk %s fails its checksum", ErrCorrupt, id)
	}
	return nil
}

// decodeChunk decompresses a stored block into dst (len = block size) and
// verifies it against its ID.
func decodeChunk(id chunkID, stored, dst []byte) error {
	out, err := zstdDecoder().DecodeAll(stored, dst[:0])
	if err != nil {
		return fmt.Errorf("%w: chunk %s: %v", ErrCorrupt, id, err)
	}
	if len(out) != len(dst) || &out[0] != &dst[0] {
		if len(out) != len(dst) {
			return fmt.Errorf("%w: chunk %s has %d bytes, want %d", ErrCorrupt, id, len(out), len(dst))
		}
		copy(dst, out)
	}
	if sha256.Sum256(dst) != id {
		return fmt.Errorf("%w: chunk %s fails its checksum", ErrCorrupt, id)
	}
	return nil
}

var (
	zstdOnce sync.Once
	zEnc     *zstd.Encoder
	zDec     *zstd.Decoder
)

// zstdEncoder and zstdDecoder are shared: EncodeAll and DecodeAll are safe
// for concurrent use.
func zstdEncoder() *zstd.Encoder { zstdInit(); return zEnc }
func zstdDecoder() *zstd.Decoder { zstdInit(); return zDec }

func zstdInit() {
	zstdOnce.Do(func() {
		var err error
		zEnc, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true))
		if err != nil {
			panic(err)
		}
		zDec, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(64<<20))
		if err != nil {
			panic(err)
		}
	})
}

// isZero reports whether b is all zeros.
func isZero(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
