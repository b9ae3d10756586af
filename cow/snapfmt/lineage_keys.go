package snapfmt

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
)

// Encryption describes an encryption lineage as manifests spell it: the
// KMS key, the data key wrapped under it, and the lineage's ID.
type Encryption struct {
	KMSKeyARN  string `json:"kmsKeyArn"`
	WrappedKey []byte `json:"wrappedKey"`
	DataKeyID  string `json:"dataKeyId"`
}

// Same reports whether a and b (nil: plaintext) are one lineage.
func (a *Encryption) Same(b *Encryption) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.DataKeyID == b.DataKeyID && hmac.Equal(a.WrappedKey, b.WrappedKey)
}

// Keys are the format keys of one encryption lineage, each derived from
// the data key with HKDF-SHA256 and a label of its own, so that no key
// serves two purposes. A nil *Keys is plaintext throughout this package.
type Keys struct {
	// Lineage is the lineage the keys are of; encoded manifests say so.
	Lineage Encryption
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
)

// DeriveKey derives a 32-byte key for label from a lineage's data key.
func DeriveKey(dataKey []byte, label string) ([]byte, error) {
	return hkdf.Key(sha256.New, dataKey, nil, label, 32)
}

// NewAEAD is AES-256-GCM under key.
func NewAEAD(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// DeriveKeys derives the format keys of lineage lin from its data key.
func DeriveKeys(dataKey []byte, lin Encryption) (*Keys, error) {
	k := &Keys{Lineage: lin}
	var err error
	if k.idKey, err = DeriveKey(dataKey, labelChunkID); err != nil {
		return nil, err
	}
	for _, d := range []struct {
		label string
		aead  *cipher.AEAD
	}{{labelChunk, &k.chunk}, {labelMeta, &k.meta}} {
		key, err := DeriveKey(dataKey, d.label)
		if err != nil {
			return nil, err
		}
		if *d.aead, err = NewAEAD(key); err != nil {
			return nil, err
		}
	}
	return k, nil
}

// ChunkID names a block of this lineage.
func (k *Keys) ChunkID(block []byte) ChunkID {
	m := hmac.New(sha256.New, k.idKey)
	m.Write(block)
	var id ChunkID
	m.Sum(id[:0])
	return id
}
