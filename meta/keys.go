package meta

import (
	"encoding/binary"
	"fmt"
)

// Key prefixes. One byte each, followed by '/'.
const (
	prefixVolume      = "v/"
	prefixLive        = "l/"
	prefixChange      = "c/"
	prefixClientToken = "t/"
	prefixSlotsEnd    = "n/"
)

// VolumeKey is the key of a volume's record.
func VolumeKey(volID string) []byte { return []byte(prefixVolume + volID) }

// LiveKey is the key of block blk in volume volID's live map.
func LiveKey(volID string, blk uint64) []byte {
	k := make([]byte, 0, len(prefixLive)+len(volID)+1+8)
	k = append(k, prefixLive...)
	k = append(k, volID...)
	k = append(k, '/')
	return binary.BigEndian.AppendUint64(k, blk)
}

// LivePrefix is the prefix of all of volume volID's live-map keys.
func LivePrefix(volID string) []byte { return []byte(prefixLive + volID + "/") }

// ParseLiveKey returns the block number of a live-map key of volume volID.
func ParseLiveKey(volID string, key []byte) (uint64, error) {
	p := LivePrefix(volID)
	if len(key) != len(p)+8 || string(key[:len(p)]) != string(p) {
		return 0, fmt.Errorf("meta: malformed live key %q", key)
	}
	return binary.BigEndian.Uint64(key[len(p):]), nil
}

// ChangeKey is the key of block blk's version born in generation gen of volume volID.
func ChangeKey(volID string, gen, blk uint64) []byte {
	k := make([]byte, 0, len(prefixChange)+len(volID)+1+16)
	k = append(k, prefixChange...)
	k = append(k, volID...)
	k = append(k, '/')
	k = binary.BigEndian.AppendUint64(k, gen)
	return binary.BigEndian.AppendUint64(k, blk)
}

// ChangePrefix is the prefix of all of volume volID's change-set keys.
func ChangePrefix(volID string) []byte { return []byte(prefixChange + volID + "/") }

// ChangeGenPrefix is the prefix of the change set of generation gen of volume volID.
func ChangeGenPrefix(volID string, gen uint64) []byte {
	return binary.BigEndian.AppendUint64(ChangePrefix(volID), gen)
}

// ParseChangeKey returns the generation and block of a change-set key of volume volID.
func ParseChangeKey(volID string, key []byte) (gen, blk uint64, err error) {
	p := ChangePrefix(volID)
	if len(key) != len(p)+16 || string(key[:len(p)]) != string(p) {
		return 0, 0, fmt.Errorf("meta: malformed change key %q", key)
	}
	return binary.BigEndian.Uint64(key[len(p):]), binary.BigEndian.Uint64(key[len(p)+8:]), nil
}

// ClientTokenKey is the key recording which volume a CreateVolume ClientToken made.
func ClientTokenKey(token string) []byte { return []byte(prefixClientToken + token) }

// SlotsEndKey is the key of volume volID's slots end: every slot its
// durable live map and change sets refer to is below it.
func SlotsEndKey(volID string) []byte { return []byte(prefixSlotsEnd + volID) }
