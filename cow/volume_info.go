package cow

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"regexp"
	"time"

	"github.com/cowvol/cowvol/meta"
)

// Limits on volume geometry.
const (
	MinBlockSize     = 4 << 10  // 4 KiB
	MaxBlockSize     = 1 << 20  // 1 MiB
	DefaultBlockSize = 64 << 10 // 64 KiB: the copy-on-write grain
	MaxVolumeSize    = 64 << 40 // 64 TiB
	MaxTags          = 50       // as EC2
	MaxTagKeyLen     = 127
	MaxTagValueLen   = 255
)

// VolumeState is a volume's lifecycle state, named as EC2 names them.
type VolumeState string

// The volume states. A volume is in-use while its file is open.
const (
	VolumeCreating  VolumeState = "creating"
	VolumeAvailable VolumeState = "available"
	VolumeInUse     VolumeState = "in-use"
	VolumeDeleting  VolumeState = "deleting"
	VolumeDeleted   VolumeState = "deleted"
	VolumeError     VolumeState = "error"
)

// Tag is a key/value pair attached to a resource.
type Tag struct {
	Key   string
	Value string
}

// VolumeInfo describes a volume as the control plane reports it.
type VolumeInfo struct {
	ID         string
	Size       int64 // bytes
	BlockSize  int   // bytes
	State      VolumeState
	CreateTime time.Time
	Tags       []Tag
	SnapshotID string // the snapshot the volume was created from, if any
	Encrypted  bool
	// KMSKeyARN is the KMS key that protects an encrypted volume's data
	// key; DataKeyID names the data key's lineage.
	KMSKeyARN string
	DataKeyID string
	// OpenCount is the number of open handles on the volume file.
	OpenCount int
	// AllocatedBytes is the block data the volume holds in the data
	// directory (written blocks times block size).
	AllocatedBytes int64
	// Hydrating: some blocks are still read from the snapshot.
	Hydrating bool
}

func tagsToMeta(tags []Tag) []meta.Tag {
	var out []meta.Tag
	for _, t := range tags {
		out = append(out, meta.Tag{Key: t.Key, Value: t.Value})
	}
	return out
}

func tagsFromMeta(tags []meta.Tag) []Tag {
	var out []Tag
	for _, t := range tags {
		out = append(out, Tag{Key: t.Key, Value: t.Value})
	}
	return out
}

// CreateVolumeParams are the inputs to Engine.CreateVolume.
type CreateVolumeParams struct {
	Size        int64 // bytes; a multiple of BlockSize
	BlockSize   int   // bytes; 0 means DefaultBlockSize
	Tags        []Tag
	ClientToken string // idempotency token; empty means none
	// SnapshotID creates the volume from a completed snapshot. Size 0
	// then means the snapshot's size; a larger size is allowed, a smaller
	// one is not. BlockSize 0 means the snapshot's.
	SnapshotID string
	// Encrypted makes the volume encrypted, under a fresh data key
	// wrapped by the KMS key KMSKeyID names ("": the default key). A
	// volume from an encrypted snapshot is encrypted whatever Encrypted
	// says, under the snapshot's data key; KMSKeyID may then only name
	// the snapshot's KMS key.
	Encrypted bool
	KMSKeyID  string
}

var (
	volumeIDPattern   = regexp.MustCompile(`^vol-[0-9a-f]{17}$`)
	snapshotIDPattern = regexp.MustCompile(`^snap-[0-9a-f]{17}$`)
)

// ValidVolumeID reports whether id has the form vol- plus 17 lowercase hex digits.
func ValidVolumeID(id string) bool { return volumeIDPattern.MatchString(id) }

// ValidSnapshotID reports whether id has the form snap- plus 17 lowercase hex digits.
func ValidSnapshotID(id string) bool { return snapshotIDPattern.MatchString(id) }

// newID returns prefix + "-" + 17 random lowercase hex digits.
func newID(prefix string) string {
	var b [9]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // never fails on Linux
	}
	return prefix + "-" + hex.EncodeToString(b[:])[:17]
}

// ValidateGeometry checks a volume size and block size (both in bytes).
func ValidateGeometry(size int64, blockSize int) error {
	if blockSize < MinBlockSize || blockSize > MaxBlockSize || blockSize&(blockSize-1) != 0 {
		return fmt.Errorf("%w: %d bytes (want a power of two from %d to %d)", ErrInvalidBlockSize, blockSize, MinBlockSize, MaxBlockSize)
	}
	if size <= 0 {
		return fmt.Errorf("%w: %d bytes (must be positive)", ErrInvalidSize, size)
	}
	if size > MaxVolumeSize {
		return fmt.Errorf("%w: %d bytes (at most 64 TiB)", ErrInvalidSize, size)
	}
	if size%int64(blockSize) != 0 {
		return fmt.Errorf("%w: %d bytes is not a multiple of the block size %d", ErrInvalidSize, size, blockSize)
	}
	return nil
}

// ValidateTags checks tag count and lengths the way EC2 does.
func ValidateTags(tags []Tag) error {
	if len(tags) > MaxTags {
		return fmt.Errorf("%w: %d tags (at most %d)", ErrInvalidParameter, len(tags), MaxTags)
	}
	seen := make(map[string]bool, len(tags))
	for _, t := range tags {
		switch {
		case t.Key == "":
			return fmt.Errorf("%w: empty tag key", ErrInvalidParameter)
		case len(t.Key) > MaxTagKeyLen:
			return fmt.Errorf("%w: tag key longer than %d characters", ErrInvalidParameter, MaxTagKeyLen)
		case len(t.Value) > MaxTagValueLen:
			return fmt.Errorf("%w: tag value longer than %d characters", ErrInvalidParameter, MaxTagValueLen)
		case seen[t.Key]:
			return fmt.Errorf("%w: duplicate tag key %q", ErrInvalidParameter, t.Key)
		}
		seen[t.Key] = true
	}
	return nil
}
