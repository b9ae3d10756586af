package meta

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// The witness is a small file beside the Badger directory that remembers,
// outside Badger, how far Badger's durable state has come: the store's
// identity and the highest sync sequence known durable. Every Sync writes
// the next sequence into Badger (key x/seq) before it syncs; the witness
// follows in the background (one fdatasync, coalesced, off the caller's
// path). A Badger whose files lost acknowledged records (a damaged
// write-ahead log that Badger replays only up to the damage, a lost
// MANIFEST, a directory restored from an old backup) comes back with a
// sequence below the witness's, which the open check refuses.
//
// Layout: two slots of witnessSlotSize bytes at offsets 0 and
// witnessSlotSize, written alternately (sequence parity), so a torn write
// of one leaves the other whole. A slot is
//
//	magic "cowvolW1" | seq uint64 | store ID [16] | boot ID [36] | CRC-32C
//
// integers big-endian. The boot ID is the kernel's of the process that
// wrote the slot: a start in the same boot knows the page cache survived
// (the daemon was killed, the machine was not reset), so Badger's logs
// must be exactly as written.
const (
	witnessMagic    = "cowvolW1"
	witnessSlotSize = 4096
	bootIDLen       = 36
	witnessBodyLen  = len(witnessMagic) + 8 + storeIDLen + bootIDLen
	storeIDLen      = 16
)

var crc32c = crc32.MakeTable(crc32.Castagnoli)

// witnessState is what a witness slot records.
type witnessState struct {
	seq  uint64
	id   [storeIDLen]byte
	boot string
}

func (w witnessState) encode() []byte {
	b := make([]byte, 0, witnessBodyLen+4)
	b = append(b, witnessMagic...)
	b = binary.BigEndian.AppendUint64(b, w.seq)
	b = append(b, w.id[:]...)
	var boot [bootIDLen]byte
	copy(boot[:], w.boot)
	b = append(b, boot[:]...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crc32c))
}

func decodeWitnessSlot(b []byte) (witnessState, bool) {
	if len(b) < witnessBodyLen+4 || string(b[:len(witnessMagic)]) != witnessMagic {
		return witnessState{}, false
	}
	body := b[:witnessBodyLen]
	if crc32.Checksum(body, crc32c) != binary.BigEndian.Uint32(b[witnessBodyLen:]) {
		return witnessState{}, false
	}
	p := len(witnessMagic)
	var w witnessState
	w.seq = binary.BigEndian.Uint64(body[p:])
	p += 8
	copy(w.id[:], body[p:])
	p += storeIDLen
	w.boot = string(bytes.TrimRight(body[p:p+bootIDLen], "\x00"))
	return w, true
}

// errNoWitness: the witness file does not exist.
var errNoWitness = errors.New("no witness")

// readWitness returns the newer valid slot of the witness at path.
func readWitness(path string) (witnessState, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return witnessState{}, errNoWitness
	}
	if err != nil {
		return witnessState{}, fmt.Errorf("read witness: %w", err)
	}
	var best witnessState
	found := false
	for _, off := range []int{0, witnessSlotSize} {
		if off >= len(b) {
			break
		}
		w, ok := decodeWitnessSlot(b[off:])
		if ok && (!found || w.seq > best.seq) {
			best, found = w, true
		}
	}
	if !found {
		return witnessState{}, fmt.Errorf("witness %s: no intact slot", path)
	}
	return best, nil
}

// BootID is the kernel's boot ID, or "" where there is none: what a
// process writes to the page cache or to tmpfs outlives it until the next
// boot, and no longer.
func BootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// witness keeps the witness file up to date. advance is cheap and never
// blocks; a goroutine owned by the witness writes and syncs.
type witness struct {
	path string
	log  *slog.Logger
	f    *os.File
	id   [storeIDLen]byte
	boot string

	want    atomic.Uint64 // newest sequence known durable in Badger
	wake    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	writeMu sync.Mutex // serialises writes; guards the fields that follow
	written uint64     // the sequence last recorded
	primed  bool       // whether anything was recorded yet
}

// createWitness writes a new witness file for store id at seq (both
// slots), durably, replacing any file at path.
func createWitness(path string, st witnessState) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("create witness: %w", err)
	}
	b := make([]byte, 2*witnessSlotSize)
	copy(b, st.encode())
	copy(b[witnessSlotSize:], st.encode())
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("create witness %s: %w", path, err)
	}
	return nil
}

// startWitness opens the witness at path (which must exist) and starts its
// writer, which records st.seq and then every sequence passed to advance.
func startWitness(path string, st witnessState, log *slog.Logger) (*witness, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("open witness: %w", err)
	}
	w := &witness{path: path, log: log, f: f, id: st.id, boot: st.boot,
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	w.want.Store(st.seq)
	if err := w.write(st.seq); err != nil {
		f.Close()
		return nil, err
	}
	go w.run()
	return w, nil
}

// advance records that Badger's state up to sequence seq is durable.
func (w *witness) advance(seq uint64) {
	for {
		cur := w.want.Load()
		if seq <= cur || w.want.CompareAndSwap(cur, seq) {
			break
		}
	}
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *witness) run() {
	defer close(w.done)
	for {
		select {
		case <-w.stop:
			return
		case <-w.wake:
		}
		if err := w.write(w.want.Load()); err != nil {
			w.log.Error("updating the metadata witness failed; the next sync retries", "path", w.path, "err", err)
		}
	}
}

// write records seq in the slot of its parity and syncs it.
func (w *witness) write(seq uint64) error {
	w.writeMu.Lock()
	defer w.writeMu.Unlock()
	if w.primed && seq <= w.written {
		return nil
	}
	b := witnessState{seq: seq, id: w.id, boot: w.boot}.encode()
	if _, err := w.f.WriteAt(b, int64(seq%2)*witnessSlotSize); err != nil {
		return fmt.Errorf("write witness: %w", err)
	}
	if err := unix.Fdatasync(int(w.f.Fd())); err != nil {
		return fmt.Errorf("fdatasync witness: %w", err)
	}
	w.written, w.primed = seq, true
	return nil
}

// close stops the writer and records the final sequence, final.
func (w *witness) close(final uint64) error {
	close(w.stop)
	<-w.done
	w.advance(final)
	err := w.write(w.want.Load())
	return errors.Join(err, w.f.Close())
}

func syncDir(path string) error {
	d, err := os.Open(path)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", path, err)
	}
	return nil
}
