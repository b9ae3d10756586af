// Package snapfmt is the snapshot storage format: what a daemon writes to a
// snapshot store and what every other daemon, on this host or another, must
// be able to read for years. It holds the chunk IDs and the chunk codec,
// segments, manifests (both format versions), the pack layout as a builder
// over an io.Writer and a reader over an io.ReaderAt, the derivation of an
// encrypted lineage's format keys, and every store key builder and parser.
//
// It has no goroutines, no store and no engine: it turns values into bytes
// and bytes (untrusted: written by another host) into values, refusing
// anything malformed with ErrCorrupt. Its golden files under testdata pin
// the bytes of every object kind and version; its fuzz targets cover every
// decoder.
//
// Store layout (keys in a snapshot store):
//
//	packs/<p[:2]>/<p>               many chunks (blocks, each zstd-compressed) and an index; p random
//	segments/<h[:2]>/<h>            a segment: block -> chunk (ID, pack, offset, length) for 65536 blocks
//	snapshots/<snap-id>/manifest    the manifest root (JSON, checksummed), written last
//	holds/<vol-id>/<snap-id>        a volume's copy of a manifest it depends on
//	leases/<snap-id>.<unix-ms>      a flush in progress (refreshed while it runs)
//	chunks/<h[:2]>/<h>              format 1: one chunk per object (still read)
//
// A chunk is named by the SHA-256 of its block (in an encrypted lineage, a
// keyed HMAC-SHA256), which every read verifies. Segments are
// content-addressed, so an incremental snapshot writes only the segments
// that changed. Packs batch a flush's chunks into objects of several MiB.
// All-zero blocks are not stored: a block missing from its segment reads as
// zeros.
package snapfmt

import "errors"

// ErrCorrupt: an object in snapshot storage fails its checksum or does not
// decode.
var ErrCorrupt = errors.New("snapshot data is corrupt")

// SegmentShift: a segment covers 1<<SegmentShift blocks (4 GiB at 64 KiB),
// so a 64 TiB volume's manifest root lists at most 16384 segments.
const SegmentShift = 16

// Block sizes a manifest may describe.
const (
	MinBlockSize = 4 << 10 // 4 KiB
	MaxBlockSize = 1 << 20 // 1 MiB
)
