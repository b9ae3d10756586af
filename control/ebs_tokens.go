package control

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"time"
)

// Block and page tokens of the EBS direct APIs are opaque to clients:
// base64 of a version byte, the expiry (Unix seconds), the block index
// and an HMAC-SHA256 (truncated to 16 bytes) under the server's token key
// of all that and of what the token is for (its kind and snapshots), so
// that a token is good only for the block, or the listing, it was issued
// for, and only until it expires.
const (
	tokenVersion = 1
	tokenMACLen  = 16
	tokenLen     = 1 + 8 + 8 + tokenMACLen
)

// Token kinds, bound into the MAC.
const (
	kindBlock   = "block"
	kindBlocks  = "list-blocks"
	kindChanged = "list-changed"
)

var (
	errTokenMalformed = errors.New("malformed token")
	errTokenExpired   = errors.New("expired token")
)

// tokenMAC is the MAC of a token's fields.
func (st *ebsState) tokenMAC(kind string, snaps []string, expiry, idx int64) []byte {
	m := hmac.New(sha256.New, st.key[:])
	m.Write([]byte(kind))
	for _, s := range snaps {
		m.Write([]byte{0})
		m.Write([]byte(s))
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(expiry))
	binary.BigEndian.PutUint64(b[8:], uint64(idx))
	m.Write(b[:])
	return m.Sum(nil)[:tokenMACLen]
}

// issue returns a token for idx of kind over snaps, and its expiry.
func (st *ebsState) issue(kind string, snaps []string, idx int64) (string, time.Time) {
	expiry := st.now().Add(ebsTokenTTL).Truncate(time.Second)
	b := make([]byte, 0, tokenLen)
	b = append(b, tokenVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(expiry.Unix()))
	b = binary.BigEndian.AppendUint64(b, uint64(idx))
	b = append(b, st.tokenMAC(kind, snaps, expiry.Unix(), idx)...)
	return base64.StdEncoding.EncodeToString(b), expiry
}

// expiry is when tokens issued now expire.
func (st *ebsState) expiry() time.Time { return st.now().Add(ebsTokenTTL).Truncate(time.Second) }

// decodeToken checks token against kind and snaps and returns its index:
// errTokenMalformed for one this server did not issue for them,
// errTokenExpired for one past its expiry.
func (st *ebsState) decodeToken(token, kind string, snaps []string) (int64, error) {
	b, err := base64.StdEncoding.Strict().DecodeString(token)
	if err != nil || len(b) != tokenLen || b[0] != tokenVersion {
		return 0, errTokenMalformed
	}
	expiry := int64(binary.BigEndian.Uint64(b[1:9]))
	idx := int64(binary.BigEndian.Uint64(b[9:17]))
	if !hmac.Equal(b[17:], st.tokenMAC(kind, snaps, expiry, idx)) || idx < 0 {
		return 0, errTokenMalformed
	}
	if st.now().Unix() >= expiry {
		return 0, errTokenExpired
	}
	return idx, nil
}
