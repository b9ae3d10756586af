package snapfmt

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Manifest format versions. A manifest (and a hold: the same bytes) is
// JSON; what follows is the part of the format that makes a damaged one
// fail to decode instead of describing other data.
//
// Version 1 has no checksum. Daemons wrote it until format version 2; it is
// still read, as before, but nothing in it protects its numbers: a flipped
// segment index or key hex digit reads as another, valid manifest.
//
// Version 2 is version 1 with a checksum. Every version-2 manifest begins
// with exactly
//
//	{"version":2,"checksum":"<64 lowercase hex digits>",
//
// the digits being the SHA-256 of the whole object as stored, with those 64
// digits read as '0's. The checksum covers every other byte, an encrypted
// manifest's clear part (its refs, which collectors mark from without the
// key) included; it is verified on the bytes, before and independently of
// the JSON decoding, so no encoding detail of any JSON library matters.
//
// A reader tells the versions apart by the opening bytes: with that prefix
// the object must pass the checksum and then decode as version 2 with the
// same checksum field; without it, it must decode as version 1 with no
// checksum field. Anything else is refused (ErrCorrupt), so no single
// changed byte turns a version-2 manifest into an accepted version-1 one:
// a change in the prefix leaves a "checksum" field (refused in version 1),
// a version that is not 1 ("version":3 is one bit from "version":2), an
// unknown field (the key of either field damaged), or no JSON at all. Both
// versions refuse unknown fields and trailing data: every field a version-1
// writer ever wrote is known, a damaged key name in a version-1 manifest
// (which would otherwise drop, say, its segment list) is caught, and a new
// field needs a new version, which readers that do not know it refuse
// rather than misread.
const (
	manifestV1      = 1
	manifestV2      = 2
	manifestVersion = manifestV2 // the version written
)

// manifestSumPrefix opens every version-2 manifest; the checksum's hex
// digits follow it.
const manifestSumPrefix = `{"version":2,"checksum":"`

// manifestSumLen is the length of the checksum field's value: SHA-256 in
// hex.
const manifestSumLen = 2 * sha256.Size

// blankManifestSum is the checksum field's value while the checksum is
// computed.
var blankManifestSum = bytes.Repeat([]byte{'0'}, manifestSumLen)

// marshalManifest encodes m as it stands (an encrypted manifest already
// sealed: Refs and Sealed set, no Segments) in the version written, its
// checksum stamped.
func marshalManifest(m *Manifest) ([]byte, error) {
	c := *m
	c.Version = manifestVersion
	c.Checksum = string(blankManifestSum)
	b, err := json.Marshal(&c)
	if err != nil {
		return nil, err
	}
	// The struct's first two fields are the version and the checksum.
	if !hasManifestSum(b) || !bytes.Equal(manifestSumField(b), blankManifestSum) {
		return nil, errors.New("manifest encoding does not begin with its version and checksum")
	}
	sum := manifestSum(b)
	copy(manifestSumField(b), sum)
	return b, nil
}

// hasManifestSum reports whether b opens as a version-2 manifest: the
// prefix, room for the checksum, and the quote that closes it.
func hasManifestSum(b []byte) bool {
	n := len(manifestSumPrefix) + manifestSumLen
	return len(b) > n && bytes.HasPrefix(b, []byte(manifestSumPrefix)) && b[n] == '"'
}

// manifestSumField is the checksum's hex digits within b (hasManifestSum).
func manifestSumField(b []byte) []byte {
	return b[len(manifestSumPrefix) : len(manifestSumPrefix)+manifestSumLen]
}

// manifestSum is the checksum b (hasManifestSum) should carry, in hex: the
// SHA-256 of b with its checksum digits blank.
func manifestSum(b []byte) []byte {
	h := sha256.New()
	h.Write(b[:len(manifestSumPrefix)])
	h.Write(blankManifestSum)
	h.Write(b[len(manifestSumPrefix)+manifestSumLen:])
	return hex.AppendEncode(nil, h.Sum(nil))
}

// unmarshalManifest checks b's version and checksum (see the format above)
// and decodes it; what it describes is for DecodeManifest to check.
func unmarshalManifest(b []byte) (*Manifest, error) {
	v2 := hasManifestSum(b)
	if v2 && !bytes.Equal(manifestSumField(b), manifestSum(b)) {
		return nil, fmt.Errorf("%w: manifest fails its checksum", ErrCorrupt)
	}
	var m Manifest
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: manifest: %v", ErrCorrupt, err)
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: manifest: data after its end", ErrCorrupt)
	}
	switch {
	case v2 && m.Version == manifestV2 && m.Checksum == string(manifestSumField(b)):
	case !v2 && m.Version == manifestV1 && m.Checksum == "":
	case m.Version == manifestV1 || m.Version == manifestV2:
		return nil, fmt.Errorf("%w: a version %d manifest not in its form (checksum field %q)", ErrCorrupt, m.Version, m.Checksum)
	default:
		return nil, fmt.Errorf("%w: manifest version %d", ErrCorrupt, m.Version)
	}
	return &m, nil
}
