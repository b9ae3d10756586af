package cow

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"

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
var ErrNoKeyManager = errors.New("encryption needs a key manager, and this engine has none")

// lineageKeys are the keys of one encryption lineage (the volumes and
// snapshots that share a data key), each derived from the data key with
// HKDF-SHA256 and a label of its own, so that no key serves two purposes.
type lineageKeys struct {
	enc     meta.Encryption
	dataKey []byte
	// idKey keys the HMAC-SHA256 that names chunks: identical blocks
	// dedupe within the lineage, and a chunk ID says nothing about a
	// block to anyone without the key.
	idKey []byte
	chunk cipher.AEAD // chunks: the nonce is the chunk ID's first 12 bytes
	meta  cipher.AEAD // segments and manifests: random nonces
}

// Key labels (HKDF info strings).
const (
	labelChunkID = "cowvol chunk id v1"
	labelChunk   = "cowvol chunk v1"
	labelMeta    = "cowvol snapshot metadata v1"
	labelHot     = "cowvol volume data v1 " // + the volume ID
)

func deriveKey(dataKey []byte, label string) ([]byte, error) {
	return hkdf.Key(sha256.New, dataKey, nil, label, 32)
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

func deriveLineage(dataKey []byte, enc meta.Encryption) (*lineageKeys, error) {
	k := &lineageKeys{enc: enc, dataKey: dataKey}
	var err error
	if k.idKey, err = deriveKey(dataKey, labelChunkID); err != nil {
		return nil, err
	}
	for _, d := range []struct {
		label string
		aead  *cipher.AEAD
	}{{labelChunk, &k.chunk}, {labelMeta, &k.meta}} {
		key, err := deriveKey(dataKey, d.label)
		if err != nil {
			return nil, err
		}
		if *d.aead, err = newAEAD(key); err != nil {
			return nil, err
		}
	}
	return k, nil
}

// hotAEAD is the cipher of volume volID's own data: a key of its own,
// derived from the lineage's, so that volumes sharing a data key never
// share a (key, nonce) pair although each counts its nonces from zero.
func (k *lineageKeys) hotAEAD(volID string) (cipher.AEAD, error) {
	key, err := deriveKey(k.dataKey, labelHot+volID)
	if err != nil {
		return nil, err
	}
	return newAEAD(key)
}

// chunkID names a block of this lineage.
func (k *lineageKeys) chunkID(block []byte) chunkID {
	m := hmac.New(sha256.New, k.idKey)
	m.Write(block)
	var id chunkID
	m.Sum(id[:0])
	return id
}

// keyCache holds the lineages whose data keys were unwrapped, by wrapped
// key. It is emptied whenever a KMS key changes state, so that a disabled
// key stops opening anything at once.
type keyCache struct {
	mu sync.Mutex
	m  map[string]*lineageKeys
}

// lineage returns the keys of the lineage enc describes (nil for nil:
// plaintext), unwrapping its data key through the key manager on first use.
func (e *Engine) lineage(enc *meta.Encryption) (*lineageKeys, error) {
	if enc == nil {
		return nil, nil
	}
	e.lineages.mu.Lock()
	k := e.lineages.m[string(enc.WrappedKey)]
	e.lineages.mu.Unlock()
	if k != nil {
		return k, nil
	}
	if e.keys == nil {
		return nil, ErrNoKeyManager
	}
	dataKey, arn, err := e.keys.Unwrap(enc.WrappedKey)
	if err != nil {
		return nil, fmt.Errorf("data key of lineage %s (KMS key %s): %w", enc.DataKeyID, enc.KMSKeyARN, err)
	}
	if arn != enc.KMSKeyARN {
		return nil, fmt.Errorf("%w: the data key of lineage %s is wrapped by %s, not %s", kms.ErrInvalidCiphertext, enc.DataKeyID, arn, enc.KMSKeyARN)
	}
	if k, err = deriveLineage(dataKey, *enc); err != nil {
		return nil, err
	}
	e.lineages.mu.Lock()
	if e.lineages.m == nil {
		e.lineages.m = map[string]*lineageKeys{}
	}
	e.lineages.m[string(enc.WrappedKey)] = k
	e.lineages.mu.Unlock()
	return k, nil
}

// newLineage makes a fresh data key under the KMS key keyID names ("" for
// the default key): a new lineage.
func (e *Engine) newLineage(keyID string) (*lineageKeys, error) {
	if e.keys == nil {
		return nil, ErrNoKeyManager
	}
	arn, err := e.keys.ResolveKey(keyID)
	if err != nil {
		return nil, err
	}
	dataKey, wrapped, err := e.keys.GenerateDataKey(arn)
	if err != nil {
		return nil, err
	}
	enc := meta.Encryption{KMSKeyARN: arn, WrappedKey: wrapped, DataKeyID: newDataKeyID()}
	k, err := deriveLineage(dataKey, enc)
	if err != nil {
		return nil, err
	}
	e.lineages.mu.Lock()
	if e.lineages.m == nil {
		e.lineages.m = map[string]*lineageKeys{}
	}
	e.lineages.m[string(wrapped)] = k
	e.lineages.mu.Unlock()
	return k, nil
}

// newDataKeyID returns a lineage ID, a random UUID as EC2's are.
func newDataKeyID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // never fails on Linux
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// KeysChanged forgets every unwrapped data key: the key manager calls it
// when a KMS key is disabled, enabled or deleted. From then on every
// encrypted volume and snapshot unwraps its key again at its next use, so
// that those under a disabled key fail to read or write, with an error
// naming the key, instead of going on with a key in memory.
func (e *Engine) KeysChanged() {
	e.lineages.mu.Lock()
	e.lineages.m = nil
	e.lineages.mu.Unlock()
	for _, v := range e.volumes() {
		if v.hot != nil {
			v.hot.forget()
		}
	}
	e.log.Info("KMS keys changed: unwrapped data keys dropped")
}

// sameLineage reports whether a and b (nil: plaintext) are one lineage.
func sameLineage(a, b *meta.Encryption) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.DataKeyID == b.DataKeyID && hmac.Equal(a.WrappedKey, b.WrappedKey)
}

// volumeEncryption decides a new volume's encryption, as EC2 does: a volume
// from an encrypted snapshot is encrypted under the snapshot's data key (its
// KMS key must be usable now, and KMSKeyID may only name that key); an
// encrypted volume otherwise gets a fresh data key under the KMS key
// KMSKeyID names, or the default key. nil: plaintext.
func (e *Engine) volumeEncryption(p CreateVolumeParams, src meta.SnapshotRecord) (*meta.Encryption, error) {
	if src.Encryption != nil {
		if _, err := e.lineage(src.Encryption); err != nil {
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
	k, err := e.newLineage(p.KMSKeyID)
	if err != nil {
		return nil, err
	}
	enc := k.enc
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
