package cow

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/cowvol/cowvol/meta"
)

// Snapshot storage layout (keys in a snapstore.Store):
//
//	packs/<p[:2]>/<p>               many chunks (blocks, each zstd-compressed) and an index; p random
//	segments/<h[:2]>/<h>            a segment: block -> chunk (ID, pack, offset, length) for 65536 blocks
//	snapshots/<snap-id>/manifest    the manifest root (JSON, checksummed: manifest_sum.go), written last
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

// manifest is the root object of a snapshot: what it is and where its
// segments are. It is written after every chunk and segment it names is
// durable, so a reader never sees a partial snapshot.
//
// An encrypted snapshot's manifest says so (Encryption: the KMS key, the
// wrapped data key, the lineage) and keeps what describes the snapshot in
// the clear, for every daemon's catalogue; its segment list is sealed
// (Sealed: a random nonce and the AES-256-GCM seal of the list, the rest
// of the manifest as additional data, so that no field can be altered
// unnoticed by a reader with the key). Refs names the segment objects for
// collectors, which have no key. Checksum (format version 2, see
// manifest_sum.go) covers every byte of the stored object, so that a
// damaged manifest, plaintext or encrypted, fails to decode everywhere,
// in a collector too.
type manifest struct {
	// Version and Checksum come first, in this order: the format puts
	// them at the start of the object.
	Version    int       `json:"version"`
	Checksum   string    `json:"checksum,omitempty"`
	SnapshotID string    `json:"snapshotId"`
	VolumeID   string    `json:"volumeId"`
	VolumeSize int64     `json:"volumeSize"` // bytes
	BlockSize  int       `json:"blockSize"`
	StartTime  time.Time `json:"startTime"`
	// CompletionTime: when the flush stored the manifest.
	CompletionTime time.Time           `json:"completionTime,omitzero"`
	Description    string              `json:"description,omitempty"`
	Tags           []Tag               `json:"tags,omitempty"`
	OwnerID        string              `json:"ownerId,omitempty"`
	OutpostArn     string              `json:"outpostArn,omitempty"`
	DataBytes      int64               `json:"dataBytes"` // non-zero blocks × block size
	Encryption     *manifestEncryption `json:"encryption,omitempty"`
	Refs           []string            `json:"refs,omitempty"`
	Sealed         []byte              `json:"sealed,omitempty"`
	// Segments: in the clear for a plaintext snapshot; an encrypted
	// one's once opened (openManifest).
	Segments []segmentRef `json:"segments,omitempty"`
}

// manifestEncryption is meta.Encryption as manifests spell it.
type manifestEncryption struct {
	KMSKeyARN  string `json:"kmsKeyArn"`
	WrappedKey []byte `json:"wrappedKey"`
	DataKeyID  string `json:"dataKeyId"`
}

func (m *manifestEncryption) meta() *meta.Encryption {
	if m == nil {
		return nil
	}
	return &meta.Encryption{KMSKeyARN: m.KMSKeyARN, WrappedKey: m.WrappedKey, DataKeyID: m.DataKeyID}
}

func manifestEncryptionOf(e *meta.Encryption) *manifestEncryption {
	if e == nil {
		return nil
	}
	return &manifestEncryption{KMSKeyARN: e.KMSKeyARN, WrappedKey: e.WrappedKey, DataKeyID: e.DataKeyID}
}

// segmentRef names the segment object of segment Index.
type segmentRef struct {
	Index  uint64 `json:"i"`
	Key    string `json:"key"`
	Blocks int    `json:"n"` // non-zero blocks in it
}

// encodeManifest serialises m in the format version written; under a
// lineage's keys k (which must be m's) its segment list is sealed.
func encodeManifest(k *lineageKeys, m *manifest) ([]byte, error) {
	m.Version, m.Checksum = manifestVersion, ""
	if k == nil {
		return marshalManifest(m)
	}
	pub := *m
	pub.Encryption = manifestEncryptionOf(&k.enc)
	pub.Segments, pub.Sealed, pub.Refs = nil, nil, nil
	for _, sr := range m.Segments {
		pub.Refs = append(pub.Refs, sr.Key)
	}
	aad, err := json.Marshal(&pub)
	if err != nil {
		return nil, err
	}
	private, err := json.Marshal(m.Segments)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, k.meta.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("manifest nonce: %w", err)
	}
	pub.Sealed = k.meta.Seal(nonce, nonce, private, aad)
	return marshalManifest(&pub)
}

// decodeManifest decodes and checks what any daemon can of a manifest: its
// format version and checksum (unmarshalManifest), its geometry, its
// segment list; an encrypted one's segments stay sealed until openManifest.
// Every failure is ErrCorrupt.
func decodeManifest(b []byte) (*manifest, error) {
	m, err := unmarshalManifest(b)
	if err != nil {
		return nil, err
	}
	if m.BlockSize < MinBlockSize || m.BlockSize > MaxBlockSize || m.VolumeSize <= 0 || m.VolumeSize%int64(m.BlockSize) != 0 {
		return nil, fmt.Errorf("%w: manifest geometry %d/%d", ErrCorrupt, m.VolumeSize, m.BlockSize)
	}
	if m.Encryption != nil {
		// Segments present, even empty, would read as already opened.
		if m.Segments != nil || len(m.Sealed) == 0 {
			return nil, fmt.Errorf("%w: an encrypted manifest with its segments in the clear", ErrCorrupt)
		}
		for i, key := range m.Refs {
			if _, ok := segmentSum(key); !ok {
				return nil, fmt.Errorf("%w: manifest reference %d is %q", ErrCorrupt, i, key)
			}
		}
		return m, nil
	}
	if len(m.Sealed) != 0 || len(m.Refs) != 0 {
		return nil, fmt.Errorf("%w: a plaintext manifest with sealed parts", ErrCorrupt)
	}
	if err := m.checkSegments(); err != nil {
		return nil, err
	}
	return m, nil
}

// openManifest unseals an encrypted manifest's segment list with its
// lineage's keys k, checking the whole manifest on the way.
func openManifest(k *lineageKeys, m *manifest) error {
	if m.Encryption == nil || m.Segments != nil {
		return nil
	}
	if k == nil || !sameLineage(&k.enc, m.Encryption.meta()) {
		return fmt.Errorf("%w: manifest of %s opened with another lineage's key", ErrCorrupt, m.SnapshotID)
	}
	// The additional data is the clear part as encodeManifest sealed
	// it: before the checksum (which covers the seal) was stamped.
	pub := *m
	pub.Sealed, pub.Checksum = nil, ""
	aad, err := json.Marshal(&pub)
	if err != nil {
		return err
	}
	ns := k.meta.NonceSize()
	if len(m.Sealed) < ns {
		return fmt.Errorf("%w: manifest of %s: sealed part truncated", ErrCorrupt, m.SnapshotID)
	}
	private, err := k.meta.Open(nil, m.Sealed[:ns], m.Sealed[ns:], aad)
	if err != nil {
		return fmt.Errorf("%w: manifest of %s fails authentication", ErrCorrupt, m.SnapshotID)
	}
	var segs []segmentRef
	if err := json.Unmarshal(private, &segs); err != nil {
		return fmt.Errorf("%w: manifest of %s: %v", ErrCorrupt, m.SnapshotID, err)
	}
	opened := *m
	opened.Segments = segs
	if err := opened.checkSegments(); err != nil {
		return err
	}
	if len(segs) != len(m.Refs) {
		return fmt.Errorf("%w: manifest of %s: %d references for %d segments", ErrCorrupt, m.SnapshotID, len(m.Refs), len(segs))
	}
	for i, sr := range segs {
		if m.Refs[i] != sr.Key {
			return fmt.Errorf("%w: manifest of %s: reference %d is not segment %d", ErrCorrupt, m.SnapshotID, i, sr.Index)
		}
	}
	m.Segments = segs
	if m.Segments == nil {
		m.Segments = []segmentRef{} // opened: empty, not sealed
	}
	return nil
}

// checkSegments: readers binary-search the segments by index, and a segment
// past the volume's end names no block: sorted, unique, in range; each
// names a segment object and counts at most a segment's blocks.
func (m *manifest) checkSegments() error {
	last := uint64(m.VolumeSize/int64(m.BlockSize)-1) >> segmentShift
	for i, sr := range m.Segments {
		if sr.Index > last || i > 0 && sr.Index <= m.Segments[i-1].Index {
			return fmt.Errorf("%w: manifest segment %d has index %d (want ascending, unique, at most %d)", ErrCorrupt, i, sr.Index, last)
		}
		if _, ok := segmentSum(sr.Key); !ok {
			return fmt.Errorf("%w: manifest segment %d has key %q", ErrCorrupt, i, sr.Key)
		}
		if sr.Blocks < 0 || sr.Blocks > 1<<segmentShift {
			return fmt.Errorf("%w: manifest segment %d has %d blocks", ErrCorrupt, i, sr.Blocks)
		}
	}
	return nil
}

// segmentKeys are the keys of the segment objects m names, for a collector:
// an encrypted manifest's references, sealed or not.
func (m *manifest) segmentKeys() []string {
	if m.Encryption != nil {
		return m.Refs
	}
	keys := make([]string, len(m.Segments))
	for i, sr := range m.Segments {
		keys[i] = sr.Key
	}
	return keys
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

// chunkIDOf names block: its SHA-256, or in an encrypted lineage (k not
// nil) the lineage's HMAC-SHA256 of it.
func chunkIDOf(k *lineageKeys, block []byte) chunkID {
	if k != nil {
		return k.chunkID(block)
	}
	return sha256.Sum256(block)
}

// encodeChunk compresses block (named id) for storage, appending to dst. In
// an encrypted lineage the compressed chunk is then sealed with AES-256-GCM,
// the nonce the ID's first 12 bytes and the ID the additional data: as the
// ID is a keyed hash of the block, equal blocks seal alike (and dedupe) and
// different blocks never share a nonce.
func encodeChunk(k *lineageKeys, dst []byte, id chunkID, block []byte) []byte {
	start := len(dst)
	dst = zstdEncoder().EncodeAll(block, dst)
	if k == nil {
		return dst
	}
	dst = slices.Grow(dst, k.chunk.Overhead())
	sealed := k.chunk.Seal(dst[start:start], id[:k.chunk.NonceSize()], dst[start:], id[:])
	return dst[:start+len(sealed)]
}

// openChunk undoes the sealing of an encrypted lineage's chunk, into a
// fresh buffer (stored may be a shared cache window); a plaintext chunk is
// returned as it is.
func openChunk(k *lineageKeys, id chunkID, stored []byte) ([]byte, error) {
	if k == nil {
		return stored, nil
	}
	z, err := k.chunk.Open(nil, id[:k.chunk.NonceSize()], stored, id[:])
	if err != nil {
		return nil, fmt.Errorf("%w: chunk %s fails authentication", ErrCorrupt, id)
	}
	return z, nil
}

// verifyChunk checks a stored chunk against its ID, block size unknown.
func verifyChunk(k *lineageKeys, id chunkID, stored []byte) error {
	z, err := openChunk(k, id, stored)
	if err != nil {
		return err
	}
	out, err := zstdDecoder().DecodeAll(z, nil)
	if err != nil {
		return fmt.Errorf("%w: chunk %s: %v", ErrCorrupt, id, err)
	}
	if chunkIDOf(k, out) != id {
		return fmt.Errorf("%w: chunk %s fails its checksum", ErrCorrupt, id)
	}
	return nil
}

// decodeChunk decompresses a stored block into dst (len = block size) and
// verifies it against its ID.
func decodeChunk(k *lineageKeys, id chunkID, stored, dst []byte) error {
	z, err := openChunk(k, id, stored)
	if err != nil {
		return err
	}
	out, err := zstdDecoder().DecodeAll(z, dst[:0])
	if err != nil {
		return fmt.Errorf("%w: chunk %s: %v", ErrCorrupt, id, err)
	}
	if len(out) != len(dst) || &out[0] != &dst[0] {
		if len(out) != len(dst) {
			return fmt.Errorf("%w: chunk %s has %d bytes, want %d", ErrCorrupt, id, len(out), len(dst))
		}
		copy(dst, out)
	}
	if chunkIDOf(k, dst) != id {
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
