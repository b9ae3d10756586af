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
)

// VolumeState is a volume's lifecycle state, named as EC2 names them.
type VolumeState string

// The volume states a volume can be in. A volume is in-use while its file
// is open. (EC2's creating and deleted never show here: a volume is
// available when CreateVolume returns, and gone once DeleteVolume has
// finished.)
const (
	VolumeAvailable VolumeState = "available"
	VolumeInUse     VolumeState = "in-use"
	VolumeDeleting  VolumeState = "deleting"
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
	// HydratedSegments of HydrationSegments: the progress of the running
	// hydration pass, in the snapshot's segments (0 of 0 before the pass
	// has read the manifest; only while Hydrating).
	HydratedSegments, HydrationSegments int64
	// Redirects counts the writes that went to a fresh slot since the
	// server started: a block's first write in a generation (its first
	// ever, or its first since a snapshot: copy-on-write).
	Redirects uint64
	// DirtyBlocks are the blocks written whose map entries are not yet
	// synced (fsync, or the sync interval, makes them durable), with the
	// writes under way: what a crash now would lose unless fsynced.
	DirtyBlocks int
	// Status is the volume's health, as DescribeVolumeStatus reports it:
	// impaired while blocks of the snapshot it was restored from cannot
	// be read (State stays available or in-use: the other blocks work).
	Status VolumeStatus
	// Faults say why a volume is impaired: the objects of its snapshot
	// that cannot be read, oldest first, at most 16 of them; FaultCount
	// is how many there are.
	Faults     []VolumeFault
	FaultCount int
}

// VolumeStatus is a volume's health, named as EC2's volume status checks
// name it.
type VolumeStatus string

// The volume statuses cowvol reports.
const (
	VolumeStatusOK       VolumeStatus = "ok"
	VolumeStatusImpaired VolumeStatus = "impaired"
)

// VolumeFault is an object of the snapshot a volume was restored from that
// cannot be read: corrupt (it fails verification, fetched twice) or
// missing. Reads of the blocks that need it fail (ErrImpaired); a write of
// a whole block gives the block data of its own, so it no longer needs it.
type VolumeFault struct {
	SnapshotID string
	// Key is the object in the snapshot store: a pack, a segment, or
	// the volume's hold of the snapshot's manifest.
	Key   string
	Err   error
	Since time.Time // when it was first found
	// Blocks counts the blocks known to need a pack's chunk (MoreBlocks:
	// and more than that). A segment or the manifest is needed by every
	// block from FirstBlock to EndBlock (exclusive) not written since.
	Blocks               int
	MoreBlocks           bool
	FirstBlock, EndBlock uint64
}

// Reason says what the fault is, naming the snapshot, the object and the error.
func (f VolumeFault) Reason() string {
	var need string
	switch {
	case f.EndBlock > 0:
		need = fmt.Sprintf("blocks %d to %d not written since need it", f.FirstBlock, f.EndBlock-1)
	case f.MoreBlocks:
		need = fmt.Sprintf("more than %d blocks need it", f.Blocks)
	case f.Blocks == 1:
		need = "1 block needs it"
	default:
		need = fmt.Sprintf("%d blocks need it", f.Blocks)
	}
	return fmt.Sprintf("snapshot %s: object %s cannot be read (%s; reads of a block that needs it fail, a write of the whole block replaces it): %v",
		f.SnapshotID, f.Key, need, f.Err)
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
