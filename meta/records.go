package meta

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"
)

// Tag is a key/value pair on a resource.
type Tag struct {
	Key   string `json:"k"`
	Value string `json:"v"`
}

// VolumeRecord is the persistent description of a volume.
type VolumeRecord struct {
	ID         string    `json:"id"`
	Size       int64     `json:"size"`       // bytes
	BlockSize  int       `json:"block_size"` // bytes
	Generation uint64    `json:"gen"`        // current generation G
	CreateTime time.Time `json:"created"`
	Tags       []Tag     `json:"tags,omitempty"`
	SnapshotID string    `json:"snapshot_id,omitempty"`
	// ClientToken and ParamsDigest make CreateVolume idempotent.
	ClientToken  string `json:"client_token,omitempty"`
	ParamsDigest string `json:"params_digest,omitempty"`
	// Deleting is set when deletion has begun; a volume found so at start
	// is deleted again.
	Deleting bool `json:"deleting,omitempty"`

	// BaseManifest is the key (in snapshot store BaseStore) of the manifest
	// that holds the volume's content as of generation BaseGen: the newest
	// completed snapshot, or for a volume created from a snapshot, the
	// copy of that snapshot's manifest it holds until it has its own.
	// The next snapshot uploads only the versions born after BaseGen.
	BaseManifest string `json:"base_manifest,omitempty"`
	BaseStore    string `json:"base_store,omitempty"`
	BaseGen      uint64 `json:"base_gen,omitempty"`
	// Hydrating: blocks not in the live map are read from BaseManifest
	// (a volume created from a snapshot, until every block is local).
	Hydrating bool `json:"hydrating,omitempty"`
	// FastRestore: created from a snapshot with fast snapshot restores
	// enabled; it hydrates at full speed and is creating until hydrated.
	FastRestore bool `json:"fast_restore,omitempty"`

	// Encryption is set for an encrypted volume: its data key, wrapped.
	Encryption *Encryption `json:"encryption,omitempty"`
	// NonceHWM: every counter an encrypted volume's sectors were sealed
	// with is below it; the counters go on from here after a restart.
	NonceHWM uint64 `json:"nonce_hwm,omitempty"`
	// SlotStride is a slot's length in the data file, when it is not
	// the block and its sectors' seals packed together (0): an encrypted
	// volume created since the seals were padded to whole pages, so that
	// every slot starts on a page boundary (cow/slot_stride.go).
	SlotStride int64 `json:"slot_stride,omitempty"`

	// Modification is the volume's last ModifyVolume and Attachment the
	// loop device AttachVolume attached it to (volume_changes.go).
	Modification *VolumeModification `json:"modification,omitempty"`
	Attachment   *VolumeAttachment   `json:"attachment,omitempty"`
}

// Encryption says how a volume's or snapshot's data is encrypted: the data
// key, wrapped by a KMS key, and its lineage. Volumes and snapshots that
// share a data key (a snapshot of a volume, a volume from a snapshot) share
// its lineage ID, which EC2 calls the dataEncryptionKeyId.
type Encryption struct {
	KMSKeyARN  string `json:"kms_key_arn"`
	WrappedKey []byte `json:"wrapped_key"`
	DataKeyID  string `json:"data_key_id"`
}

func encodeVolume(r VolumeRecord) ([]byte, error) { return json.Marshal(r) }

func decodeVolume(b []byte) (VolumeRecord, error) {
	var r VolumeRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("meta: decode volume record: %w", err)
	}
	return r, nil
}

// Extent flags.
const (
	// ExtentZero marks a block that reads as zeros: discarded or zeroed
	// in its generation. Its Slot is meaningless.
	ExtentZero uint8 = 1 << 0
)

// Extent is one version of a block: where its data lives (Slot, an index of
// block-sized slots in the volume's data file) and the generation it was born in.
type Extent struct {
	Slot  uint64
	Gen   uint64
	Flags uint8
}

// Zero reports whether the extent is a zero (discarded) version.
func (e Extent) Zero() bool { return e.Flags&ExtentZero != 0 }

const extentLen = 1 + 8 + 8 + 1 // version, slot, gen, flags

const extentCodecVersion = 1

// EncodeExtent encodes e in its fixed 18-byte form.
func EncodeExtent(e Extent) []byte {
	b := make([]byte, 0, extentLen)
	b = append(b, extentCodecVersion)
	b = binary.BigEndian.AppendUint64(b, e.Slot)
	b = binary.BigEndian.AppendUint64(b, e.Gen)
	return append(b, e.Flags)
}

// DecodeExtent decodes an extent encoded by EncodeExtent.
func DecodeExtent(b []byte) (Extent, error) {
	if len(b) != extentLen || b[0] != extentCodecVersion {
		return Extent{}, fmt.Errorf("meta: malformed extent record (%d bytes)", len(b))
	}
	return Extent{
		Slot:  binary.BigEndian.Uint64(b[1:9]),
		Gen:   binary.BigEndian.Uint64(b[9:17]),
		Flags: b[17],
	}, nil
}
