// Package meta owns cowvol's metadata store: the Badger database, its key
// layout and the record codecs. Nothing else in cowvol imports Badger.
//
// Key layout (all integers big-endian so keys sort numerically):
//
//	v/<vol-id>                      VolumeRecord (JSON)
//	l/<vol-id>/<blk:8>              Extent: the live map, newest version of each block
//	c/<vol-id>/<gen:8>/<blk:8>      Extent: change set, versions born in generation gen
//	t/<client-token>                volume ID created with that idempotency token
//	n/<vol-id>                      slots end (8 bytes): every slot the volume's l/ and c/ records name is below it
//	s/<snap-id>                     SnapshotRecord (JSON)
//	a/<snap-id>                     SnapshotAttributes (JSON): tags and createVolumePermission as changed since creation
//	rb/<rule-id>                    RecycleRule (JSON): a Recycle Bin retention rule
//	x/id                            the store's identity (16 random bytes)
//	x/seq                           the newest sync sequence (8 bytes)
//
// Open checks a store before Badger sees it (open_check.go) and refuses
// one that lost or garbled records; the witness (witness.go), a file beside
// the Badger directory, remembers the newest sync sequence known durable,
// so a store that came back older than it is refused too.
//
// The engine (package cow) keeps the live map in memory and uses this package
// only to persist and recover it.
package meta
