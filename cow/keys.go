package cow

import (
	"context"
	"fmt"

	"github.com/cowvol/cowvol/cow/lineage"
	"github.com/cowvol/cowvol/kms"
	"github.com/cowvol/cowvol/meta"
)

// KeyManager wraps and unwraps data keys under KMS keys. The engine needs
// nothing else of key management: kms.Local implements it, and so can an
// adapter to an external KMS. Errors wrap kms.ErrKeyNotFound,
// kms.ErrKeyDisabled or kms.ErrInvalidKeyID where those apply.
type KeyManager interface {
	// ResolveKey returns the ARN of the enabled KMS key that id (an ARN,
	// a key ID or alias/NAME; "" for the default key) names.
	ResolveKey(id string) (arn string, err error)
	// GenerateDataKey returns a fresh 32-byte data key, in the clear and
	// wrapped under the KMS key keyARN.
	GenerateDataKey(keyARN string) (plaintext, wrapped []byte, err error)
	// Unwrap opens a wrapped data key and returns it with the ARN of the
	// KMS key that wrapped it.
	Unwrap(wrapped []byte) (dataKey []byte, keyARN string, err error)
}

var _ KeyManager = (*kms.Local)(nil)

// ErrNoKeyManager: an encrypted volume was asked of an engine that has no
// key manager.
var ErrNoKeyManager = lineage.ErrNoKeyManager

// KeysChanged forgets every unwrapped data key: the key manager calls it
// when a KMS key is disabled, enabled or deleted. From then on every
// encrypted volume and snapshot unwraps its key again at its next use, so
// that those under a disabled key fail to read or write, with an error
// naming the key, instead of going on with a key in memory.
func (e *Engine) KeysChanged() {
	e.lineages.Forget()
	for _, v := range e.allVolumes() {
		if v.hot != nil {
			v.hot.forget()
		}
	}
	e.log.Info("KMS keys changed: unwrapped data keys dropped")
}

// volumeEncryption decides a new volume's encryption, as EC2 does: a volume
// from an encrypted snapshot is encrypted under the snapshot's data key (its
// KMS key must be usable now, and KMSKeyID may only name that key); an
// encrypted volume otherwise gets a fresh data key under the KMS key
// KMSKeyID names, or the default key. nil: plaintext.
func (e *Engine) volumeEncryption(p CreateVolumeParams, src meta.SnapshotRecord) (*meta.Encryption, error) {
	if src.Encryption != nil {
		if _, err := e.lineages.Get(src.Encryption); err != nil {
			return nil, fmt.Errorf("snapshot %s: %w", src.ID, err)
		}
		if p.KMSKeyID != "" {
			arn, err := e.keys.ResolveKey(p.KMSKeyID)
			if err != nil {
				return nil, err
			}
			if arn != src.Encryption.KMSKeyARN {
				return nil, fmt.Errorf("%w: a volume from encrypted snapshot %s keeps its data key, under %s; copy the snapshot with the other key first (CopySnapshot with KmsKeyId)",
					ErrInvalidParameter, src.ID, src.Encryption.KMSKeyARN)
			}
		}
		enc := *src.Encryption
		return &enc, nil
	}
	if !p.Encrypted {
		return nil, nil
	}
	k, err := e.lineages.New(p.KMSKeyID)
	if err != nil {
		return nil, err
	}
	enc := k.Enc
	return &enc, nil
}

// CheckVolumeEncryption returns the error CreateVolume would give for p's
// encryption parameters, without making a data key: a dry run's answer. (A
// dry run that names no key does not create the default key either.)
func (e *Engine) CheckVolumeEncryption(ctx context.Context, p CreateVolumeParams) error {
	var src meta.SnapshotRecord
	if p.SnapshotID != "" {
		s, err := e.lookupSnapshot(ctx, p.SnapshotID)
		if err != nil {
			return err
		}
		src = s.record()
	}
	if src.Encryption != nil {
		_, err := e.volumeEncryption(p, src)
		return err
	}
	return e.checkNewLineage(p.Encrypted, p.KMSKeyID)
}

// checkNewLineage checks, without making one, that a new lineage could be
// made for the given parameters.
func (e *Engine) checkNewLineage(encrypted bool, keyID string) error {
	switch {
	case keyID != "" && !encrypted:
		return fmt.Errorf("%w: KmsKeyId needs Encrypted", ErrParameterDependency)
	case !encrypted:
		return nil
	case e.keys == nil:
		return ErrNoKeyManager
	case keyID == "":
		return nil
	}
	_, err := e.keys.ResolveKey(keyID)
	return err
}
