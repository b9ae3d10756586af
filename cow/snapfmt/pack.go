package snapfmt

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
)

// Pack object layout: the compressed chunks back to back, then the index
// (per chunk: ID, offset and length as big-endian uint32), then the entry
// count (uint32) and PackMagic. Readers go by the segments' locations; the
// index makes a pack self-describing (checks, repair, repacking).
var PackMagic = []byte("CVPACK01")

// PackIndexEntrySize is the size of one index entry.
const PackIndexEntrySize = 32 + 4 + 4

// packTrailerSize: the entry count and the magic.
var packTrailerSize = 4 + len(PackMagic)

// PackBuilder writes a pack to an io.Writer: chunks as they are added,
// the index and trailer at Finish. It keeps the index (40 bytes a chunk).
type PackBuilder struct {
	w     io.Writer
	n     int64 // bytes written
	index []byte
	err   error
}

// NewPackBuilder starts a pack on w.
func NewPackBuilder(w io.Writer) *PackBuilder { return &PackBuilder{w: w} }

// Add writes chunk (stored bytes, from EncodeChunk) named id and returns
// its offset and length within the pack.
func (b *PackBuilder) Add(id ChunkID, chunk []byte) (off, n uint32, err error) {
	if b.err != nil {
		return 0, 0, b.err
	}
	if b.n+int64(len(chunk)) > 1<<32-1 {
		return 0, 0, fmt.Errorf("pack would exceed 4 GiB")
	}
	off, n = uint32(b.n), uint32(len(chunk))
	if _, b.err = b.w.Write(chunk); b.err != nil {
		return 0, 0, b.err
	}
	b.n += int64(len(chunk))
	b.index = append(b.index, id[:]...)
	b.index = binary.BigEndian.AppendUint32(b.index, off)
	b.index = binary.BigEndian.AppendUint32(b.index, n)
	return off, n, nil
}

// Len is the bytes of chunks written so far.
func (b *PackBuilder) Len() int64 { return b.n }

// Finish writes the index and trailer and returns the pack's size.
func (b *PackBuilder) Finish() (int64, error) {
	if b.err != nil {
		return 0, b.err
	}
	trailer := binary.BigEndian.AppendUint32(b.index, uint32(len(b.index)/PackIndexEntrySize))
	trailer = append(trailer, PackMagic...)
	if _, b.err = b.w.Write(trailer); b.err != nil {
		return 0, b.err
	}
	b.n += int64(len(trailer))
	b.err = fmt.Errorf("pack finished")
	return b.n, nil
}

// PackEntry is one chunk of a pack's index.
type PackEntry struct {
	ID     ChunkID
	Off, N uint32
}

// PackReader reads a pack through an io.ReaderAt.
type PackReader struct {
	r       io.ReaderAt
	size    int64
	entries []PackEntry
}

// OpenPack reads and checks the index of the size-byte pack r holds: the
// magic, an entry count that fits, and every entry inside the chunk area.
func OpenPack(r io.ReaderAt, size int64) (*PackReader, error) {
	if size < int64(packTrailerSize) || size > 1<<32-1 {
		return nil, fmt.Errorf("%w: a pack of %d bytes", ErrCorrupt, size)
	}
	trailer := make([]byte, packTrailerSize)
	if _, err := r.ReadAt(trailer, size-int64(packTrailerSize)); err != nil {
		return nil, fmt.Errorf("pack trailer: %w", err)
	}
	if !bytes.Equal(trailer[4:], PackMagic) {
		return nil, fmt.Errorf("%w: pack magic", ErrCorrupt)
	}
	count := int64(binary.BigEndian.Uint32(trailer))
	data := size - int64(packTrailerSize) - count*PackIndexEntrySize
	if data < 0 {
		return nil, fmt.Errorf("%w: pack index of %d entries in %d bytes", ErrCorrupt, count, size)
	}
	index := make([]byte, count*PackIndexEntrySize)
	if _, err := r.ReadAt(index, data); err != nil {
		return nil, fmt.Errorf("pack index: %w", err)
	}
	p := &PackReader{r: r, size: size, entries: make([]PackEntry, count)}
	for i := range p.entries {
		e := &p.entries[i]
		raw := index[i*PackIndexEntrySize:]
		copy(e.ID[:], raw[:32])
		e.Off, e.N = binary.BigEndian.Uint32(raw[32:]), binary.BigEndian.Uint32(raw[36:])
		if int64(e.Off)+int64(e.N) > data || e.N == 0 {
			return nil, fmt.Errorf("%w: pack entry %d: bytes %d+%d of %d", ErrCorrupt, i, e.Off, e.N, data)
		}
	}
	return p, nil
}

// Entries are the pack's chunks in the order they were added.
func (p *PackReader) Entries() []PackEntry { return p.entries }

// Size is the pack's size in bytes.
func (p *PackReader) Size() int64 { return p.size }

// Chunk reads the stored bytes of entry e (EncodeChunk's output).
func (p *PackReader) Chunk(e PackEntry) ([]byte, error) {
	b := make([]byte, e.N)
	if _, err := p.r.ReadAt(b, int64(e.Off)); err != nil {
		return nil, fmt.Errorf("pack chunk %s: %w", e.ID, err)
	}
	return b, nil
}

// Loc is where entry e is, as a segment records it.
func (p *PackReader) Loc(id PackID, e PackEntry) Loc {
	return Loc{ID: e.ID, Pack: id, PackSize: uint32(p.size), Off: e.Off, N: e.N}
}
