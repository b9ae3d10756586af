package snapfmt

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"time"
)

// Tag is a snapshot's tag as manifests spell it.
type Tag struct {
	Key   string
	Value string
}

// Manifest is the root object of a snapshot: what it is and where its
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
type Manifest struct {
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
	CompletionTime time.Time   `json:"completionTime,omitzero"`
	Description    string      `json:"description,omitempty"`
	Tags           []Tag       `json:"tags,omitempty"`
	OwnerID        string      `json:"ownerId,omitempty"`
	OutpostArn     string      `json:"outpostArn,omitempty"`
	DataBytes      int64       `json:"dataBytes"` // non-zero blocks × block size
	Encryption     *Encryption `json:"encryption,omitempty"`
	Refs           []string    `json:"refs,omitempty"`
	Sealed         []byte      `json:"sealed,omitempty"`
	// Segments: in the clear for a plaintext snapshot; an encrypted
	// one's once opened (OpenManifest).
	Segments []SegmentRef `json:"segments,omitempty"`
}

// SegmentRef names the segment object of segment Index.
type SegmentRef struct {
	Index  uint64 `json:"i"`
	Key    string `json:"key"`
	Blocks int    `json:"n"` // non-zero blocks in it
}

// EncodeManifest serialises m in the format version written; under a
// lineage's keys k (which must be m's) its segment list is sealed.
func EncodeManifest(k *Keys, m *Manifest) ([]byte, error) {
	m.Version, m.Checksum = manifestVersion, ""
	if k == nil {
		return marshalManifest(m)
	}
	pub := *m
	enc := k.Lineage
	pub.Encryption = &enc
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

// DecodeManifest decodes and checks what any daemon can of a manifest: its
// format version and checksum (unmarshalManifest), its geometry, its
// segment list; an encrypted one's segments stay sealed until OpenManifest.
// Every failure is ErrCorrupt.
func DecodeManifest(b []byte) (*Manifest, error) {
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
			if _, ok := SegmentSum(key); !ok {
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

// OpenManifest unseals an encrypted manifest's segment list with its
// lineage's keys k, checking the whole manifest on the way.
func OpenManifest(k *Keys, m *Manifest) error {
	if m.Encryption == nil || m.Segments != nil {
		return nil
	}
	if k == nil || !k.Lineage.Same(m.Encryption) {
		return fmt.Errorf("%w: manifest of %s opened with another lineage's key", ErrCorrupt, m.SnapshotID)
	}
	// The additional data is the clear part as EncodeManifest sealed
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
	var segs []SegmentRef
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
		m.Segments = []SegmentRef{} // opened: empty, not sealed
	}
	return nil
}

// checkSegments: readers binary-search the segments by index, and a segment
// past the volume's end names no block: sorted, unique, in range; each
// names a segment object and counts at most a segment's blocks.
func (m *Manifest) checkSegments() error {
	last := uint64(m.VolumeSize/int64(m.BlockSize)-1) >> SegmentShift
	for i, sr := range m.Segments {
		if sr.Index > last || i > 0 && sr.Index <= m.Segments[i-1].Index {
			return fmt.Errorf("%w: manifest segment %d has index %d (want ascending, unique, at most %d)", ErrCorrupt, i, sr.Index, last)
		}
		if _, ok := SegmentSum(sr.Key); !ok {
			return fmt.Errorf("%w: manifest segment %d has key %q", ErrCorrupt, i, sr.Key)
		}
		if sr.Blocks < 0 || sr.Blocks > 1<<SegmentShift {
			return fmt.Errorf("%w: manifest segment %d has %d blocks", ErrCorrupt, i, sr.Blocks)
		}
	}
	return nil
}

// SegmentKeys are the keys of the segment objects m names, for a collector:
// an encrypted manifest's references, sealed or not.
func (m *Manifest) SegmentKeys() []string {
	if m.Encryption != nil {
		return m.Refs
	}
	keys := make([]string, len(m.Segments))
	for i, sr := range m.Segments {
		keys[i] = sr.Key
	}
	return keys
}
