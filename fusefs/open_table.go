package fusefs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"strings"
	"sync"
)

// openTable records every open file handle of the connection in a file of
// the state directory (tmpfs), written before the OPEN is answered and
// cleared before the RELEASE is: a process that takes the connection over
// reopens each one, so a volume attached to a loop device stays in use
// (DeleteVolume refuses it) and its handle keeps working.
//
// A record is openRecordLen bytes: handle, inode, the OPEN's request ID,
// open flags, the file's volume or snapshot ID, CRC-32C. A free slot is
// zeros. Records are rewritten in place, never moved.
const openRecordLen = 64

var crc32c = crc32.MakeTable(crc32.Castagnoli)

// openRecord is one open handle.
type openRecord struct {
	fh     uint64
	ino    uint64
	unique uint64 // the OPEN's request ID, without the resend bit
	flags  uint32
	id     string // vol-... or snap-...
}

func (r openRecord) encode() []byte {
	b := make([]byte, openRecordLen)
	binary.BigEndian.PutUint64(b[0:], r.fh)
	binary.BigEndian.PutUint64(b[8:], r.ino)
	binary.BigEndian.PutUint64(b[16:], r.unique)
	binary.BigEndian.PutUint32(b[24:], r.flags)
	copy(b[28:60], r.id)
	binary.BigEndian.PutUint32(b[60:], crc32.Checksum(b[:60], crc32c))
	return b
}

func decodeOpenRecord(b []byte) (openRecord, bool) {
	if binary.BigEndian.Uint64(b) == 0 || crc32.Checksum(b[:60], crc32c) != binary.BigEndian.Uint32(b[60:]) {
		return openRecord{}, false
	}
	return openRecord{
		fh:     binary.BigEndian.Uint64(b[0:]),
		ino:    binary.BigEndian.Uint64(b[8:]),
		unique: binary.BigEndian.Uint64(b[16:]),
		flags:  binary.BigEndian.Uint32(b[24:]),
		id:     strings.TrimRight(string(b[28:60]), "\x00"),
	}, true
}

type openTable struct {
	f *os.File

	mu    sync.Mutex        // guards the fields that follow
	slot  map[uint64]int64  // handle -> record offset
	free  []int64           // cleared record offsets
	end   int64             // offset past the last record
	byReq map[uint64]uint64 // OPEN request ID -> handle
}

// openOpenTable opens the table at path. fresh (a new connection) starts
// it empty; otherwise it returns the records a predecessor left.
func openOpenTable(path string, fresh bool) (*openTable, []openRecord, error) {
	flags := os.O_RDWR | os.O_CREATE
	if fresh {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("open table: %w", err)
	}
	t := &openTable{f: f, slot: map[uint64]int64{}, byReq: map[uint64]uint64{}}
	b, err := os.ReadFile(path)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("open table: %w", err)
	}
	var recs []openRecord
	for off := int64(0); off+openRecordLen <= int64(len(b)); off += openRecordLen {
		r, ok := decodeOpenRecord(b[off : off+openRecordLen])
		if !ok {
			t.free = append(t.free, off)
			continue
		}
		recs = append(recs, r)
		t.slot[r.fh] = off
		t.byReq[r.unique] = r.fh
	}
	t.end = int64(len(b)) / openRecordLen * openRecordLen
	return t, recs, nil
}

// handleOf returns the handle an OPEN with request ID unique got, if it
// was recorded: the kernel resends an OPEN the predecessor recorded but
// did not answer, and it must get that handle, not a second one.
func (t *openTable) handleOf(unique uint64) (uint64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fh, ok := t.byReq[unique]
	return fh, ok
}

// add records an open handle.
func (t *openTable) add(r openRecord) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	off := t.end
	if n := len(t.free); n > 0 {
		off, t.free = t.free[n-1], t.free[:n-1]
	} else {
		t.end += openRecordLen
	}
	if _, err := t.f.WriteAt(r.encode(), off); err != nil {
		t.free = append(t.free, off)
		return fmt.Errorf("record open handle: %w", err)
	}
	t.slot[r.fh] = off
	t.byReq[r.unique] = r.fh
	return nil
}

// remove clears the record of handle fh (a RELEASE), if any.
func (t *openTable) remove(fh uint64) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	off, ok := t.slot[fh]
	if !ok {
		return nil
	}
	if _, err := t.f.WriteAt(make([]byte, openRecordLen), off); err != nil {
		return fmt.Errorf("clear open handle: %w", err)
	}
	delete(t.slot, fh)
	for u, h := range t.byReq {
		if h == fh {
			delete(t.byReq, u)
			break
		}
	}
	t.free = append(t.free, off)
	return nil
}

func (t *openTable) close() error {
	if t == nil {
		return nil
	}
	return t.f.Close()
}

var errNoSession = errors.New("no session")
