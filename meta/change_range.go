package meta

import (
	"bytes"
	"fmt"

	badger "github.com/dgraph-io/badger/v4"
)

// ChangesInRange calls fn for every change-set entry of volume volID born
// in a generation in (afterGen, uptoGen] whose block is in [first, end), in
// (generation, block) order. A flush plans one segment's range at a time
// with it, so that it never holds a whole snapshot's changes.
func (s *Store) ChangesInRange(volID string, afterGen, uptoGen, first, end uint64, fn func(gen, blk uint64, e Extent) error) error {
	each := changeFn(volID, fn)
	return s.db.View(func(txn *badger.Txn) error {
		for gen := afterGen + 1; gen <= uptoGen; gen++ {
			stop := ChangeKey(volID, gen, end)
			it := txn.NewIterator(badger.IteratorOptions{Prefix: ChangeGenPrefix(volID, gen), PrefetchValues: true, PrefetchSize: 64})
			for it.Seek(ChangeKey(volID, gen, first)); it.Valid(); it.Next() {
				item := it.Item()
				if bytes.Compare(item.Key(), stop) >= 0 {
					break
				}
				if err := item.Value(func(v []byte) error { return each(item.Key(), v) }); err != nil {
					it.Close()
					return fmt.Errorf("meta: changes of %s, generation %d, blocks %d to %d: %w", volID, gen, first, end, err)
				}
			}
			it.Close()
		}
		return nil
	})
}

// NextChange returns the lowest block at or after from that volume volID
// changed in a generation in (afterGen, uptoGen]; ok is false if there is
// none.
func (s *Store) NextChange(volID string, afterGen, uptoGen, from uint64) (blk uint64, ok bool, err error) {
	err = s.db.View(func(txn *badger.Txn) error {
		for gen := afterGen + 1; gen <= uptoGen; gen++ {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: ChangeGenPrefix(volID, gen)})
			it.Seek(ChangeKey(volID, gen, from))
			if it.Valid() {
				_, b, perr := ParseChangeKey(volID, it.Item().Key())
				if perr != nil {
					it.Close()
					return perr
				}
				if !ok || b < blk {
					blk, ok = b, true
				}
			}
			it.Close()
		}
		return nil
	})
	return blk, ok, err
}

// ChangedBlocksInRange calls fn for every change-set entry's block, as
// ChangesInRange does, but reads only the keys (no values): a flush counts
// its changes with it before it plans them.
func (s *Store) ChangedBlocksInRange(volID string, afterGen, uptoGen, first, end uint64, fn func(blk uint64) error) error {
	return s.db.View(func(txn *badger.Txn) error {
		for gen := afterGen + 1; gen <= uptoGen; gen++ {
			if err := changedBlocksOfGen(txn, volID, gen, first, end, fn); err != nil {
				return fmt.Errorf("meta: changed blocks of %s, generation %d, blocks %d to %d: %w", volID, gen, first, end, err)
			}
		}
		return nil
	})
}

func changedBlocksOfGen(txn *badger.Txn, volID string, gen, first, end uint64, fn func(blk uint64) error) error {
	stop := ChangeKey(volID, gen, end)
	it := txn.NewIterator(badger.IteratorOptions{Prefix: ChangeGenPrefix(volID, gen)})
	defer it.Close()
	for it.Seek(ChangeKey(volID, gen, first)); it.Valid(); it.Next() {
		key := it.Item().Key()
		if bytes.Compare(key, stop) >= 0 {
			return nil
		}
		_, blk, err := ParseChangeKey(volID, key)
		if err != nil {
			return err
		}
		if err := fn(blk); err != nil {
			return err
		}
	}
	return nil
}
