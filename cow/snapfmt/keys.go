package snapfmt

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"time"
)

// Key prefixes of the store layout (see the package comment).
const (
	PackPrefix     = "packs/"
	SegmentPrefix  = "segments/"
	ChunkPrefix    = "chunks/"
	SnapshotPrefix = "snapshots/"
	HoldPrefix     = "holds/"
	LeasePrefix    = "leases/"
)

const manifestSuffix = "/manifest"

// fanned is prefix + the first two hex digits + "/" + the hex digits.
func fanned(prefix, h string) string { return prefix + h[:2] + "/" + h }

// parseFanned returns the bytes a fanned key of prefix names, of length len(dst).
func parseFanned(key, prefix string, dst []byte) bool {
	h, found := strings.CutPrefix(key, prefix)
	if !found || len(h) != 3+2*len(dst) || h[2] != '/' || h[:2] != h[3:5] {
		return false
	}
	n, err := hex.Decode(dst, []byte(h[3:]))
	return err == nil && n == len(dst)
}

// ChunkKey is the key of a format-1 chunk object.
func ChunkKey(id ChunkID) string { return fanned(ChunkPrefix, id.String()) }

// PackKey is the key of pack p.
func PackKey(p PackID) string { return fanned(PackPrefix, p.String()) }

// ParsePackKey returns the pack a pack key names.
func ParsePackKey(key string) (p PackID, ok bool) {
	return p, parseFanned(key, PackPrefix, p[:])
}

// SegmentKey is the key of the segment object whose bytes have SHA-256 sum.
func SegmentKey(sum [sha256.Size]byte) string {
	return fanned(SegmentPrefix, hex.EncodeToString(sum[:]))
}

// SegmentSum returns the SHA-256 a segment key names.
func SegmentSum(key string) (sum [sha256.Size]byte, ok bool) {
	return sum, parseFanned(key, SegmentPrefix, sum[:])
}

// ManifestKey is the key of snapshot snapID's manifest.
func ManifestKey(snapID string) string { return SnapshotPrefix + snapID + manifestSuffix }

// ParseManifestKey returns the snapshot a manifest key names (not a hold).
func ParseManifestKey(key string) (snapID string, ok bool) {
	id, ok := strings.CutPrefix(key, SnapshotPrefix)
	if !ok {
		return "", false
	}
	id, ok = strings.CutSuffix(id, manifestSuffix)
	if !ok || id == "" || strings.Contains(id, "/") {
		return "", false
	}
	return id, true
}

// HoldKey is the key of volume volID's hold on snapshot snapID: its own copy
// of the snapshot's manifest, kept while the volume hydrates from it or
// builds its next snapshot on it after the snapshot itself was deleted.
func HoldKey(volID, snapID string) string { return HoldPrefix + volID + "/" + snapID }

// HoldsOf is the prefix of volume volID's holds.
func HoldsOf(volID string) string { return HoldPrefix + volID + "/" }

// IsHoldKey reports whether key is under the holds prefix.
func IsHoldKey(key string) bool {
	return len(key) > len(HoldPrefix) && strings.HasPrefix(key, HoldPrefix)
}

// SnapshotOfManifestKey is the snapshot whose manifest key is: the ID in
// snapshots/<id>/manifest or holds/<vol>/<id>; "" for any other key.
func SnapshotOfManifestKey(key string) string {
	if strings.HasPrefix(key, SnapshotPrefix) {
		id, _ := ParseManifestKey(key)
		return id
	}
	if rest, ok := strings.CutPrefix(key, HoldPrefix); ok {
		if vol, id, ok := strings.Cut(rest, "/"); ok && vol != "" && !strings.Contains(id, "/") {
			return id
		}
	}
	return ""
}

// LeaseKey names the lease of snapshot snapID's flush, started at start.
func LeaseKey(snapID string, start time.Time) string {
	return LeasePrefix + snapID + "." + strconv.FormatInt(start.UnixMilli(), 10)
}

// LeaseStart returns the start time in a lease key.
func LeaseStart(key string) (time.Time, bool) {
	i := strings.LastIndexByte(key, '.')
	if i < 0 {
		return time.Time{}, false
	}
	ms, err := strconv.ParseInt(key[i+1:], 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.UnixMilli(ms), true
}
