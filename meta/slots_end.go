package meta

import (
	"encoding/binary"
	"errors"
	"fmt"

	badger "github.com/dgraph-io/badger/v4"
)

// A volume's slots end (n/<vol>) bounds the slots its durable records name:
// every slot a durable live-map or change-set record of the volume refers to
// is below it. The engine writes it in the same batch as the records that
// need it to grow, first (see PutSlotsEnd), and only after the data file's
// fdatasync, so it never exceeds the data file's durable length either.
// A start compares it with the data file's length: a file shorter than it
// was cut short or replaced (damage); one at least as long cannot hold a
// record that names a slot past its end, so the engine may serve before it
// has read every record, taking new slots from past the file's end.

// SlotsEnd returns volume volID's slots end; ok is false for a volume that
// has none (created before slots ends were recorded, or never synced a
// mapping).
func (s *Store) SlotsEnd(volID string) (end uint64, ok bool, err error) {
	err = s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(SlotsEndKey(volID))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			if len(v) != 8 {
				return fmt.Errorf("malformed slots end (%d bytes)", len(v))
			}
			end, ok = binary.BigEndian.Uint64(v), true
			return nil
		})
	})
	if err != nil {
		return 0, false, fmt.Errorf("meta: slots end of %s: %w", volID, err)
	}
	return end, ok, nil
}

// PutSlotsEnd records volume volID's slots end. It goes first in the batch:
// Apply may split a batch into several transactions, committed in order,
// so no record the batch adds that needs the new end lands without it.
func (b *Batch) PutSlotsEnd(volID string, end uint64) {
	o := op{SlotsEndKey(volID), binary.BigEndian.AppendUint64(nil, end)}
	b.ops = append([]op{o}, b.ops...)
}
