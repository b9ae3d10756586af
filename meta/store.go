package meta

import (
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

	badger "github.com/dgraph-io/badger/v4"
)

// ErrNotFound is returned when a record does not exist.
var ErrNotFound = errors.New("meta: not found")

// Store is cowvol's metadata database.
type Store struct {
	db    *badger.DB
	log   *slog.Logger
	syncs atomic.Uint64 // successful Syncs
}

// Options configure Open.
type Options struct {
	// Dir is the Badger directory. Ignored when InMemory is set.
	Dir string
	// InMemory keeps everything in memory (tests only: nothing is durable).
	InMemory bool
	Logger   *slog.Logger
}

// Open opens (creating if needed) the metadata store.
//
// Writes are not synced individually: the engine orders durability itself
// (data files first, then Sync) so that many writers share one sync.
func Open(opts Options) (*Store, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
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
		WithDetectConflicts(false)
	if opts.InMemory {
		bo.Dir, bo.ValueDir = "", ""
	}
	db, err := badger.Open(bo)
	if err != nil {
		return nil, fmt.Errorf("meta: open badger at %s: %w", opts.Dir, err)
	}
	return &Store{db: db, log: log}, nil
}

// Close flushes and closes the database.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("meta: close: %w", err)
	}
	return nil
}

// Sync makes every write committed so far durable.
func (s *Store) Sync() error {
	if err := s.db.Sync(); err != nil {
		return fmt.Errorf("meta: sync: %w", err)
	}
	s.syncs.Add(1)
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
	return s.scan(LivePrefix(volID), func(key, val []byte) error {
		blk, err := ParseLiveKey(volID, key)
		if err != nil {
			return err
		}
		e, err := DecodeExtent(val)
		if err != nil {
			return fmt.Errorf("block %d: %w", blk, err)
		}
		return fn(blk, e)
	})
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
	return s.scan(ChangePrefix(volID), func(key, val []byte) error {
		gen, blk, err := ParseChangeKey(volID, key)
		if err != nil {
			return err
		}
		e, err := DecodeExtent(val)
		if err != nil {
			return fmt.Errorf("gen %d block %d: %w", gen, blk, err)
		}
		return fn(gen, blk, e)
	})
}

func (s *Store) scan(prefix []byte, fn func(key, val []byte) error) error {
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: 256})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			if err := item.Value(func(v []byte) error { return fn(item.Key(), v) }); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("meta: scan %q: %w", prefix, err)
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
