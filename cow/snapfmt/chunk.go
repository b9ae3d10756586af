package snapfmt

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// ChunkID is the SHA-256 of a block's content (in an encrypted lineage, the
// lineage's HMAC-SHA256 of it).
type ChunkID [sha256.Size]byte

func (c ChunkID) String() string { return hex.EncodeToString(c[:]) }

// PackID names a pack object (random: packs are not shared between
// flushes, so content addressing would buy nothing).
type PackID [16]byte

func (p PackID) String() string { return hex.EncodeToString(p[:]) }

// NewPackID returns a fresh random pack ID.
func NewPackID() (PackID, error) {
	var p PackID
	if _, err := rand.Read(p[:]); err != nil {
		return p, fmt.Errorf("pack ID: %w", err)
	}
	return p, nil
}

// Loc is where a block's stored chunk is: a byte range of a pack, or
// (format 1, pack zero) a chunk object of its own.
type Loc struct {
	ID   ChunkID
	Pack PackID
	// PackSize is the pack's length, so that readers can read ahead
	// within it without running past its end.
	PackSize uint32
	Off, N   uint32 // the compressed chunk within the pack
}

// InPack reports whether the chunk is in a pack (format 2).
func (l Loc) InPack() bool { return l.Pack != PackID{} }

// ObjectKey is the key of the object holding the chunk.
func (l Loc) ObjectKey() string {
	if l.InPack() {
		return PackKey(l.Pack)
	}
	return ChunkKey(l.ID)
}

// ChunkIDOf names block: its SHA-256, or in an encrypted lineage (k not
// nil) the lineage's HMAC-SHA256 of it.
func ChunkIDOf(k *Keys, block []byte) ChunkID {
	if k != nil {
		return k.ChunkID(block)
	}
	return sha256.Sum256(block)
}

// EncodeChunk compresses block (named id) for storage, appending to dst. In
// an encrypted lineage the compressed chunk is then sealed with AES-256-GCM,
// the nonce the ID's first 12 bytes and the ID the additional data: as the
// ID is a keyed hash of the block, equal blocks seal alike (and dedupe) and
// different blocks never share a nonce.
func EncodeChunk(k *Keys, dst []byte, id ChunkID, block []byte) []byte {
	start := len(dst)
	dst = ZstdEncoder().EncodeAll(block, dst)
	if k == nil {
		return dst
	}
	dst = slices.Grow(dst, k.chunk.Overhead())
	sealed := k.chunk.Seal(dst[start:start], id[:k.chunk.NonceSize()], dst[start:], id[:])
	return dst[:start+len(sealed)]
}

// OpenChunk undoes the sealing of an encrypted lineage's chunk, into a
// fresh buffer (stored may be a shared cache window); a plaintext chunk is
// returned as it is.
func OpenChunk(k *Keys, id ChunkID, stored []byte) ([]byte, error) {
	if k == nil {
		return stored, nil
	}
	z, err := k.chunk.Open(nil, id[:k.chunk.NonceSize()], stored, id[:])
	if err != nil {
		return nil, fmt.Errorf("%w: chunk %s fails authentication", ErrCorrupt, id)
	}
	return z, nil
}

// VerifyChunk checks a stored chunk against its ID, block size unknown.
func VerifyChunk(k *Keys, id ChunkID, stored []byte) error {
	z, err := OpenChunk(k, id, stored)
	if err != nil {
		return err
	}
	out, err := ZstdDecoder().DecodeAll(z, nil)
	if err != nil {
		return fmt.Errorf("%w: chunk %s: %v", ErrCorrupt, id, err)
	}
	if ChunkIDOf(k, out) != id {
		return fmt.Errorf("%w: chunk %s fails its checksum", ErrCorrupt, id)
	}
	return nil
}

// DecodeChunk decompresses a stored block into dst (len = block size) and
// verifies it against its ID.
func DecodeChunk(k *Keys, id ChunkID, stored, dst []byte) error {
	z, err := OpenChunk(k, id, stored)
	if err != nil {
		return err
	}
	out, err := ZstdDecoder().DecodeAll(z, dst[:0])
	if err != nil {
		return fmt.Errorf("%w: chunk %s: %v", ErrCorrupt, id, err)
	}
	if len(out) != len(dst) || len(dst) > 0 && &out[0] != &dst[0] {
		if len(out) != len(dst) {
			return fmt.Errorf("%w: chunk %s has %d bytes, want %d", ErrCorrupt, id, len(out), len(dst))
		}
		copy(dst, out)
	}
	if ChunkIDOf(k, dst) != id {
		return fmt.Errorf("%w: chunk %s fails its checksum", ErrCorrupt, id)
	}
	return nil
}

var (
	zstdOnce sync.Once
	zEnc     *zstd.Encoder
	zDec     *zstd.Decoder
)

// ZstdEncoder and ZstdDecoder are shared: EncodeAll and DecodeAll are safe
// for concurrent use. The decoder refuses frames needing over 64 MiB.
func ZstdEncoder() *zstd.Encoder { zstdInit(); return zEnc }

// ZstdDecoder: see ZstdEncoder.
func ZstdDecoder() *zstd.Decoder { zstdInit(); return zDec }

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
