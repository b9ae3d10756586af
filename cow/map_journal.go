package cow

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// A volume's map journal holds every change to its live map that no sync
// round has made durable yet, in a file on a memory file system (tmpfs),
// written through a shared mapping: a store to memory per change. A write
// is acknowledged once its data is in the data file's page cache and its
// mapping is in the journal, and both outlive the process: so a successor
// that takes over the volume after a crash (the FUSE connection, the loop
// devices and the file systems on them never noticed) replays the journal
// over the durable map and serves exactly what the dead process had
// acknowledged, not the map as of the last sync round. A reboot loses the
// page cache and the journal together: the journal records the boot it
// belongs to, and another boot's is ignored (the durable map is then the
// truth, as after a power cut).
//
// Layout: a journalHeaderLen header (magic, volume ID, metadata store ID,
// boot ID), then journalRecordLen records appended in the order the map
// changed: block, slot, generation, flags (mapped, zero), CRC-32C. Replay
// applies them in order; the last record of a block wins. A sync round
// notes the end when it captures the dirty blocks and, once its changes
// are durable, drops the records before that mark.
const (
	journalMagic     = "cowvolJ1"
	journalHeaderLen = 128
	journalRecordLen = 32
	// journalInitial and journalMax bound the file: past journalMax
	// (2 M changes no round has made durable) writers sync instead.
	journalInitial = 1 << 20
	journalMax     = 64 << 20
)

var journalCRC = crc32.MakeTable(crc32.Castagnoli)

// mapJournal is one volume's journal. Its methods are called with the
// volume's mapMu held (exclusively for append, mark and drop).
type mapJournal struct {
	f    *os.File
	path string
	buf  []byte // the mapping
	end  int    // where the next record goes
}

// journalRecord is a change of one block's live entry: present false
// removes the entry.
type journalRecord struct {
	blk     uint64
	x       extent
	present bool
}

func (r journalRecord) encode(b []byte) {
	binary.BigEndian.PutUint64(b[0:], r.blk)
	binary.BigEndian.PutUint64(b[8:], r.x.slot)
	binary.BigEndian.PutUint32(b[16:], r.x.gen)
	flags := r.x.flags & flagZero
	if r.present {
		flags |= flagMapped
	}
	b[20] = flags
	clear(b[21:28])
	binary.BigEndian.PutUint32(b[28:], crc32.Checksum(b[:28], journalCRC))
}

func decodeJournalRecord(b []byte) (journalRecord, bool) {
	if crc32.Checksum(b[:28], journalCRC) != binary.BigEndian.Uint32(b[28:]) || b[20]&^(flagMapped|flagZero) != 0 {
		return journalRecord{}, false
	}
	r := journalRecord{blk: binary.BigEndian.Uint64(b[0:]), present: b[20]&flagMapped != 0}
	r.x = extent{slot: binary.BigEndian.Uint64(b[8:]), gen: binary.BigEndian.Uint32(b[16:]), flags: b[20] & flagZero}
	return r, true
}

// journalHeader identifies what a journal belongs to.
type journalHeader struct {
	volID   string
	storeID []byte
	boot    string
}

func (h journalHeader) encode() []byte {
	b := make([]byte, journalHeaderLen)
	copy(b, journalMagic)
	copy(b[8:40], h.volID)
	copy(b[40:56], h.storeID)
	copy(b[56:92], h.boot)
	binary.BigEndian.PutUint32(b[journalHeaderLen-4:], crc32.Checksum(b[:journalHeaderLen-4], journalCRC))
	return b
}

func decodeJournalHeader(b []byte) (journalHeader, bool) {
	if len(b) < journalHeaderLen || string(b[:8]) != journalMagic ||
		crc32.Checksum(b[:journalHeaderLen-4], journalCRC) != binary.BigEndian.Uint32(b[journalHeaderLen-4:]) {
		return journalHeader{}, false
	}
	trim := func(p []byte) string { return strings.TrimRight(string(p), "\x00") }
	return journalHeader{volID: trim(b[8:40]), storeID: append([]byte(nil), b[40:56]...), boot: trim(b[56:92])}, true
}

// readJournal returns the records of the journal at path if it belongs to
// h (same volume, store and boot); none otherwise.
func readJournal(path string, h journalHeader) ([]journalRecord, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read map journal: %w", err)
	}
	got, ok := decodeJournalHeader(b)
	if !ok || got.volID != h.volID || string(got.storeID) != string(h.storeID) || got.boot != h.boot || h.boot == "" {
		return nil, nil
	}
	var recs []journalRecord
	for off := journalHeaderLen; off+journalRecordLen <= len(b); off += journalRecordLen {
		r, ok := decodeJournalRecord(b[off : off+journalRecordLen])
		if !ok {
			break
		}
		recs = append(recs, r)
	}
	return recs, nil
}

// openJournal creates (replacing any) the journal of the volume h names at
// path, starting with recs: the records of a replayed journal that no
// sync round has made durable yet.
func openJournal(path string, h journalHeader, recs []journalRecord) (*mapJournal, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("map journal: %w", err)
	}
	tmp := path + ".new"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("map journal: %w", err)
	}
	j := &mapJournal{f: f, path: path, end: journalHeaderLen}
	size := journalInitial
	for size < journalHeaderLen+len(recs)*journalRecordLen+journalInitial/2 {
		size *= 2
	}
	if err := j.resize(size); err != nil {
		j.close()
		os.Remove(tmp)
		return nil, err
	}
	copy(j.buf, h.encode())
	for _, r := range recs {
		if !j.append(r) {
			j.close()
			os.Remove(tmp)
			return nil, fmt.Errorf("map journal: no room for %d records", len(recs))
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		j.close()
		os.Remove(tmp)
		return nil, fmt.Errorf("map journal: %w", err)
	}
	return j, nil
}

// resize makes the file and its mapping size bytes, allocated up front
// (a store into an unallocated page of a full tmpfs would be a SIGBUS).
func (j *mapJournal) resize(size int) error {
	if err := unix.Fallocate(int(j.f.Fd()), 0, 0, int64(size)); err != nil {
		return fmt.Errorf("map journal: allocate %d bytes: %w", size, err)
	}
	b, err := unix.Mmap(int(j.f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("map journal: mmap: %w", err)
	}
	if j.buf != nil {
		unix.Munmap(j.buf)
	}
	j.buf = b
	return nil
}

// append records a change. Past the file's end it grows the file; if it
// cannot, the change goes unrecorded and append reports false: the writer
// must then sync before it acknowledges.
func (j *mapJournal) append(r journalRecord) bool {
	if j.end+journalRecordLen > len(j.buf) {
		if len(j.buf) >= journalMax || j.resize(2*len(j.buf)) != nil {
			return false
		}
	}
	r.encode(j.buf[j.end : j.end+journalRecordLen])
	j.end += journalRecordLen
	return true
}

// mark is where a sync round that captures now finds the journal's end.
func (j *mapJournal) mark() int { return j.end }

// drop removes the records before mark, which a sync round has made
// durable, keeping those appended since.
func (j *mapJournal) drop(mark int) {
	n := copy(j.buf[journalHeaderLen:], j.buf[mark:j.end])
	clear(j.buf[journalHeaderLen+n : j.end])
	j.end = journalHeaderLen + n
}

func (j *mapJournal) close() error {
	if j.buf != nil {
		unix.Munmap(j.buf)
		j.buf = nil
	}
	return j.f.Close()
}

// remove closes the journal and deletes its file (the volume is gone).
func (j *mapJournal) remove() error {
	return errors.Join(j.close(), os.Remove(j.path))
}
