package cow

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
)

// Snapshot storage layout (keys in a snapstore.Store):
//
//	chunks/<h[:2]>/<h>              one block, zstd-compressed; h = hex SHA-256 of the block
//	segments/<h[:2]>/<h>            a segment: block -> chunk for 65536 consecutive blocks
//	snapshots/<snap-id>/manifest    the manifest root (JSON), written last
//
// Chunks and segments are content-addressed, so identical blocks are stored
// once across snapshots and volumes, an incremental snapshot writes only the
// segments that changed, and re-uploading after a crash is idempotent.
// All-zero blocks are not stored: a block missing from its segment reads as
// zeros.

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

func manifestKey(snapID string) string { return "snapshots/" + snapID + "/manifest" }

const manifestVersion = 1

// manifest is the root object of a snapshot: what it is and where its
// segments are. It is written after every chunk and segment it names is
// durable, so a reader never sees a partial snapshot.
type manifest struct {
	Version     int          `json:"version"`
	SnapshotID  string       `json:"snapshotId"`
	VolumeID    string       `json:"volumeId"`
	VolumeSize  int64        `json:"volumeSize"` // bytes
	BlockSize   int          `json:"blockSize"`
	StartTime   time.Time    `json:"startTime"`
	Description string       `json:"description,omitempty"`
	Tags        []Tag        `json:"tags,omitempty"`
	OwnerID     string       `json:"ownerId,omitempty"`
	OutpostArn  string       `json:"outpostArn,omitempty"`
	DataBytes   int64        `json:"dataBytes"` // non-zero blocks × block size
	Segments    []segmentRef `json:"segments"`
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
	return &m, nil
}

// segment maps block offsets within one segment to chunks.
type segment map[uint32]chunkID

var segmentMagic = []byte("CVSG\x01")

// encodeSegment serialises a segment: magic, count, then entries sorted by
// block (delta-coded uvarint) each with its chunk ID; zstd-compressed.
func encodeSegment(s segment) []byte {
	blks := make([]uint32, 0, len(s))
	for b := range s {
		blks = append(blks, b)
	}
	sort.Slice(blks, func(i, j int) bool { return blks[i] < blks[j] })
	raw := make([]byte, 0, len(segmentMagic)+binary.MaxVarintLen64+len(s)*(sha256.Size+3))
	raw = append(raw, segmentMagic...)
	raw = binary.AppendUvarint(raw, uint64(len(s)))
	prev := uint32(0)
	for _, b := range blks {
		raw = binary.AppendUvarint(raw, uint64(b-prev))
		id := s[b]
		raw = append(raw, id[:]...)
		prev = b
	}
	return zstdEncoder().EncodeAll(raw, nil)
}

func decodeSegment(b []byte) (segment, error) {
	raw, err := zstdDecoder().DecodeAll(b, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: segment: %v", ErrCorrupt, err)
	}
	if !bytes.HasPrefix(raw, segmentMagic) {
		return nil, fmt.Errorf("%w: segment magic", ErrCorrupt)
	}
	raw = raw[len(segmentMagic):]
	n, k := binary.Uvarint(raw)
	if k <= 0 || n > 1<<segmentShift {
		return nil, fmt.Errorf("%w: segment count", ErrCorrupt)
	}
	raw = raw[k:]
	s := make(segment, n)
	blk := uint64(0)
	for i := uint64(0); i < n; i++ {
		d, k := binary.Uvarint(raw)
		if k <= 0 || len(raw) < k+sha256.Size {
			return nil, fmt.Errorf("%w: segment entry %d", ErrCorrupt, i)
		}
		blk += d
		if blk >= 1<<segmentShift || (i > 0 && d == 0) {
			return nil, fmt.Errorf("%w: segment block %d", ErrCorrupt, blk)
		}
		var id chunkID
		copy(id[:], raw[k:])
		s[uint32(blk)] = id
		raw = raw[k+sha256.Size:]
	}
	if len(raw) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes in segment", ErrCorrupt, len(raw))
	}
	return s, nil
}

// encodeChunk compresses a block for storage.
func encodeChunk(data []byte) []byte { return zstdEncoder().EncodeAll(data, nil) }

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
