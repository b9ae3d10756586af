// Package lineage holds the keys of encryption lineages: the volumes and
// snapshots that share one data key. It derives a lineage's keys from its
// data key (the snapshot format's keys through snapfmt, a volume's own data
// key here), unwraps data keys through a key manager and caches the
// result, and converts between the metadata store's and the manifests'
// spelling of a lineage.
package lineage

import (
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"

	"github.com/cowvol/cowvol/cow/snapfmt"
	"github.com/cowvol/cowvol/kms"
	"github.com/cowvol/cowvol/meta"
)

// KeyManager wraps and unwraps data keys under KMS keys (see cow.KeyManager).
type KeyManager interface {
	ResolveKey(id string) (arn string, err error)
	GenerateDataKey(keyARN string) (plaintext, wrapped []byte, err error)
	Unwrap(wrapped []byte) (dataKey []byte, keyARN string, err error)
}

// ErrNoKeyManager: an encrypted volume or snapshot was asked of an engine
// that has no key manager.
var ErrNoKeyManager = errors.New("encryption needs a key manager, and this engine has none")

// labelHot (+ the volume ID) is the HKDF label of a volume's own data key.
const labelHot = "cowvol volume data v1 "

// Keys are the keys of one lineage.
type Keys struct {
	// Enc describes the lineage as the metadata store records it.
	Enc     meta.Encryption
	dataKey []byte
	format  *snapfmt.Keys
}

// Derive makes the keys of lineage enc from its data key.
func Derive(dataKey []byte, enc meta.Encryption) (*Keys, error) {
	f, err := snapfmt.DeriveKeys(dataKey, *ToFormat(&enc))
	if err != nil {
		return nil, err
	}
	return &Keys{Enc: enc, dataKey: dataKey, format: f}, nil
}

// Format returns the snapshot format's keys; nil for nil (plaintext).
func (k *Keys) Format() *snapfmt.Keys {
	if k == nil {
		return nil
	}
	return k.format
}

// ChunkID names a block of this lineage.
func (k *Keys) ChunkID(block []byte) snapfmt.ChunkID { return k.format.ChunkID(block) }

// HotAEAD is the cipher of volume volID's own data: a key of its own,
// derived from the lineage's, so that volumes sharing a data key never
// share a (key, nonce) pair although each counts its nonces from zero.
func (k *Keys) HotAEAD(volID string) (cipher.AEAD, error) {
	key, err := snapfmt.DeriveKey(k.dataKey, labelHot+volID)
	if err != nil {
		return nil, err
	}
	return snapfmt.NewAEAD(key)
}

// Same reports whether a and b (nil: plaintext) are one lineage.
func Same(a, b *meta.Encryption) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.DataKeyID == b.DataKeyID && hmac.Equal(a.WrappedKey, b.WrappedKey)
}

// ToFormat is e as manifests spell it (nil for nil).
func ToFormat(e *meta.Encryption) *snapfmt.Encryption {
	if e == nil {
		return nil
	}
	return &snapfmt.Encryption{KMSKeyARN: e.KMSKeyARN, WrappedKey: e.WrappedKey, DataKeyID: e.DataKeyID}
}

// FromFormat is a manifest's lineage as the metadata store records it.
func FromFormat(e *snapfmt.Encryption) *meta.Encryption {
	if e == nil {
		return nil
	}
	return &meta.Encryption{KMSKeyARN: e.KMSKeyARN, WrappedKey: e.WrappedKey, DataKeyID: e.DataKeyID}
}

// NewDataKeyID returns a lineage ID, a random UUID as EC2's are.
func NewDataKeyID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // never fails on Linux
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// Cache holds the lineages whose data keys were unwrapped, by wrapped key.
// It is emptied (Forget) whenever a KMS key changes state, so that a
// disabled key stops opening anything at once. The zero Cache is empty and
// has no key manager.
type Cache struct {
	km KeyManager
	mu sync.Mutex
	m  map[string]*Keys
}

// NewCache returns an empty cache unwrapping through km (nil: none).
func NewCache(km KeyManager) *Cache { return &Cache{km: km} }

// Get returns the keys of the lineage enc describes (nil for nil:
// plaintext), unwrapping its data key through the key manager on first use.
func (c *Cache) Get(enc *meta.Encryption) (*Keys, error) {
	if enc == nil {
		return nil, nil
	}
	c.mu.Lock()
	k := c.m[string(enc.WrappedKey)]
	c.mu.Unlock()
	if k != nil {
		return k, nil
	}
	if c.km == nil {
		return nil, ErrNoKeyManager
	}
	dataKey, arn, err := c.km.Unwrap(enc.WrappedKey)
	if err != nil {
		return nil, fmt.Errorf("data key of lineage %s (KMS key %s): %w", enc.DataKeyID, enc.KMSKeyARN, err)
	}
	if arn != enc.KMSKeyARN {
		return nil, fmt.Errorf("%w: the data key of lineage %s is wrapped by %s, not %s", kms.ErrInvalidCiphertext, enc.DataKeyID, arn, enc.KMSKeyARN)
	}
	if k, err = Derive(dataKey, *enc); err != nil {
		return nil, err
	}
	c.put(k)
	return k, nil
}

// New makes a fresh data key under the KMS key keyID names ("" for the
// default key): a new lineage.
func (c *Cache) New(keyID string) (*Keys, error) {
	if c.km == nil {
		return nil, ErrNoKeyManager
	}
	arn, err := c.km.ResolveKey(keyID)
	if err != nil {
		return nil, err
	}
	dataKey, wrapped, err := c.km.GenerateDataKey(arn)
	if err != nil {
		return nil, err
	}
	k, err := Derive(dataKey, meta.Encryption{KMSKeyARN: arn, WrappedKey: wrapped, DataKeyID: NewDataKeyID()})
	if err != nil {
		return nil, err
	}
	c.put(k)
	return k, nil
}

func (c *Cache) put(k *Keys) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]*Keys{}
	}
	c.m[string(k.Enc.WrappedKey)] = k
}

// Forget drops every unwrapped data key.
func (c *Cache) Forget() {
	c.mu.Lock()
	c.m = nil
	c.mu.Unlock()
}
