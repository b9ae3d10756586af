package meta

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"strconv"
)

// Badger's memtable write-ahead logs (<fid>.mem), as badger v4 writes them
// (memtable.go, structs.go, value.go): a walHeaderSize header (encryption
// key ID and IV, unused here), then entries:
//
//	meta byte | user-meta byte | uvarint key length | uvarint value length |
//	uvarint expiry | key | value | CRC-32C of everything before it
//
// Keys carry their version: the user key, then 8 bytes of MaxUint64-version,
// big-endian. A transaction's entries have bitTxn set and are closed by a
// bitFinTxn entry whose value is the commit version in decimal. Badger
// replays a log up to the first entry that does not decode (or the end of
// its transaction) and truncates the file there, without a word: damage in
// the middle of a log loses every record after it. scanWAL reads a log the
// same way, so the open check can see what lies past that point first.
const (
	walHeaderSize = 20
	walBitDelete  = 1 << 0
	walBitTxn     = 1 << 6
	walBitFinTxn  = 1 << 7
	// walKnownBits are the meta bits Badger sets (delete, value pointer,
	// discard earlier versions, merge, txn, end of txn).
	walKnownBits = 1<<0 | 1<<1 | 1<<2 | 1<<3 | walBitTxn | walBitFinTxn
	// walMaxHeader is the longest entry header: two bytes and three
	// uvarints (two of 32 bits, one of 64).
	walMaxHeader = 2 + 5 + 5 + 10
	walMaxKey    = 1 << 16
	// walMaxValue bounds a plausible value (Badger keeps values up to
	// ValueThreshold, 1 MiB, in the log).
	walMaxValue = 1 << 20
)

// walEntry is one decoded log entry.
type walEntry struct {
	meta       byte
	key, value []byte // key with its version suffix
	start, end int    // byte range in the log
}

func (e walEntry) userKey() []byte { return e.key[:len(e.key)-8] }

func (e walEntry) version() uint64 {
	return math.MaxUint64 - binary.BigEndian.Uint64(e.key[len(e.key)-8:])
}

// entryHeader decodes the header at off: the end of the entry it declares
// (whether or not the bytes are there) and whether the header is plausible.
func entryHeader(b []byte, off int) (keyLen, valLen, hdrEnd int, ok bool) {
	p := off + 2
	if p > len(b) {
		return 0, 0, 0, false
	}
	kl, n := binary.Uvarint(b[p:])
	if n <= 0 {
		return 0, 0, 0, false
	}
	p += n
	vl, n := binary.Uvarint(b[p:])
	if n <= 0 {
		return 0, 0, 0, false
	}
	p += n
	if _, n = binary.Uvarint(b[p:]); n <= 0 {
		return 0, 0, 0, false
	}
	p += n
	if kl < 8 || kl > walMaxKey || vl > walMaxValue {
		return 0, 0, 0, false
	}
	return int(kl), int(vl), p, true
}

// readWALEntry decodes the entry at off if it is whole and its checksum
// holds.
func readWALEntry(b []byte, off int) (walEntry, bool) {
	kl, vl, p, ok := entryHeader(b, off)
	if !ok {
		return walEntry{}, false
	}
	end := p + kl + vl + crc32.Size
	if end > len(b) {
		return walEntry{}, false
	}
	if crc32.Checksum(b[off:end-crc32.Size], crc32c) != binary.BigEndian.Uint32(b[end-crc32.Size:]) {
		return walEntry{}, false
	}
	return walEntry{meta: b[off], key: b[p : p+kl], value: b[p+kl : p+kl+vl], start: off, end: end}, true
}

// walScan is what scanWAL found in one log.
type walScan struct {
	// entries are the records Badger will replay, in log order.
	entries []walEntry
	// validEnd is where Badger's replay stops (and truncates the file).
	validEnd int
	// tail holds whatever follows validEnd up to the last non-zero byte.
	tail []byte
	// pending are the whole entries of an unfinished transaction right
	// after validEnd (a writer stopped in the middle of it).
	pending []walEntry
}

// scanWAL reads a memtable log as Badger replays it.
func scanWAL(b []byte) walScan {
	var s walScan
	s.validEnd = min(walHeaderSize, len(b))
	off := s.validEnd
	var txn []walEntry
	var txnTs uint64
	for {
		e, ok := readWALEntry(b, off)
		if !ok {
			break
		}
		off = e.end
		switch {
		case e.meta&walBitTxn != 0:
			ts := e.version()
			if txnTs == 0 {
				txnTs = ts
			}
			if ts != txnTs {
				goto done
			}
			txn = append(txn, e)
		case e.meta&walBitFinTxn != 0:
			ts, err := strconv.ParseUint(string(e.value), 10, 64)
			if err != nil || ts != txnTs {
				goto done
			}
			s.entries = append(s.entries, txn...)
			txn, txnTs = txn[:0], 0
			s.validEnd = off
		default:
			if txnTs != 0 {
				goto done
			}
			s.entries = append(s.entries, e)
			s.validEnd = off
		}
	}
done:
	last := len(b) - 1
	for last >= s.validEnd && b[last] == 0 {
		last--
	}
	s.tail = b[s.validEnd : last+1]
	// The entries of an unfinished transaction right after validEnd.
	off = s.validEnd
	var ts uint64
	for {
		e, ok := readWALEntry(b, off)
		if !ok || e.meta&walBitTxn == 0 || (ts != 0 && e.version() != ts) {
			break
		}
		ts = e.version()
		s.pending = append(s.pending, e)
		off = e.end
	}
	return s
}

// recordAfterCut finds a whole entry past the records Badger replays and
// the unfinished transaction a killed writer may leave: the page cache
// survives a killed process, so such an entry means a damaged one before
// it. It tries every offset, since entry boundaries past damage are
// unknown; it returns the entry's offset in the log.
func (s walScan) recordAfterCut() (int, bool) {
	p := 0
	for _, e := range s.pending {
		p += e.end - e.start
	}
	for i := p; i < len(s.tail); i++ {
		if s.tail[i]&^walKnownBits != 0 {
			continue
		}
		if _, ok := readWALEntry(s.tail, i); ok {
			return s.validEnd + i, true
		}
	}
	return 0, false
}

// acknowledgedAfterCut looks in the part of the log Badger drops for a sync
// record (key seqKey) at or below witnessed: a sync that was acknowledged,
// written after the point where replay stops, proves that acknowledged
// records would be lost. It finds entries wherever they start, since the
// entry boundaries past damage are unknown.
func (s walScan) acknowledgedAfterCut(witnessed uint64) (uint64, bool) {
	for i := 0; ; {
		j := bytes.Index(s.tail[i:], seqKey)
		if j < 0 {
			return 0, false
		}
		keyAt := i + j
		i = keyAt + 1
		// The key of a sync record follows a header of 5 bytes (its key,
		// value and expiry lengths are one-byte uvarints).
		start := keyAt - 5
		if start < 0 {
			continue
		}
		e, ok := readWALEntry(s.tail, start)
		if !ok || !bytes.Equal(e.userKey(), seqKey) || len(e.value) != 8 || e.meta&walBitDelete != 0 {
			continue
		}
		if seq := binary.BigEndian.Uint64(e.value); seq <= witnessed {
			return seq, true
		}
	}
}

// walFinding describes what is wrong with a log, or "" if nothing.
// strict: the previous writer ran in this boot, so the log must be exactly
// as written.
func walFinding(name string, b []byte, strict bool, witnessed uint64) string {
	s := scanWAL(b)
	if seq, ok := s.acknowledgedAfterCut(witnessed); ok {
		return fmt.Sprintf("%s: the record at offset %d is damaged, and sync %d, acknowledged, follows it: Badger would drop every record after the damage (%d bytes)",
			name, s.validEnd, seq, len(s.tail))
	}
	if !strict {
		return ""
	}
	if at, ok := s.recordAfterCut(); ok {
		return fmt.Sprintf("%s: the record at offset %d is damaged and records follow it (the next at offset %d; Badger would drop %d bytes)",
			name, s.validEnd, at, len(s.tail))
	}
	return ""
}
