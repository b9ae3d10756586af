package meta

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/pb"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/dgraph-io/badger/v4/y"
	"github.com/dgraph-io/ristretto/v2/z"
	"google.golang.org/protobuf/proto"
)

// storeCheck examines a Badger directory before Badger opens it, reading
// every file itself and changing none. Badger's own open trusts what it
// finds and repairs by discarding: it replays a damaged log only up to the
// damage and truncates the rest away, deletes every table its MANIFEST
// does not list (all of them when the MANIFEST is gone), skips a table
// whose checksum fails, and panics in a background goroutine on a
// truncated one. Each of those loses records without an error, so they
// are looked for here first:
//
//   - a MANIFEST that is missing while other files are there, or does not
//     replay to its end;
//   - tables that fail to open or fail their checksums (every block is
//     read and verified, but of tables this boot's checks verified
//     already: verified_tables.go);
//   - tables no MANIFEST record ever named that hold records newer than
//     the store would have without them (a MANIFEST that lost records);
//   - logs with records past the point where Badger's replay would stop;
//   - a store older than its witness (sequence, identity).
type storeCheck struct {
	dir         string
	compression options.CompressionType
	strict      bool // the previous writer ran in this boot
	witness     *witnessState

	findings []string
	files    int // Badger files present
	// known are the tables this boot's checks verified before
	// (verified_tables.go); stamps, those that opened now, verified now
	// or before. verified and remembered count them.
	known                map[uint64]tableStamp
	stamps               map[uint64]tableStamp
	verified, remembered int

	tables       map[uint64]*table.Table // every table that opened, by ID
	broken       map[uint64]bool         // tables that did not
	referenced   map[uint64]bool         // tables the MANIFEST lists
	mentioned    map[uint64]bool         // tables any MANIFEST record names
	logVersions  map[string]uint64       // user key -> newest version in the logs
	seq, seqVer  uint64                  // newest sync sequence and its version
	id           []byte                  // store ID
	idVer        uint64
	hasSeq       bool
	needVersions bool // unlisted tables to compare: keep the logs' versions
	witnessPath  string
	witnessErr   error // why there is no witness
}

func (c *storeCheck) add(format string, args ...any) {
	c.findings = append(c.findings, fmt.Sprintf(format, args...))
}

// checkStore runs every check on the Badger directory dir. w is the
// witness, nil if there is none (werr says why); boot is this boot's ID.
func checkStore(dir string, bo badger.Options, w *witnessState, werr error, boot string) *storeCheck {
	c := &storeCheck{dir: dir, compression: bo.Compression, witness: w, witnessErr: werr, witnessPath: witnessPath(dir),
		tables: map[uint64]*table.Table{}, broken: map[uint64]bool{}, referenced: map[uint64]bool{}, mentioned: map[uint64]bool{}}
	c.strict = w != nil && boot != "" && w.boot == boot
	c.known, c.stamps = readVerified(verifiedPath(dir), boot), map[uint64]tableStamp{}
	defer c.closeTables()
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		c.add("list %s: %v", dir, err)
		return c
	}
	var tables, logs []string
	hasManifest := false
	for _, de := range ents {
		switch name := de.Name(); {
		case name == badger.ManifestFilename:
			hasManifest = true
			c.files++
		case strings.HasSuffix(name, ".sst"):
			tables = append(tables, name)
			c.files++
		case strings.HasSuffix(name, ".mem"), strings.HasSuffix(name, ".vlog"):
			if strings.HasSuffix(name, ".mem") {
				logs = append(logs, name)
			}
			c.files++
		}
	}
	if !hasManifest {
		if c.files > 0 {
			c.add("MANIFEST is missing but %d tables and %d logs are there: Badger would start empty and delete the tables", len(tables), len(logs))
		} else {
			c.checkWitness() // an empty directory: a new store, or one emptied
		}
		return c
	}
	c.checkManifest(bo)
	for _, name := range tables {
		c.openTable(name)
	}
	for id := range c.referenced {
		if c.tables[id] == nil && !c.broken[id] {
			c.add("table %s, listed in the MANIFEST, is missing", table.IDToFilename(id))
		}
	}
	c.needVersions = len(c.unlisted()) > 0
	c.checkLogs(logs)
	c.checkUnlistedTables()
	c.findStoreRecords()
	c.checkWitness()
	return c
}

// checkManifest replays the MANIFEST (Badger's own reader, on a read-only
// descriptor) and collects which tables it lists and which it ever named.
func (c *storeCheck) checkManifest(bo badger.Options) {
	path := filepath.Join(c.dir, badger.ManifestFilename)
	f, err := os.Open(path)
	if err != nil {
		c.add("MANIFEST: %v", err)
		return
	}
	defer f.Close()
	mf, end, err := badger.ReplayManifestFile(f, bo.ExternalMagicVersion, bo)
	if err != nil {
		c.add("MANIFEST does not replay: %v", err)
		return
	}
	for id := range mf.Tables {
		c.referenced[id] = true
	}
	fi, err := f.Stat()
	if err != nil {
		c.add("MANIFEST: %v", err)
		return
	}
	if extra := fi.Size() - end; extra > 0 && c.strict {
		c.add("MANIFEST has %d bytes past its last intact record at offset %d (Badger would cut them off)", extra, end)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		c.add("MANIFEST: %v", err)
		return
	}
	if err := manifestTableIDs(bufio.NewReader(io.LimitReader(f, end)), c.mentioned); err != nil {
		c.add("MANIFEST: %v", err)
	}
}

// manifestTableIDs adds to ids every table any record of a MANIFEST
// names (created or deleted). Layout: 8 bytes of magic and versions, then
// records of length (4 bytes), CRC-32C (4 bytes) and a ManifestChangeSet.
func manifestTableIDs(r io.Reader, ids map[uint64]bool) error {
	if _, err := io.ReadFull(r, make([]byte, 8)); err != nil {
		return fmt.Errorf("header: %w", err)
	}
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("record header: %w", err)
		}
		buf := make([]byte, binary.BigEndian.Uint32(hdr[:4]))
		if _, err := io.ReadFull(r, buf); err != nil {
			return fmt.Errorf("record: %w", err)
		}
		if crc32.Checksum(buf, y.CastagnoliCrcTable) != binary.BigEndian.Uint32(hdr[4:]) {
			return errors.New("record checksum")
		}
		var cs pb.ManifestChangeSet
		if err := proto.Unmarshal(buf, &cs); err != nil {
			return fmt.Errorf("record: %w", err)
		}
		for _, ch := range cs.Changes {
			ids[ch.Id] = true
		}
	}
}

// openTable opens a table file and verifies it, unless this boot's check
// verified it already (verified_tables.go), turning Badger's panics on a
// damaged one into a finding.
func (c *storeCheck) openTable(name string) {
	id, ok := table.ParseFileID(name)
	if !ok {
		return
	}
	t, stamp, fresh, err := openCheckedTable(filepath.Join(c.dir, name), c.compression, c.known[id])
	if err != nil {
		c.broken[id] = true
		// A table the MANIFEST deleted may be a leftover half-written.
		if c.referenced[id] || !c.mentioned[id] {
			c.add("%s: %v", name, err)
		}
		return
	}
	if fresh {
		c.verified++
	} else {
		c.remembered++
	}
	c.tables[id] = t
	c.stamps[id] = stamp
}

// openCheckedTable opens the table at path and reads and verifies every
// block of it, unless the file is still the one stamped known (zero: none)
// by this boot's check; its index is verified either way. fresh: it was
// read and verified now. stamp is the file's, taken from the descriptor
// that was verified, so a file replaced meanwhile is not taken for it.
func openCheckedTable(path string, compression options.CompressionType, known tableStamp) (t *table.Table, stamp tableStamp, fresh bool, err error) {
	mf, err := z.OpenMmapFile(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, stamp, false, err
	}
	defer func() {
		if r := recover(); r != nil {
			mf.Close(-1)
			t, err = nil, fmt.Errorf("does not open: %s", strings.Join(strings.Fields(fmt.Sprint(r)), " "))
		}
	}()
	if stamp, err = stampOf(int(mf.Fd.Fd())); err != nil {
		mf.Close(-1)
		return nil, stamp, false, err
	}
	mode := options.NoVerification
	if fresh = known == (tableStamp{}) || stamp != known; fresh {
		mode = options.OnTableRead
	}
	t, err = table.OpenTable(mf, table.Options{
		ChkMode:     mode,
		Compression: compression,
		BlockSize:   4 << 10,
	})
	if err != nil {
		return nil, stamp, fresh, fmt.Errorf("fails its checks: %w", err)
	}
	return t, stamp, fresh, nil
}

func (c *storeCheck) closeTables() {
	for _, t := range c.tables {
		t.MmapFile.Close(-1)
	}
}

// unlisted are the tables no MANIFEST record ever named: the output of a
// flush or compaction that was cut short, or tables a damaged MANIFEST
// lost.
func (c *storeCheck) unlisted() []uint64 {
	var ids []uint64
	for id := range c.tables {
		if !c.referenced[id] && !c.mentioned[id] {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// checkLogs scans the memtable logs, newest first: a log older than one
// holding an acknowledged sync was synced whole (Store.Sync syncs rotated
// logs), so it is held to the strict rules whatever the boot.
func (c *storeCheck) checkLogs(names []string) {
	sort.Slice(names, func(i, j int) bool { return logFid(names[i]) > logFid(names[j]) })
	strict := c.strict
	var witnessed uint64
	if c.witness != nil {
		witnessed = c.witness.seq
	}
	if c.needVersions {
		c.logVersions = map[string]uint64{}
	}
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join(c.dir, name))
		if err != nil {
			c.add("%s: %v", name, err)
			continue
		}
		if f := walFinding(name, b, strict, witnessed); f != "" {
			c.add("%s", f)
		}
		s := scanWAL(b)
		for _, e := range s.entries {
			c.noteLogEntry(e)
			if c.witness != nil && isAcknowledgedSync(e, witnessed) {
				strict = true
			}
		}
	}
}

func logFid(name string) int {
	n, _ := strconv.Atoi(strings.TrimSuffix(name, ".mem"))
	return n
}

func isAcknowledgedSync(e walEntry, witnessed uint64) bool {
	return string(e.userKey()) == string(seqKey) && len(e.value) == 8 && binary.BigEndian.Uint64(e.value) <= witnessed
}

// noteLogEntry records what the rest of the check needs of a log entry.
func (c *storeCheck) noteLogEntry(e walEntry) {
	k, ver := e.userKey(), e.version()
	c.noteRecord(k, e.value, ver, e.meta&walBitDelete != 0)
	if c.logVersions != nil && ver > c.logVersions[string(k)] {
		c.logVersions[string(k)] = ver
	}
}

// noteRecord keeps the newest sync sequence and store ID seen.
func (c *storeCheck) noteRecord(k, v []byte, ver uint64, deleted bool) {
	switch {
	case deleted:
	case string(k) == string(seqKey) && len(v) == 8 && ver >= c.seqVer:
		c.seq, c.seqVer, c.hasSeq = binary.BigEndian.Uint64(v), ver, true
	case string(k) == string(storeIDKey) && ver >= c.idVer:
		c.id, c.idVer = append([]byte(nil), v...), ver
	}
}

// newestVersion is the newest version of user key k in the logs and the
// tables the MANIFEST lists, 0 if none has it.
func (c *storeCheck) newestVersion(k []byte) uint64 {
	newest := c.logVersions[string(k)]
	for id, t := range c.tables {
		if c.referenced[id] {
			newest = max(newest, tableVersion(t, k))
		}
	}
	return newest
}

func tableVersion(t *table.Table, k []byte) uint64 {
	it := t.NewIterator(0)
	defer it.Close()
	it.Seek(y.KeyWithTs(k, math.MaxUint64))
	if it.Valid() && y.SameKey(it.Key(), y.KeyWithTs(k, 0)) {
		return y.ParseTs(it.Key())
	}
	return 0
}

// checkUnlistedTables: a table no MANIFEST record named is harmless if the
// store has everything in it (an interrupted flush or compaction writes
// only what its inputs, still listed, hold). Otherwise the MANIFEST lost it.
func (c *storeCheck) checkUnlistedTables() {
	for _, id := range c.unlisted() {
		it := c.tables[id].NewIterator(0)
		for it.Rewind(); it.Valid(); it.Next() {
			k, ver := y.ParseKey(it.Key()), y.ParseTs(it.Key())
			if c.newestVersion(k) < ver {
				c.add("%s is not in the MANIFEST and holds records the store does not have (first: key %q): the MANIFEST lost it",
					table.IDToFilename(id), k)
				break
			}
		}
		it.Close()
	}
}

// findStoreRecords looks for the sync sequence and the store ID in the
// listed tables (the logs were read already).
func (c *storeCheck) findStoreRecords() {
	for id, t := range c.tables {
		if !c.referenced[id] {
			continue
		}
		for _, k := range [][]byte{seqKey, storeIDKey} {
			it := t.NewIterator(0)
			it.Seek(y.KeyWithTs(k, math.MaxUint64))
			if it.Valid() && y.SameKey(it.Key(), y.KeyWithTs(k, 0)) {
				vs := it.Value()
				c.noteRecord(k, vs.Value, y.ParseTs(it.Key()), vs.Meta&walBitDelete != 0)
			}
			it.Close()
		}
	}
}

// checkWitness compares the store with its witness.
func (c *storeCheck) checkWitness() {
	w := c.witness
	switch {
	case w == nil && !errors.Is(c.witnessErr, errNoWitness):
		c.add("%v", c.witnessErr)
	case w == nil && c.id != nil:
		c.add("the witness %s is missing while the store has an identity: it cannot be checked for lost records", c.witnessPath)
	case w == nil:
		// A new store, or one from before witnesses: nothing to compare.
	case c.id == nil && w.seq > 0:
		c.add("the store has no identity but its witness says it reached sync %d: the store was replaced or emptied", w.seq)
	case c.id != nil && string(c.id) != string(w.id[:]):
		c.add("the store's identity %x is not its witness's %x: the directory was replaced", c.id, w.id)
	case c.id != nil && c.seq < w.seq:
		c.add("the store's newest sync is %d but its witness says %d was durable: acknowledged records are lost", c.seq, w.seq)
	}
}
