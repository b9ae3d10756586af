package lineage

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"path/filepath"
	"regexp"
	"sync/atomic"
	"testing"

	"github.com/cowvol/cowvol/cow/snapfmt"
	"github.com/cowvol/cowvol/kms"
	"github.com/cowvol/cowvol/meta"
)

func keyring(t *testing.T) *kms.Local {
	t.Helper()
	k, err := kms.OpenLocal(filepath.Join(t.TempDir(), "keyring"), "us-east-1", "111122223333")
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// countingKM counts unwraps, to see the cache at work.
type countingKM struct {
	KeyManager
	unwraps atomic.Int64
}

func (c *countingKM) Unwrap(w []byte) ([]byte, string, error) {
	c.unwraps.Add(1)
	return c.KeyManager.Unwrap(w)
}

// TestDeriveSeparatesKeys: a lineage's chunk IDs are the HMAC-SHA256 of
// the block under a key derived from the data key (not the data key
// itself, not a plain hash), the same for the same data key and different
// for another; each volume's own cipher is its own.
func TestDeriveSeparatesKeys(t *testing.T) {
	dk := bytes.Repeat([]byte{7}, 32)
	enc := meta.Encryption{KMSKeyARN: "arn:k", WrappedKey: []byte("w"), DataKeyID: "d"}
	a, err := Derive(dk, enc)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Derive(dk, enc)
	other, _ := Derive(bytes.Repeat([]byte{8}, 32), enc)
	block := []byte("a block")
	idKey, _ := snapfmt.DeriveKey(dk, "cowvol chunk id v1")
	m := hmac.New(sha256.New, idKey)
	m.Write(block)
	if got := a.ChunkID(block); !bytes.Equal(got[:], m.Sum(nil)) {
		t.Fatal("the chunk ID is not the HMAC under the derived ID key")
	}
	plainMAC := hmac.New(sha256.New, dk)
	plainMAC.Write(block)
	if got := a.ChunkID(block); bytes.Equal(got[:], plainMAC.Sum(nil)) || got == sha256.Sum256(block) {
		t.Fatal("the chunk ID is keyed by the data key itself, or not keyed")
	}
	if a.ChunkID(block) != b.ChunkID(block) || a.ChunkID(block) == other.ChunkID(block) {
		t.Fatal("chunk IDs do not follow the data key")
	}
	if a.Format().Lineage.DataKeyID != "d" || (*Keys)(nil).Format() != nil {
		t.Fatal("Format does not carry the lineage, or nil is not plaintext")
	}
	va, _ := a.HotAEAD("vol-a")
	vb, _ := a.HotAEAD("vol-b")
	nonce := make([]byte, va.NonceSize())
	if bytes.Equal(va.Seal(nil, nonce, block, nil), vb.Seal(nil, nonce, block, nil)) {
		t.Fatal("two volumes of one lineage share a cipher")
	}
	va2, _ := b.HotAEAD("vol-a")
	if _, err := va2.Open(nil, nonce, va.Seal(nil, nonce, block, nil), nil); err != nil {
		t.Fatal("a volume's cipher is not the same from the same data key")
	}
}

func TestSameAndFormatConversions(t *testing.T) {
	e1 := &meta.Encryption{KMSKeyARN: "arn:k", WrappedKey: []byte("w1"), DataKeyID: "d1"}
	e1b := &meta.Encryption{KMSKeyARN: "arn:other", WrappedKey: []byte("w1"), DataKeyID: "d1"}
	e2 := &meta.Encryption{KMSKeyARN: "arn:k", WrappedKey: []byte("w2"), DataKeyID: "d1"}
	for _, tt := range []struct {
		a, b *meta.Encryption
		want bool
	}{
		{nil, nil, true}, {e1, nil, false}, {nil, e1, false}, {e1, e1, true}, {e1, e1b, true}, {e1, e2, false},
	} {
		if got := Same(tt.a, tt.b); got != tt.want {
			t.Errorf("Same(%v, %v) = %v", tt.a, tt.b, got)
		}
		if got := ToFormat(tt.a).Same(ToFormat(tt.b)); got != tt.want {
			t.Errorf("snapfmt Same(%v, %v) = %v", tt.a, tt.b, got)
		}
	}
	if ToFormat(nil) != nil || FromFormat(nil) != nil {
		t.Fatal("nil is not plaintext both ways")
	}
	if back := FromFormat(ToFormat(e1)); back.KMSKeyARN != e1.KMSKeyARN || !bytes.Equal(back.WrappedKey, e1.WrappedKey) || back.DataKeyID != e1.DataKeyID {
		t.Fatalf("round trip: %+v", back)
	}
}

// TestCache: a new lineage is cached; a lineage is unwrapped once, then
// served from the cache until Forget; a wrapped key that another KMS key
// unwraps, a disabled key, and no key manager at all are errors.
func TestCache(t *testing.T) {
	kr := keyring(t)
	km := &countingKM{KeyManager: kr}
	c := NewCache(km)
	k, err := c.New("")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(k.Enc.DataKeyID) {
		t.Fatalf("lineage ID %q is not a random UUID", k.Enc.DataKeyID)
	}
	if got, err := c.Get(&k.Enc); err != nil || got != k || km.unwraps.Load() != 0 {
		t.Fatalf("a new lineage is not cached: %v, %d unwraps", err, km.unwraps.Load())
	}
	c.Forget()
	got, err := c.Get(&k.Enc)
	if err != nil || km.unwraps.Load() != 1 || got.ChunkID([]byte("x")) != k.ChunkID([]byte("x")) {
		t.Fatalf("after Forget: %v, %d unwraps", err, km.unwraps.Load())
	}
	if _, err := c.Get(&k.Enc); err != nil || km.unwraps.Load() != 1 {
		t.Fatalf("not cached after the unwrap: %d unwraps", km.unwraps.Load())
	}
	if k, err := c.Get(nil); k != nil || err != nil {
		t.Fatal("nil is not plaintext")
	}

	wrongARN := k.Enc
	wrongARN.KMSKeyARN = "arn:aws:kms:us-east-1:111122223333:key/another"
	c.Forget()
	if _, err := c.Get(&wrongARN); !errors.Is(err, kms.ErrInvalidCiphertext) {
		t.Fatalf("a data key wrapped by another KMS key: %v", err)
	}
	if _, err := kr.SetEnabled(k.Enc.KMSKeyARN, false); err != nil {
		t.Fatal(err)
	}
	c.Forget()
	if _, err := c.Get(&k.Enc); !errors.Is(err, kms.ErrKeyDisabled) {
		t.Fatalf("under a disabled key: %v", err)
	}
	none := NewCache(nil)
	if _, err := none.Get(&k.Enc); !errors.Is(err, ErrNoKeyManager) {
		t.Fatalf("no key manager: %v", err)
	}
	if _, err := none.New(""); !errors.Is(err, ErrNoKeyManager) {
		t.Fatalf("no key manager: %v", err)
	}
}
