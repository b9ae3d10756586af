package cow

import (
	"errors"

	"github.com/cowvol/cowvol/cow/snapstore"
	"github.com/cowvol/cowvol/meta"
)

// Sentinel errors. Callers (the control socket, the FUSE layer) decide what to
// answer by testing for these with errors.Is; every error the engine returns
// wraps one of them or is an I/O failure.
var (
	// ErrVolumeNotFound: no volume has the given ID.
	ErrVolumeNotFound = errors.New("volume not found")
	// ErrVolumeInUse: the volume file is open (for example attached to a
	// loop device), so it cannot be deleted.
	ErrVolumeInUse = errors.New("volume in use")
	// ErrInvalidSize: a volume size of zero, over MaxVolumeSize, or not a
	// multiple of the block size.
	ErrInvalidSize = errors.New("invalid volume size")
	// ErrInvalidBlockSize: a block size that is not a power of two between
	// MinBlockSize and MaxBlockSize.
	ErrInvalidBlockSize = errors.New("invalid block size")
	// ErrInvalidParameter: any other parameter the engine refuses (tags,
	// client tokens).
	ErrInvalidParameter = errors.New("invalid parameter")
	// ErrIdempotentMismatch: a ClientToken reused with different parameters.
	ErrIdempotentMismatch = errors.New("client token reused with different parameters")
	// ErrOutOfRange: I/O beyond the end of the volume.
	ErrOutOfRange = errors.New("offset beyond end of volume")
	// ErrClosed: the engine or the volume handle is closed.
	ErrClosed = errors.New("closed")
	// ErrNotOwner: the snapshot belongs to another account (another
	// daemon's, found in a shared store): it may be used, not deleted.
	ErrNotOwner = errors.New("owned by another account")
	// ErrMetadataDamaged: at open, the metadata store failed its
	// integrity checks or its records do not explain the volumes' data
	// files (a *meta.DamageError says what was found); nothing was
	// changed. Options.AcceptMetadataLoss opens anyway.
	ErrMetadataDamaged = meta.ErrDamaged
	// ErrNoSpace: the data directory's filesystem is full.
	ErrNoSpace = errors.New("no space left in the data directory")
	// ErrStoreFull: a snapshot store refused a write for lack of space
	// (snapstore.ErrStoreFull); its error says what the store answered.
	ErrStoreFull = snapstore.ErrStoreFull
	// ErrParameterDependency: a parameter that needs another one that is
	// missing (KmsKeyId without Encrypted).
	ErrParameterDependency = errors.New("parameter needs another")
	// ErrDataAuth: an encrypted volume's data fails authentication: its
	// data file was altered or damaged. Nothing of it is returned.
	ErrDataAuth = errors.New("volume data fails authentication")
	// ErrImpaired: a block of a volume restored from a snapshot cannot be
	// read from the snapshot, whose data for it is corrupt or missing
	// (the error also wraps ErrCorrupt or snapstore.ErrNotFound). The
	// volume is impaired (VolumeInfo.Status); its other blocks work, and
	// a write of the whole block replaces it. The engine logs the object
	// once; callers need not log each access.
	ErrImpaired = errors.New("volume impaired: its snapshot data cannot be read")
)
