package cow

import (
	"errors"
	"fmt"
	"time"
)

// Snapshot errors, for callers to test with errors.Is.
var (
	// ErrSnapshotNotFound: no snapshot has the given ID.
	ErrSnapshotNotFound = errors.New("snapshot not found")
	// ErrConcurrentSnapshotLimit: the volume has MaxPendingSnapshots
	// pending snapshots already.
	ErrConcurrentSnapshotLimit = errors.New("too many pending snapshots for the volume")
	// ErrIncorrectState: the resource is not in a state that allows the
	// operation (a snapshot that is not completed, a volume with pending
	// snapshots being deleted).
	ErrIncorrectState = errors.New("incorrect state")
	// ErrOutpostMismatch: CreateSnapshot named an Outpost other than
	// the daemon's own.
	ErrOutpostMismatch = errors.New("the snapshot must be created on the same Outpost as the volume")
)

// MaxPendingSnapshots is EC2's limit of pending snapshots per volume.
const MaxPendingSnapshots = 5

// MaxDescriptionLen is the longest snapshot description EC2 accepts.
const MaxDescriptionLen = 255

// SnapshotState is a snapshot's state, named as EC2 names them.
type SnapshotState string

// The snapshot states cowvol uses.
const (
	SnapshotPending   SnapshotState = "pending"
	SnapshotCompleted SnapshotState = "completed"
	SnapshotError     SnapshotState = "error"
)

// Store names: which snapshot store holds a snapshot.
const (
	StoreRegional = "regional" // --snapshot-store
	StoreLocal    = "local"    // --local-snapshot-store, on an Outpost
)

// SnapshotInfo describes a snapshot as the control plane reports it.
type SnapshotInfo struct {
	ID             string
	VolumeID       string
	State          SnapshotState
	Progress       int // percent, 0..100
	StartTime      time.Time
	CompletionTime time.Time // zero until completed
	Description    string
	Tags           []Tag
	VolumeSize     int64 // bytes
	BlockSize      int
	Encrypted      bool
	OutpostArn     string // set when stored on the daemon's Outpost (local store)
	StatusMessage  string // why it is in state error
	// DataBytes is the size of the snapshot's non-zero data (EC2's
	// fullSnapshotSizeInBytes), known once completed.
	DataBytes   int64
	StorageTier string // "standard" or "archive"
	// RestoreExpiryTime: when a temporary restore from the archive tier
	// ends; zero otherwise.
	RestoreExpiryTime time.Time
	// OwnerID is the account that created it (another daemon's, for a
	// snapshot found in a shared store).
	OwnerID string
	// KMSKeyARN is the KMS key that protects an encrypted snapshot's
	// data key; DataKeyID names the data key's lineage (EC2's
	// dataEncryptionKeyId).
	KMSKeyARN string
	DataKeyID string
	// CopyOf is the source of a snapshot made by CopySnapshot.
	CopyOf string
	// CreateVolumeUsers are the accounts besides the owner that may
	// create volumes from the snapshot (createVolumePermission);
	// CreateVolumeAll: every account may.
	CreateVolumeUsers []string
	CreateVolumeAll   bool
}

// CreateSnapshotParams are the inputs to Engine.CreateSnapshot.
type CreateSnapshotParams struct {
	VolumeID    string
	Description string
	Tags        []Tag
	// SystemTags are tags the daemon itself sets, whose keys begin with
	// aws: (a lifecycle policy's aws:dlm: tags); never a client's. They
	// count towards MaxTags with Tags.
	SystemTags []Tag
	// OutpostArn: empty stores the snapshot in the regional store; the
	// daemon's own Outpost ARN stores it in the local store; any other
	// value is refused with ErrOutpostMismatch.
	OutpostArn string
}

func validateSnapshotParams(p CreateSnapshotParams) error {
	if len(p.Description) > MaxDescriptionLen {
		return fmt.Errorf("%w: description longer than %d characters", ErrInvalidParameter, MaxDescriptionLen)
	}
	if err := ValidateTags(p.Tags); err != nil {
		return err
	}
	return validateSystemTags(p.SystemTags, len(p.Tags))
}
