package meta

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"golang.org/x/sys/unix"
)

// ErrNotFound is returned when a record does not exist.
var ErrNotFound = errors.New("meta: not found")

// Store is cowvol's metadata database.
type Store struct {
	db      *badger.DB
	log     *slog.Logger
	dir     string
	witness *witness      // nil in memory
	damage  *DamageError  // what Open found and was told to accept
	id      []byte        // the store's identity (x/id); nil in memory
	syncs   atomic.Uint64 // successful Syncs

	// syncMu serialises Syncs and guards the fields that follow.
	syncMu     sync.Mutex
	seq        uint64          // the last sync sequence made durable
	syncedLogs map[string]bool // rotated memtable logs already synced
}

// Internal records of the store itself (doc.go).
var (
	seqKey     = []byte("x/seq")
	storeIDKey = []byte("x/id")
)

// Options configure Open.
type Options struct {
	// Dir is the Badger directory. Ignored when InMemory is set. Its
	// witness is the file Dir + ".witness".
	Dir string
	// InMemory keeps everything in memory (tests only: nothing is durable).
	InMemory bool
	Logger   *slog.Logger
	// AcceptDamage opens a store that fails its integrity checks anyway,
	// with what it has, after copying its files as found to DamagedCopy
	// (if set). Without it such a store is refused with a *DamageError.
	AcceptDamage bool
	DamagedCopy  string
	// bootID, if set, stands for the kernel's boot ID (tests).
	bootID string
}

// witnessPath is where the witness of the store in dir lives: beside it,
// so that losing the directory does not lose the witness.
func witnessPath(dir string) string { return filepath.Clean(dir) + ".witness" }

// Open opens (creating if needed) the metadata store. A store on disk is
// checked first (storeCheck); one that fails is refused with a
// *DamageError wrapping ErrDamaged, untouched, unless opts.AcceptDamage.
//
// Writes are not synced individually: the engine orders durability itself
// (data files first, then Sync) so that many writers share one sync.
func Open(opts Options) (*Store, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	bo := badgerOptions(opts, log)
	if opts.InMemory {
		db, err := openBadger(bo)
		if err != nil {
			return nil, err
		}
		return &Store{db: db, log: log}, nil
	}
	boot := opts.bootID
	if boot == "" {
		boot = BootID()
	}
	wpath := witnessPath(opts.Dir)
	var wst *witnessState
	w, werr := readWitness(wpath)
	if werr == nil {
		wst = &w
	}
	checkStart := time.Now()
	c := checkStore(opts.Dir, bo, wst, werr, boot)
	checked := time.Since(checkStart)
	damaged := len(c.findings) > 0
	if !damaged {
		// A cache: without it the next start verifies every table.
		if err := writeVerified(verifiedPath(opts.Dir), boot, c.stamps); err != nil {
			log.Warn("the next start will verify every table again", "err", err)
		}
	}
	if damaged {
		derr := &DamageError{Dir: opts.Dir, Findings: c.findings}
		if !opts.AcceptDamage {
			return nil, derr
		}
		if opts.DamagedCopy != "" {
			if err := copyTree(opts.Dir, opts.DamagedCopy); err != nil {
				return nil, fmt.Errorf("meta: keep the damaged store's files: %w", err)
			}
			derr.Kept = opts.DamagedCopy
		}
		log.Warn("opening a damaged metadata store as asked; records may be missing", "err", derr.Error(), "kept", derr.Kept)
	}
	openStart := time.Now()
	db, err := openBadger(bo)
	if err != nil {
		return nil, err
	}
	// How long a start spends here is part of a takeover's stall.
	log.Info("metadata store opened", "check", checked.Round(time.Millisecond), "badger_open", time.Since(openStart).Round(time.Millisecond),
		"tables", len(c.tables), "tables_verified", c.verified, "tables_verified_before", c.remembered)
	s := &Store{db: db, log: log, dir: opts.Dir, seq: c.seq, syncedLogs: map[string]bool{}, id: c.id}
	if damaged {
		s.damage = &DamageError{Dir: opts.Dir, Findings: c.findings, Kept: opts.DamagedCopy}
	}
	id := c.id
	if len(id) != storeIDLen || damaged {
		if err := s.initIdentity(id, wpath, boot); err != nil {
			db.Close()
			return nil, err
		}
	} else if err := s.startWitness(wpath, boot); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// ID is the store's identity: 16 random bytes given when it was created,
// nil for a store in memory.
func (s *Store) ID() []byte { return s.id }

// AcceptedDamage is what the open check found wrong with the store when
// Options.AcceptDamage let it open anyway; nil when it found nothing.
func (s *Store) AcceptedDamage() *DamageError { return s.damage }

// initIdentity gives a new store (or one from before witnesses, or one
// whose damage was accepted) its identity and a witness that starts from
// its present sequence. The witness is written first: a crash between the
// two leaves a witness at the store's sequence and no identity, which the
// next open accepts and redoes.
func (s *Store) initIdentity(id []byte, wpath, boot string) error {
	var st witnessState
	if len(id) == storeIDLen {
		copy(st.id[:], id)
	} else if _, err := rand.Read(st.id[:]); err != nil {
		return fmt.Errorf("meta: store identity: %w", err)
	}
	st.seq, st.boot = s.seq, boot
	if err := createWitness(wpath, st); err != nil {
		return fmt.Errorf("meta: %w", err)
	}
	err := s.db.Update(func(txn *badger.Txn) error {
		if err := txn.Set(storeIDKey, st.id[:]); err != nil {
			return err
		}
		return txn.Set(seqKey, binary.BigEndian.AppendUint64(nil, s.seq))
	})
	if err == nil {
		err = s.db.Sync()
	}
	if err != nil {
		return fmt.Errorf("meta: record the store identity: %w", err)
	}
	s.id = st.id[:]
	return s.startWitness(wpath, boot)
}

func (s *Store) startWitness(wpath, boot string) error {
	st, err := readWitness(wpath)
	if err != nil {
		return fmt.Errorf("meta: %w", err)
	}
	st.seq, st.boot = s.seq, boot
	w, err := startWitness(wpath, st, s.log)
	if err != nil {
		return fmt.Errorf("meta: %w", err)
	}
	s.witness = w
	return nil
}

// openBadger opens Badger, turning a panic into an error.
func openBadger(bo badger.Options) (db *badger.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("meta: open badger at %s: %w: %v", bo.Dir, ErrDamaged, r)
		}
	}()
	db, err = badger.Open(bo)
	if err != nil {
		return nil, fmt.Errorf("meta: open badger at %s: %w", bo.Dir, err)
	}
	return db, nil
}

func badgerOptions(opts Options, log *slog.Logger) badger.Options {
	bo := badger.DefaultOptions(opts.Dir).
		WithInMemory(opts.InMemory).
		WithSyncWrites(false).
		WithLogger(badgerLogger{log.With("component", "badger")}).
		// Sized for a daemon that keeps its hot map in memory and
		// uses Badger only for persistence: a small memory footprint.
		WithMemTableSize(8 << 20).
		WithNumMemtables(2).
		WithNumLevelZeroTables(4).
		WithNumLevelZeroTablesStall(12).
		WithBlockCacheSize(8 << 20).
		WithIndexCacheSize(8 << 20).
		WithNumCompactors(2).
		WithValueLogFileSize(64 << 20).
		WithMetricsEnabled(false).
		WithDetectConflicts(false).
		// Every table is verified by the open check; blocks read
		// later are verified as they are read.
		WithChecksumVerificationMode(options.OnBlockRead)
	if opts.InMemory {
		bo.Dir, bo.ValueDir = "", ""
	}
	return bo
}

// Close flushes and closes the database, then records its final sequence
// in the witness.
func (s *Store) Close() error {
	err := s.db.Close()
	if err != nil {
		err = fmt.Errorf("meta: close: %w", err)
	}
	if s.witness != nil {
		s.syncMu.Lock()
		seq := s.seq
		s.syncMu.Unlock()
		err = errors.Join(err, s.witness.close(seq))
	}
	return err
}

// Sync makes every write committed so far durable. Each Sync records the
// next sequence in the store before it syncs, and then in the witness.
func (s *Store) Sync() error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	next := s.seq + 1
	if s.witness != nil {
		err := s.db.Update(func(txn *badger.Txn) error {
			return txn.Set(seqKey, binary.BigEndian.AppendUint64(nil, next))
		})
		if err != nil {
			return fmt.Errorf("meta: sync: %w", err)
		}
	}
	if err := s.db.Sync(); err != nil {
		return fmt.Errorf("meta: sync: %w", err)
	}
	if err := s.syncRotatedLogs(); err != nil {
		return fmt.Errorf("meta: sync: %w", err)
	}
	s.seq = next
	s.syncs.Add(1)
	if s.witness != nil {
		s.witness.advance(next)
	}
	return nil
}

// syncRotatedLogs syncs the write-ahead logs of memtables that Badger
// rotated out since the last Sync. Badger's Sync syncs only the active
// memtable's log, and a rotated one stays unsynced until its memtable is
// flushed to a table: records written to it before the rotation would not
// survive a power cut, though the Sync that followed them returned.
// syncMu is held.
func (s *Store) syncRotatedLogs() error {
	if s.dir == "" {
		return nil
	}
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return err
	}
	var logs []string
	newest := -1
	for _, de := range ents {
		if fid, ok := strings.CutSuffix(de.Name(), ".mem"); ok {
			n, err := strconv.Atoi(fid)
			if err != nil {
				continue
			}
			logs = append(logs, de.Name())
			newest = max(newest, n)
		}
	}
	present := map[string]bool{}
	for _, name := range logs {
		present[name] = true
		if logFid(name) == newest || s.syncedLogs[name] {
			continue
		}
		f, err := os.Open(filepath.Join(s.dir, name))
		if errors.Is(err, os.ErrNotExist) {
			continue // flushed to a table and removed meanwhile
		}
		if err != nil {
			return err
		}
		err = unix.Fdatasync(int(f.Fd()))
		f.Close()
		if err != nil {
			return fmt.Errorf("fdatasync %s: %w", name, err)
		}
		s.syncedLogs[name] = true
	}
	for name := range s.syncedLogs {
		if !present[name] {
			delete(s.syncedLogs, name)
		}
	}
	return nil
}

// Syncs counts the Syncs that succeeded: each is a write to disk and a
// device flush, the cost that group commit shares out.
func (s *Store) Syncs() uint64 { return s.syncs.Load() }

// Volumes returns every volume record, in key (ID) order.
func (s *Store) Volumes() ([]VolumeRecord, error) {
	var out []VolumeRecord
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixVolume), PrefetchValues: true, PrefetchSize: 64})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			err := it.Item().Value(func(v []byte) error {
				r, err := decodeVolume(v)
				if err != nil {
					return fmt.Errorf("key %q: %w", it.Item().Key(), err)
				}
				out = append(out, r)
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("meta: list volumes: %w", err)
	}
	return out, nil
}

// VolumeByClientToken returns the ID of the volume created with token.
func (s *Store) VolumeByClientToken(token string) (string, error) {
	var id string
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(ClientTokenKey(token))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		v, err := item.ValueCopy(nil)
		id = string(v)
		return err
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return "", fmt.Errorf("meta: client token lookup: %w", err)
	}
	return id, err
}

// CreateVolume stores a new volume record (and its client token, if any) in
// one transaction.
func (s *Store) CreateVolume(r VolumeRecord) error {
	v, err := encodeVolume(r)
	if err != nil {
		return err
	}
	err = s.db.Update(func(txn *badger.Txn) error {
		if err := txn.Set(VolumeKey(r.ID), v); err != nil {
			return err
		}
		if r.ClientToken != "" {
			return txn.Set(ClientTokenKey(r.ClientToken), []byte(r.ID))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("meta: create volume %s: %w", r.ID, err)
	}
	return nil
}

// PutVolume overwrites a volume record.
func (s *Store) PutVolume(r VolumeRecord) error {
	v, err := encodeVolume(r)
	if err != nil {
		return err
	}
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(VolumeKey(r.ID), v) }); err != nil {
		return fmt.Errorf("meta: put volume %s: %w", r.ID, err)
	}
	return nil
}

// LiveExtents calls fn for every entry of volume volID's live map, in block order.
func (s *Store) LiveExtents(volID string, fn func(blk uint64, e Extent) error) error {
	return s.scan(LivePrefix(volID), liveFn(volID, fn))
}

func liveFn(volID string, fn func(blk uint64, e Extent) error) func(key, val []byte) error {
	return func(key, val []byte) error {
		blk, err := ParseLiveKey(volID, key)
		if err != nil {
			return err
		}
		e, err := DecodeExtent(val)
		if err != nil {
			return fmt.Errorf("block %d: %w", blk, err)
		}
		return fn(blk, e)
	}
}

// liveRangeTxn calls fn for every entry of volume volID's live map from
// block first to block last (inclusive) that txn sees, in block order: one
// page of the engine's map, read when it is first needed.
func liveRangeTxn(txn *badger.Txn, volID string, first, last uint64, fn func(blk uint64, e Extent) error) error {
	end := LiveKey(volID, last)
	each := liveFn(volID, fn)
	it := txn.NewIterator(badger.IteratorOptions{Prefix: LivePrefix(volID), PrefetchValues: true, PrefetchSize: 64})
	defer it.Close()
	for it.Seek(LiveKey(volID, first)); it.Valid(); it.Next() {
		item := it.Item()
		if bytes.Compare(item.Key(), end) > 0 {
			return nil
		}
		if err := item.Value(func(v []byte) error { return each(item.Key(), v) }); err != nil {
			return fmt.Errorf("meta: live map of %s, blocks %d to %d: %w", volID, first, last, err)
		}
	}
	return nil
}

// HasNoExtents reports whether volume volID has no live-map and no
// change-set records.
func (s *Store) HasNoExtents(volID string) (bool, error) {
	empty := true
	for _, p := range [][]byte{LivePrefix(volID), ChangePrefix(volID)} {
		err := s.db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: p})
			defer it.Close()
			it.Rewind()
			if it.Valid() {
				empty = false
			}
			return nil
		})
		if err != nil {
			return false, fmt.Errorf("meta: scan %q: %w", p, err)
		}
	}
	return empty, nil
}

// ChangeExtents calls fn for every entry of volume volID's change sets, in
// (generation, block) order.
func (s *Store) ChangeExtents(volID string, fn func(gen, blk uint64, e Extent) error) error {
	return s.scan(ChangePrefix(volID), changeFn(volID, fn))
}

func changeFn(volID string, fn func(gen, blk uint64, e Extent) error) func(key, val []byte) error {
	return func(key, val []byte) error {
		gen, blk, err := ParseChangeKey(volID, key)
		if err != nil {
			return err
		}
		e, err := DecodeExtent(val)
		if err != nil {
			return fmt.Errorf("gen %d block %d: %w", gen, blk, err)
		}
		return fn(gen, blk, e)
	}
}

func (s *Store) scan(prefix []byte, fn func(key, val []byte) error) error {
	return s.db.View(func(txn *badger.Txn) error { return scanTxn(txn, prefix, fn) })
}

// scanTxn calls fn for every record under prefix that txn sees, in key order.
func scanTxn(txn *badger.Txn, prefix []byte, fn func(key, val []byte) error) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		if err := item.Value(func(v []byte) error { return fn(item.Key(), v) }); err != nil {
			return fmt.Errorf("meta: scan %q: %w", prefix, err)
		}
	}
	return nil
}

// DeleteVolume removes every record of volume volID: its live map, change
// sets, client token and finally the volume record itself. It is idempotent,
// so an interrupted deletion is finished by calling it again.
func (s *Store) DeleteVolume(r VolumeRecord) error {
	var keys [][]byte
	for _, p := range [][]byte{LivePrefix(r.ID), ChangePrefix(r.ID)} {
		err := s.db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: p})
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				keys = append(keys, it.Item().KeyCopy(nil))
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("meta: delete volume %s: %w", r.ID, err)
		}
	}
	if r.ClientToken != "" {
		keys = append(keys, ClientTokenKey(r.ClientToken))
	}
	keys = append(keys, SlotsEndKey(r.ID))
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for _, k := range keys {
		if err := wb.Delete(k); err != nil {
			return fmt.Errorf("meta: delete volume %s: %w", r.ID, err)
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("meta: delete volume %s: %w", r.ID, err)
	}
	// The record goes last: while it exists, a restart finishes the job.
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Delete(VolumeKey(r.ID)) }); err != nil {
		return fmt.Errorf("meta: delete volume record %s: %w", r.ID, err)
	}
	return nil
}

// Batch collects metadata changes to apply together. It is not safe for
// concurrent use.
type Batch struct {
	ops []op
}

type op struct {
	key []byte
	val []byte // nil: delete
}

// PutLive records block blk's newest version.
func (b *Batch) PutLive(volID string, blk uint64, e Extent) {
	b.ops = append(b.ops, op{LiveKey(volID, blk), EncodeExtent(e)})
}

// DeleteLive removes block blk from the live map (it reads as zeros).
func (b *Batch) DeleteLive(volID string, blk uint64) {
	b.ops = append(b.ops, op{key: LiveKey(volID, blk)})
}

// PutChange records a version born in generation e.Gen.
func (b *Batch) PutChange(volID string, blk uint64, e Extent) {
	b.ops = append(b.ops, op{ChangeKey(volID, e.Gen, blk), EncodeExtent(e)})
}

// DeleteChange removes block blk's version born in generation gen.
func (b *Batch) DeleteChange(volID string, gen, blk uint64) {
	b.ops = append(b.ops, op{key: ChangeKey(volID, gen, blk)})
}

// Len is the number of changes in the batch.
func (b *Batch) Len() int { return len(b.ops) }

// Reset empties the batch for reuse.
func (b *Batch) Reset() { b.ops = b.ops[:0] }

// Apply writes the batch. Changes to one key are applied in order. A batch
// may be split into several transactions: each change must be safe on its
// own, which the engine guarantees by never reusing a slot before the change
// that freed it is durable.
func (s *Store) Apply(b *Batch) error {
	if len(b.ops) == 0 {
		return nil
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for _, o := range b.ops {
		var err error
		if o.val == nil {
			err = wb.Delete(o.key)
		} else {
			err = wb.Set(o.key, o.val)
		}
		if err != nil {
			return fmt.Errorf("meta: apply batch: %w", err)
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("meta: apply batch: %w", err)
	}
	return nil
}

// badgerLogger sends Badger's logs to slog.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any)   { b.l.Error(fmt.Sprintf(f, a...)) }
func (b badgerLogger) Warningf(f string, a ...any) { b.l.Warn(fmt.Sprintf(f, a...)) }
func (b badgerLogger) Infof(f string, a ...any)    { b.l.Debug(fmt.Sprintf(f, a...)) }
func (b badgerLogger) Debugf(f string, a ...any)   { b.l.Debug(fmt.Sprintf(f, a...)) }
