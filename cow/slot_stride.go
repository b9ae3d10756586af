package cow

import "github.com/cowvol/cowvol/meta"

// A slot holds a block and, for an encrypted volume, its sectors' seals
// (volume_sealed.go). Packed together, a 64 KiB block and its 16 seals make
// a 65,920-byte slot, so that nearly every slot starts and ends inside a
// page of the data file: a write of a whole slot is a partial write of two
// pages, which the page cache must first read when they are not cached
// (and which interleave the writeback of neighbouring slots). An encrypted
// volume created now pads its seals to a whole page when that costs at
// most 1/16 of the block (blocks of 64 KiB and more): every slot is page
// aligned. Its record says so (SlotStride); a volume created before keeps
// its packed slots.
const (
	pageSize = 4096
	// padSealsFrom is the smallest block size whose seals are padded.
	padSealsFrom = 16 * pageSize
)

// packedStride is the length of a slot of block size bs, its seals
// packed right after the block.
func packedStride(bs int64, encrypted bool) int64 {
	if !encrypted {
		return bs
	}
	return bs + bs/sealSector*sealSize
}

// newSlotStride is the slot stride recorded for a volume about to be
// created (r): 0, the packed stride, unless its seals are padded.
func newSlotStride(r meta.VolumeRecord) int64 {
	bs := int64(r.BlockSize)
	if r.Encryption == nil || bs < padSealsFrom {
		return 0
	}
	seals := bs / sealSector * sealSize
	return bs + (seals+pageSize-1)/pageSize*pageSize
}

// slotStride is the slot stride of the volume whose record is r. A
// recorded stride shorter than the packed one cannot hold a slot: the
// packed one is used (and a damaged record shows as sectors that fail
// authentication, never as a slot overlapping another).
func slotStride(r meta.VolumeRecord) int64 {
	packed := packedStride(int64(r.BlockSize), r.Encryption != nil)
	if r.SlotStride > packed {
		return r.SlotStride
	}
	return packed
}
