package cow

import (
	"context"
	"crypto/cipher"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/cowvol/cowvol/meta"
)

// An encrypted volume's data file holds only sealed data. Each 4 KiB sector
// is encrypted and authenticated with AES-256-GCM under the volume's own key
// (derived from its lineage's data key and its ID), the nonce a counter of
// the volume's, the sector's logical address as additional data: a sector
// copied elsewhere, or altered, fails to open. A slot holds its block's
// sectors, then one seal per sector: the nonce counter (8 bytes) and the
// GCM tag (16 bytes).
//
// A sector and its seal are two writes that a crash can separate, so an
// encrypted volume never rewrites in place what durable metadata refers to:
// once a sync round has made a block's mapping durable (the entry is
// captured, flagCaptured), the next write to the block goes to a new slot, as
// after a snapshot. A crash therefore finds every durably mapped slot as it
// was when its round completed: an acknowledged write reads back, and
// nothing reads back that fails authentication unless it was altered.
const (
	sealSector = 4096   // bytes encrypted under one nonce
	sealSize   = 8 + 16 // per sector: nonce counter, GCM tag
	// nonceReserve counters are reserved (persisted in the volume's
	// record) at a time; a restart goes on past the reservation.
	nonceReserve = 1 << 20
)

// volumeSealer is an encrypted volume's cipher state.
type volumeSealer struct {
	enc meta.Encryption
	// aead is the volume's cipher; nil until first use and after KMS
	// keys changed (forget): the data key is unwrapped again then.
	aead atomic.Pointer[cipher.AEAD]
	// counter is the next nonce counter; hwm bounds what is reserved.
	counter atomic.Uint64
	hwm     atomic.Uint64
	hwmMu   sync.Mutex // one reservation at a time
	// capture is held shared by every write and exclusively while a sync
	// round captures the dirty blocks, so that no write in place is in
	// flight into a slot the round makes durable.
	capture sync.RWMutex
}

func (s *volumeSealer) forget() { s.aead.Store(nil) }

// cipher returns the volume's cipher, unwrapping its data key if needed:
// it fails, naming the KMS key, while that key is disabled or missing.
func (v *volume) cipher() (cipher.AEAD, error) {
	if a := v.hot.aead.Load(); a != nil {
		return *a, nil
	}
	k, err := v.env.lineages.Get(&v.hot.enc)
	if err != nil {
		return nil, fmt.Errorf("volume %s: %w", v.id, err)
	}
	a, err := k.HotAEAD(v.id)
	if err != nil {
		return nil, err
	}
	v.hot.aead.Store(&a)
	return a, nil
}

// reserveNonces returns the first of n fresh nonce counters, persisting a
// new reservation first when they run past the current one.
func (v *volume) reserveNonces(n uint64) (uint64, error) {
	first := v.hot.counter.Add(n) - n
	if first+n <= v.hot.hwm.Load() {
		return first, nil
	}
	v.hot.hwmMu.Lock()
	defer v.hot.hwmMu.Unlock()
	if need := first + n; need > v.hot.hwm.Load() {
		hwm := need + nonceReserve
		if err := v.updateRecord(func(r *meta.VolumeRecord) { r.NonceHWM = max(r.NonceHWM, hwm) }, nil); err != nil {
			return 0, fmt.Errorf("reserve nonces of %s: %w", v.id, err)
		}
		v.hot.hwm.Store(hwm)
	}
	return first, nil
}

// sectors is the number of sealed sectors in a block.
func (v *volume) sectors() int64 { return v.blockSize / sealSector }

// sectorInputs holds a sector's nonce and additional data. The cipher is
// an interface, so what is passed to it escapes to the heap: one of these
// per call of sealSectors or openSectors, reused for each of its sectors,
// instead of two allocations per sector.
type sectorInputs struct {
	nonce [12]byte // the counter, big-endian, then four zero bytes
	aad   [8]byte  // the sector's address in the volume
}

// set fills in sector i of block blk's inputs, its nonce counter ctr.
func (in *sectorInputs) set(v *volume, ctr, blk uint64, i int64) {
	binary.BigEndian.PutUint64(in.nonce[:8], ctr)
	binary.BigEndian.PutUint64(in.aad[:], blk*uint64(v.sectors())+uint64(i))
}

// sealSectors encrypts plain (whole sectors first..first+len/4096 of block
// blk) into out (the same length; plain may be out itself) and their seals
// into seals, under fresh nonces. out's capacity must reach 16 bytes past
// its length: GCM writes each tag right after its sector, where the next
// sector goes, and the bytes there are put back once the tag is taken.
func (v *volume) sealSectors(aead cipher.AEAD, blk uint64, first int64, plain, out, seals []byte) error {
	n := int64(len(plain)) / sealSector
	ctr, err := v.reserveNonces(uint64(n))
	if err != nil {
		return err
	}
	out = out[:n*sealSector+16]
	in := new(sectorInputs)
	for i := range n {
		lo, hi := i*sealSector, (i+1)*sealSector
		var saved, tag [16]byte
		copy(saved[:], out[hi:])
		in.set(v, ctr+uint64(i), blk, first+i)
		sealed := aead.Seal(out[lo:lo], in.nonce[:], plain[lo:hi], in.aad[:])
		copy(tag[:], sealed[sealSector:])
		copy(out[hi:], saved[:])
		s := seals[i*sealSize:]
		binary.BigEndian.PutUint64(s, ctr+uint64(i))
		copy(s[8:sealSize], tag[:])
	}
	return nil
}

// openSectors decrypts and verifies, in place, sealed sectors first.. of
// block blk (data, with their seals). data's capacity must reach 16 bytes
// past its length (see sealSectors).
func (v *volume) openSectors(aead cipher.AEAD, blk uint64, first int64, data, seals []byte) error {
	return v.openSectorsTo(aead, blk, first, data, data, seals)
}

// openSectorsTo is openSectors with the plaintext going to out (data
// itself, or a buffer of data's length that does not overlap it), so that
// a read of whole sectors decrypts straight into the reader's buffer.
func (v *volume) openSectorsTo(aead cipher.AEAD, blk uint64, first int64, out, data, seals []byte) error {
	n := int64(len(data)) / sealSector
	data = data[:n*sealSector+16]
	out = out[:n*sealSector]
	in := new(sectorInputs)
	for i := range n {
		lo, hi := i*sealSector, (i+1)*sealSector
		s := seals[i*sealSize : (i+1)*sealSize]
		var saved [16]byte
		copy(saved[:], data[hi:])
		copy(data[hi:], s[8:])
		in.set(v, binary.BigEndian.Uint64(s), blk, first+i)
		_, err := aead.Open(out[lo:lo], in.nonce[:], data[lo:hi+16], in.aad[:])
		copy(data[hi:], saved[:])
		if err != nil {
			return fmt.Errorf("%w: volume %s block %d sector %d: its data file was altered or damaged", ErrDataAuth, v.id, blk, first+i)
		}
	}
	return nil
}

// readSealed reads bytes [in, in+len(dst)) of block blk from its sealed
// slot.
func (v *volume) readSealed(blk, slot uint64, in int64, dst []byte) error {
	aead, err := v.cipher()
	if err != nil {
		return err
	}
	s0, s1 := in/sealSector, (in+int64(len(dst))+sealSector-1)/sealSector
	n := s1 - s0
	buf := v.env.buffers.get(int(n*(sealSector+sealSize) + 16))
	defer v.env.buffers.put(buf)
	data, seals, err := v.readSectors(buf, slot, s0, s1)
	if err != nil {
		return err
	}
	if in%sealSector == 0 && len(dst)%sealSector == 0 {
		// Whole sectors: decrypted straight into dst, no copy.
		return v.openSectorsTo(aead, blk, s0, dst, data, seals)
	}
	if err := v.openSectors(aead, blk, s0, data, seals); err != nil {
		return err
	}
	copy(dst, data[in-s0*sealSector:])
	return nil
}

// readSectors reads sealed sectors s0..s1 of slot, and their seals, into
// buf (room for both and 16 bytes). A read of the whole block is one read
// of the slot: the seals follow the block there, and they
// follow the data in buf too (openSectors' tag spill past the last sector
// then lands in the first seals, which it puts back, and reads none of
// them while they are displaced when there are two sectors or more).
// Otherwise it is two reads, the seals after a 16-byte gap.
func (v *volume) readSectors(buf []byte, slot uint64, s0, s1 int64) (data, seals []byte, err error) {
	n := s1 - s0
	base := v.slotOffset(slot)
	if s0 == 0 && s1 == v.sectors() && n >= 2 {
		data, seals = buf[:n*sealSector], buf[n*sealSector:n*(sealSector+sealSize)]
		_, err = v.file.ReadAt(buf[:n*(sealSector+sealSize)], base)
		return data, seals, err
	}
	data, seals = buf[:n*sealSector], buf[n*sealSector+16:n*(sealSector+sealSize)+16]
	if _, err := v.file.ReadAt(data, base+s0*sealSector); err != nil {
		return nil, nil, err
	}
	_, err = v.file.ReadAt(seals, base+v.blockSize+s0*sealSize)
	return data, seals, err
}

// readSlotPlain reads the whole of block blk from its sealed slot.
func (v *volume) readSlotPlain(blk, slot uint64, dst []byte) error {
	return v.readSealed(blk, slot, 0, dst[:v.blockSize])
}

// writeSealedSlot seals plain, the whole of block blk, into slot: data and
// seals in one write.
func (v *volume) writeSealedSlot(blk, slot uint64, plain []byte) error {
	aead, err := v.cipher()
	if err != nil {
		return err
	}
	// The seals follow the data, in the buffer as in the slot; the 16
	// bytes of tag spill that sealSectors needs past the data are the
	// seals' own, put back before they are written.
	buf := v.env.buffers.get(int(v.stride))
	defer v.env.buffers.put(buf)
	seals := buf[v.blockSize : v.blockSize+v.sectors()*sealSize]
	if err := v.sealSectors(aead, blk, 0, plain[:v.blockSize], buf[:v.blockSize], seals); err != nil {
		return err
	}
	// A padded slot's padding (slot_stride.go) is written as zeros,
	// never as what the pooled buffer held before.
	clear(buf[v.blockSize+v.sectors()*sealSize : v.stride])
	_, err = v.file.WriteAt(buf[:v.stride], v.slotOffset(slot))
	return err
}

// rewriteSealed writes src at offset in of block blk in its slot, which no
// durable metadata refers to yet: the sectors it covers are sealed again
// under new nonces (the partly covered ones read and opened first).
func (v *volume) rewriteSealed(blk, slot uint64, in int64, src []byte) error {
	aead, err := v.cipher()
	if err != nil {
		return err
	}
	s0, s1 := in/sealSector, (in+int64(len(src))+sealSector-1)/sealSector
	n := s1 - s0
	buf := v.env.buffers.get(int(n*(2*sealSector+sealSize) + 16))
	defer v.env.buffers.put(buf)
	out, plain, seals := buf[:n*sealSector], buf[n*sealSector+16:2*n*sealSector+16], buf[2*n*sealSector+16:]
	base := v.slotOffset(slot)
	// Partly covered edge sectors keep the rest of their content; a write
	// of whole sectors is sealed straight from src.
	lead, tail := in-s0*sealSector, s1*sealSector-(in+int64(len(src)))
	if lead == 0 && tail == 0 {
		plain = src
	}
	for _, i := range partlyCovered(n, lead, tail) {
		var sb [sealSize]byte
		sector := out[i*sealSector : (i+1)*sealSector]
		if _, err := v.file.ReadAt(sector, base+(s0+i)*sealSector); err != nil {
			return err
		}
		if _, err := v.file.ReadAt(sb[:], base+v.blockSize+(s0+i)*sealSize); err != nil {
			return err
		}
		if err := v.openSectors(aead, blk, s0+i, sector, sb[:]); err != nil {
			return err
		}
		copy(plain[i*sealSector:], sector)
	}
	if lead > 0 || tail > 0 {
		copy(plain[lead:], src)
	}
	if err := v.sealSectors(aead, blk, s0, plain, out, seals); err != nil {
		return err
	}
	if _, err := v.file.WriteAt(out, base+s0*sealSector); err != nil {
		return err
	}
	_, err = v.file.WriteAt(seals, base+v.blockSize+s0*sealSize)
	return err
}

// redirectSealed writes block blk, from slot from with src written at
// offset in, to slot to: one read and one write of the stored slot, the
// covered sectors sealed anew in between.
func (v *volume) redirectSealed(blk, from, to uint64, in int64, src []byte) error {
	aead, err := v.cipher()
	if err != nil {
		return err
	}
	img := v.env.buffers.get(int(v.stride) + 16) // 16: the tag spill (sealSectors)
	defer v.env.buffers.put(img)
	if _, err := v.file.ReadAt(img[:v.stride], v.slotOffset(from)); err != nil {
		return err
	}
	s0, s1 := in/sealSector, (in+int64(len(src))+sealSector-1)/sealSector
	n := s1 - s0
	data := img[s0*sealSector : s1*sealSector]
	seals := img[v.blockSize+s0*sealSize : v.blockSize+s1*sealSize]
	plain := src
	lead, tail := in-s0*sealSector, s1*sealSector-(in+int64(len(src)))
	if lead > 0 || tail > 0 {
		buf := v.env.buffers.get(int(n*sealSector) + 16)
		defer v.env.buffers.put(buf)
		plain = buf[:n*sealSector]
		for _, i := range partlyCovered(n, lead, tail) {
			copy(plain[i*sealSector:(i+1)*sealSector], data[i*sealSector:])
			if err := v.openSectors(aead, blk, s0+i, plain[i*sealSector:(i+1)*sealSector], seals[i*sealSize:(i+1)*sealSize]); err != nil {
				return err
			}
		}
		copy(plain[lead:], src)
	}
	if err := v.sealSectors(aead, blk, s0, plain, data, seals); err != nil {
		return err
	}
	_, err = v.file.WriteAt(img[:v.stride], v.slotOffset(to))
	return err
}

// partlyCovered lists which of a write's n sectors it covers only in part,
// given the bytes it leaves uncovered before (lead) and after (tail) it:
// each sector once, also when the write lies within one sector.
func partlyCovered(n, lead, tail int64) []int64 {
	var edges []int64
	if lead > 0 {
		edges = append(edges, 0)
	}
	if tail > 0 && (n > 1 || lead == 0) {
		edges = append(edges, n-1)
	}
	return edges
}

// writeBlockSealed is writeBlock for an encrypted volume: in place into a
// slot born in this generation that no sync round has made durable yet;
// otherwise the whole block, old content merged, into a new slot.
func (v *volume) writeBlockSealed(blk uint64, in int64, src []byte) error {
	// (writeBlock has loaded blk's map page.)
	if _, err := v.cipher(); err != nil {
		return err
	}
	lk := v.locks.of(blk)
	lk.Lock() // readers must not see a sector between its data and its seal
	defer lk.Unlock()
	v.hot.capture.RLock()
	defer v.hot.capture.RUnlock()
	v.mapMu.RLock()
	e, gen, hydrating := v.live.get(blk), v.gen, v.hydratingLocked()
	v.mapMu.RUnlock()
	whole := in == 0 && int64(len(src)) == v.blockSize
	if e.hasData() && e.gen == gen && !e.captured() {
		if whole {
			// Sectors and seals in one write of the slot.
			return v.ioErr("write", blk, v.writeSealedSlot(blk, e.slot, src))
		}
		return v.ioErr("write", blk, v.rewriteSealed(blk, e.slot, in, src))
	}

	if err := v.env.space.allocate(v.stride); err != nil {
		return v.ioErr("write", blk, err)
	}
	v.mapMu.Lock()
	slot := v.slots.alloc()
	v.mapMu.Unlock()
	var err error
	switch {
	case whole:
		// A whole block is sealed straight from src.
		err = v.writeSealedSlot(blk, slot, src)
	case e.hasData():
		// The old slot, copied as it is stored, with the sectors the
		// write covers sealed anew: the others keep their ciphertext
		// and seals, valid anywhere (the address, not the slot, is
		// what they are bound to), so they need no opening and sealing.
		err = v.redirectSealed(blk, e.slot, slot, in, src)
	default:
		plain := v.env.buffers.get(int(v.blockSize))
		if !e.mapped() && hydrating {
			err = v.fetchBase(context.Background(), blk, plain)
		} else {
			clear(plain)
		}
		if err == nil {
			copy(plain[in:], src)
			err = v.writeSealedSlot(blk, slot, plain)
		}
		v.env.buffers.put(plain)
	}
	return v.installRedirect(blk, slot, gen, err)
}
