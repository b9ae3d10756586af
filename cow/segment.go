package cow

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"sort"
)

// segment maps block offsets within one segment to chunks.
type segment map[uint32]chunkLoc

var (
	segmentMagicV1 = []byte("CVSG\x01") // block -> chunk object
	segmentMagic   = []byte("CVSG\x02") // block -> chunk in a pack
	// segmentMagicSealed: an encrypted snapshot's segment. Its pack
	// table is in the clear, so that any daemon's collector can mark the
	// packs it needs without the key; its entries are sealed.
	segmentMagicSealed = []byte("CVSG\x03")
)

// encodeSegment serialises a segment: magic; the pack table (count, then
// per pack its ID and size); the entry count; then entries sorted by block,
// each the block (delta-coded uvarint), the chunk ID, the pack (uvarint
// index into the table plus one; zero for a chunk object of its own) and,
// for a pack, the chunk's offset and length; zstd-compressed.
//
// Under a lineage's keys (k not nil) the magic and the pack table stay in
// the clear and the rest (count and entries, zstd-compressed) follows as a
// random 12-byte nonce and its AES-256-GCM seal, the clear part as
// additional data, so that neither part can be altered.
func encodeSegment(k *lineageKeys, s segment) ([]byte, error) {
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
	head := make([]byte, 0, len(segmentMagic)+binary.MaxVarintLen64+len(table)*24)
	if k != nil {
		head = append(head, segmentMagicSealed...)
	} else {
		head = append(head, segmentMagic...)
	}
	head = binary.AppendUvarint(head, uint64(len(table)))
	for _, l := range table {
		head = append(head, l.pack[:]...)
		head = binary.AppendUvarint(head, uint64(l.packSize))
	}
	body := make([]byte, 0, binary.MaxVarintLen64+len(s)*(sha256.Size+10))
	body = binary.AppendUvarint(body, uint64(len(s)))
	prev := uint32(0)
	for _, b := range blks {
		body = binary.AppendUvarint(body, uint64(b-prev))
		l := s[b]
		body = append(body, l.id[:]...)
		if l.inPack() {
			body = binary.AppendUvarint(body, uint64(packs[l.pack]+1))
			body = binary.AppendUvarint(body, uint64(l.off))
			body = binary.AppendUvarint(body, uint64(l.n))
		} else {
			body = binary.AppendUvarint(body, 0)
		}
		prev = b
	}
	if k == nil {
		return zstdEncoder().EncodeAll(append(head, body...), nil), nil
	}
	nonce := make([]byte, k.meta.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("segment nonce: %w", err)
	}
	z := zstdEncoder().EncodeAll(body, nil)
	out := append(head, nonce...)
	return k.meta.Seal(out, nonce, z, head), nil
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

// packTable reads a segment's pack table.
func (r *segReader) packTable() ([]chunkLoc, error) {
	np := r.uvarint("pack count")
	if np > 1<<segmentShift {
		return nil, fmt.Errorf("%w: segment pack count %d", ErrCorrupt, np)
	}
	var table []chunkLoc
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
	return table, r.err
}

// decodeSegmentIndex decodes a segment into its read-only form. An
// encrypted segment needs its lineage's keys k; a plaintext one ignores k.
func decodeSegmentIndex(k *lineageKeys, b []byte) (*segmentIndex, error) {
	if bytes.HasPrefix(b, segmentMagicSealed) {
		if k == nil {
			return nil, fmt.Errorf("%w: the segment is encrypted and its snapshot is not", ErrCorrupt)
		}
		r := &segReader{raw: b[len(segmentMagicSealed):]}
		table, err := r.packTable()
		if err != nil {
			return nil, err
		}
		head, rest := b[:len(b)-len(r.raw)], r.raw
		ns := k.meta.NonceSize()
		if len(rest) < ns {
			return nil, fmt.Errorf("%w: sealed segment truncated", ErrCorrupt)
		}
		z, err := k.meta.Open(nil, rest[:ns], rest[ns:], head)
		if err != nil {
			return nil, fmt.Errorf("%w: segment fails authentication", ErrCorrupt)
		}
		body, err := zstdDecoder().DecodeAll(z, nil)
		if err != nil {
			return nil, fmt.Errorf("%w: segment: %v", ErrCorrupt, err)
		}
		return decodeSegmentEntries(&segReader{raw: body}, table, false)
	}
	if k != nil {
		// A lineage's segments are all sealed: a plaintext one in its
		// place was put there by someone without the key.
		return nil, fmt.Errorf("%w: a plaintext segment in an encrypted snapshot", ErrCorrupt)
	}
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
		if table, err = r.packTable(); err != nil {
			return nil, err
		}
	}
	return decodeSegmentEntries(r, table, v1)
}

// decodeSegmentEntries reads the entry count and the entries.
func decodeSegmentEntries(r *segReader, table []chunkLoc, v1 bool) (*segmentIndex, error) {
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

// segmentObjects returns the keys of the objects segment b (as stored)
// refers to, without a key: a sealed segment's pack table is in the clear.
func segmentObjects(b []byte) ([]string, error) {
	if bytes.HasPrefix(b, segmentMagicSealed) {
		r := &segReader{raw: b[len(segmentMagicSealed):]}
		table, err := r.packTable()
		if err != nil {
			return nil, err
		}
		keys := make([]string, len(table))
		for i, l := range table {
			keys[i] = packKey(l.pack)
		}
		return keys, nil
	}
	idx, err := decodeSegmentIndex(nil, b)
	if err != nil {
		return nil, err
	}
	var keys []string
	seen := map[string]bool{}
	for _, se := range idx.entries {
		if k := se.loc.objectKey(); !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	return keys, nil
}

// decodeSegment decodes a segment into its mutable form.
func decodeSegment(k *lineageKeys, b []byte) (segment, error) {
	idx, err := decodeSegmentIndex(k, b)
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
