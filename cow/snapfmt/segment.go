package snapfmt

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

// Segment maps block offsets within one segment to chunks.
type Segment map[uint32]Loc

var (
	segmentMagicV1 = []byte("CVSG\x01") // block -> chunk object
	segmentMagic   = []byte("CVSG\x02") // block -> chunk in a pack
	// segmentMagicEncrypted: an encrypted snapshot's segment. Its pack
	// table is in the clear, so that any daemon's collector can mark the
	// packs it needs without the key; its entries are sealed.
	segmentMagicEncrypted = []byte("CVSG\x03")
)

// EncodeSegment serialises a segment: magic; the pack table (count, then
// per pack its ID and size); the entry count; then entries sorted by block,
// each the block (delta-coded uvarint), the chunk ID, the pack (uvarint
// index into the table plus one; zero for a chunk object of its own) and,
// for a pack, the chunk's offset and length; zstd-compressed.
//
// Under a lineage's keys (k not nil) the magic and the pack table stay in
// the clear and the rest (count and entries, zstd-compressed) follows as a
// random 12-byte nonce and its AES-256-GCM seal, the clear part as
// additional data, so that neither part can be altered.
func EncodeSegment(k *Keys, s Segment) ([]byte, error) {
	blks := make([]uint32, 0, len(s))
	for b := range s {
		blks = append(blks, b)
	}
	sort.Slice(blks, func(i, j int) bool { return blks[i] < blks[j] })
	// The pack table in order of first use by block: the same segment
	// always encodes to the same bytes.
	packs := map[PackID]int{}
	var table []Loc
	for _, b := range blks {
		if l := s[b]; l.InPack() {
			if _, ok := packs[l.Pack]; !ok {
				packs[l.Pack] = len(table)
				table = append(table, l)
			}
		}
	}
	head := make([]byte, 0, len(segmentMagic)+binary.MaxVarintLen64+len(table)*24)
	if k != nil {
		head = append(head, segmentMagicEncrypted...)
	} else {
		head = append(head, segmentMagic...)
	}
	head = binary.AppendUvarint(head, uint64(len(table)))
	for _, l := range table {
		head = append(head, l.Pack[:]...)
		head = binary.AppendUvarint(head, uint64(l.PackSize))
	}
	body := make([]byte, 0, binary.MaxVarintLen64+len(s)*(sha256.Size+10))
	body = binary.AppendUvarint(body, uint64(len(s)))
	prev := uint32(0)
	for _, b := range blks {
		body = binary.AppendUvarint(body, uint64(b-prev))
		l := s[b]
		body = append(body, l.ID[:]...)
		if l.InPack() {
			body = binary.AppendUvarint(body, uint64(packs[l.Pack]+1))
			body = binary.AppendUvarint(body, uint64(l.Off))
			body = binary.AppendUvarint(body, uint64(l.N))
		} else {
			body = binary.AppendUvarint(body, 0)
		}
		prev = b
	}
	if k == nil {
		return ZstdEncoder().EncodeAll(append(head, body...), nil), nil
	}
	nonce := make([]byte, k.meta.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("segment nonce: %w", err)
	}
	z := ZstdEncoder().EncodeAll(body, nil)
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
func (r *segReader) packTable() ([]Loc, error) {
	np := r.uvarint("pack count")
	if np > 1<<SegmentShift {
		return nil, fmt.Errorf("%w: segment pack count %d", ErrCorrupt, np)
	}
	var table []Loc
	for i := uint64(0); i < np && r.err == nil; i++ {
		var l Loc
		r.bytes(l.Pack[:], "pack")
		size := r.uvarint("pack size")
		if size > 1<<32-1 || !l.InPack() {
			return nil, fmt.Errorf("%w: segment pack %d", ErrCorrupt, i)
		}
		l.PackSize = uint32(size)
		table = append(table, l)
	}
	return table, r.err
}

// DecodeSegmentIndex decodes a segment into its read-only form. An
// encrypted segment needs its lineage's keys k; a plaintext one ignores k.
func DecodeSegmentIndex(k *Keys, b []byte) (*SegmentIndex, error) {
	if bytes.HasPrefix(b, segmentMagicEncrypted) {
		if k == nil {
			return nil, fmt.Errorf("%w: the segment is encrypted and its snapshot is not", ErrCorrupt)
		}
		r := &segReader{raw: b[len(segmentMagicEncrypted):]}
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
		body, err := ZstdDecoder().DecodeAll(z, nil)
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
	raw, err := ZstdDecoder().DecodeAll(b, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: segment: %v", ErrCorrupt, err)
	}
	v1 := bytes.HasPrefix(raw, segmentMagicV1)
	if !v1 && !bytes.HasPrefix(raw, segmentMagic) {
		return nil, fmt.Errorf("%w: segment magic", ErrCorrupt)
	}
	r := &segReader{raw: raw[len(segmentMagic):]}
	var table []Loc
	if !v1 {
		if table, err = r.packTable(); err != nil {
			return nil, err
		}
	}
	return decodeSegmentEntries(r, table, v1)
}

// decodeSegmentEntries reads the entry count and the entries.
func decodeSegmentEntries(r *segReader, table []Loc, v1 bool) (*SegmentIndex, error) {
	n := r.uvarint("count")
	if r.err != nil {
		return nil, r.err
	}
	if n > 1<<SegmentShift {
		return nil, fmt.Errorf("%w: segment count", ErrCorrupt)
	}
	s := &SegmentIndex{Entries: make([]SegmentEntry, 0, n)}
	blk := uint64(0)
	for i := uint64(0); i < n; i++ {
		d := r.uvarint("entry")
		blk += d
		if r.err == nil && (blk >= 1<<SegmentShift || (i > 0 && d == 0)) {
			return nil, fmt.Errorf("%w: segment block %d", ErrCorrupt, blk)
		}
		var l Loc
		r.bytes(l.ID[:], "chunk ID")
		if !v1 {
			if p := r.uvarint("pack index"); p > 0 {
				if p > uint64(len(table)) {
					return nil, fmt.Errorf("%w: segment entry %d names pack %d of %d", ErrCorrupt, i, p, len(table))
				}
				t := table[p-1]
				off, ln := r.uvarint("offset"), r.uvarint("length")
				if off+ln > uint64(t.PackSize) || ln == 0 {
					return nil, fmt.Errorf("%w: segment entry %d: bytes %d+%d of a %d-byte pack", ErrCorrupt, i, off, ln, t.PackSize)
				}
				l.Pack, l.PackSize, l.Off, l.N = t.Pack, t.PackSize, uint32(off), uint32(ln)
			}
		}
		if r.err != nil {
			return nil, r.err
		}
		s.Entries = append(s.Entries, SegmentEntry{Off: uint32(blk), Loc: l})
	}
	if len(r.raw) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes in segment", ErrCorrupt, len(r.raw))
	}
	return s, nil
}

// SegmentObjects returns the keys of the objects segment b (as stored)
// refers to, without a key: a sealed segment's pack table is in the clear.
func SegmentObjects(b []byte) ([]string, error) {
	if bytes.HasPrefix(b, segmentMagicEncrypted) {
		r := &segReader{raw: b[len(segmentMagicEncrypted):]}
		table, err := r.packTable()
		if err != nil {
			return nil, err
		}
		keys := make([]string, len(table))
		for i, l := range table {
			keys[i] = PackKey(l.Pack)
		}
		return keys, nil
	}
	idx, err := DecodeSegmentIndex(nil, b)
	if err != nil {
		return nil, err
	}
	var keys []string
	seen := map[string]bool{}
	for _, se := range idx.Entries {
		if k := se.Loc.ObjectKey(); !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	return keys, nil
}

// DecodeSegment decodes a segment into its mutable form.
func DecodeSegment(k *Keys, b []byte) (Segment, error) {
	idx, err := DecodeSegmentIndex(k, b)
	if err != nil {
		return nil, err
	}
	return idx.ToMap(), nil
}

// SegmentIndex is a decoded segment in read-only form: its entries in
// block order, found by binary search. Decoding into it costs a fraction of
// building the map (a full segment: about 26 ms as a map on this machine,
// which a restored volume's first read waited for), and it holds an entry
// in 64 bytes instead of about 110.
type SegmentIndex struct {
	Entries []SegmentEntry // sorted by off, no duplicates
}

type SegmentEntry struct {
	Off uint32 // block offset within the segment
	Loc Loc
}

// Lookup finds block offset off.
func (s *SegmentIndex) Lookup(off uint32) (Loc, bool) {
	i, found := slices.BinarySearchFunc(s.Entries, off, func(e SegmentEntry, off uint32) int { return cmp.Compare(e.Off, off) })
	if !found {
		return Loc{}, false
	}
	return s.Entries[i].Loc, true
}

// ToMap returns the segment in the mutable form a flush merges into.
func (s *SegmentIndex) ToMap() Segment {
	m := make(Segment, len(s.Entries))
	for _, e := range s.Entries {
		m[e.Off] = e.Loc
	}
	return m
}
