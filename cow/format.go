package cow

import (
	"encoding/binary"

	"github.com/cowvol/cowvol/cow/snapfmt"
)

// ErrCorrupt: an object in snapshot storage fails its checksum or does
// not decode (the snapshot format's error, see package snapfmt).
var ErrCorrupt = snapfmt.ErrCorrupt

// tagsToFormat are tags as manifests spell them.
func tagsToFormat(tags []Tag) []snapfmt.Tag {
	if tags == nil {
		return nil
	}
	out := make([]snapfmt.Tag, len(tags))
	for i, t := range tags {
		out[i] = snapfmt.Tag{Key: t.Key, Value: t.Value}
	}
	return out
}

// tagsFromFormat are a manifest's tags.
func tagsFromFormat(tags []snapfmt.Tag) []Tag {
	if tags == nil {
		return nil
	}
	out := make([]Tag, len(tags))
	for i, t := range tags {
		out[i] = Tag{Key: t.Key, Value: t.Value}
	}
	return out
}

// isZero reports whether b is all zeros.
func isZero(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
