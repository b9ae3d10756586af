package meta

import (
	"errors"
	"sync"

	badger "github.com/dgraph-io/badger/v4"
)

// ErrViewClosed: a read through a ReadView that was closed.
var ErrViewClosed = errors.New("meta: read view closed")

// ReadView is the store as it was when the view was taken: writes made
// since are not seen. The engine loads a volume's map through one taken
// before it serves, so that every record the load reads is one that was
// durable at the start, none the engine wrote since. Reads may run
// concurrently with each other and with Close.
type ReadView struct {
	// mu is held shared by every read and exclusively by Close: Badger
	// panics on a transaction discarded with an iterator open.
	mu     sync.RWMutex
	txn    *badger.Txn
	closed bool
}

// NewReadView takes a view of the store as it is now. Close releases it.
func (s *Store) NewReadView() *ReadView { return &ReadView{txn: s.db.NewTransaction(false)} }

// LiveExtents is Store.LiveExtents as of the view.
func (r *ReadView) LiveExtents(volID string, fn func(blk uint64, e Extent) error) error {
	return r.read(func(txn *badger.Txn) error { return scanTxn(txn, LivePrefix(volID), liveFn(volID, fn)) })
}

// LiveRange is Store.LiveRange as of the view.
func (r *ReadView) LiveRange(volID string, first, last uint64, fn func(blk uint64, e Extent) error) error {
	return r.read(func(txn *badger.Txn) error { return liveRangeTxn(txn, volID, first, last, fn) })
}

// ChangeExtents is Store.ChangeExtents as of the view.
func (r *ReadView) ChangeExtents(volID string, fn func(gen, blk uint64, e Extent) error) error {
	return r.read(func(txn *badger.Txn) error { return scanTxn(txn, ChangePrefix(volID), changeFn(volID, fn)) })
}

func (r *ReadView) read(fn func(txn *badger.Txn) error) error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		return ErrViewClosed
	}
	return fn(r.txn)
}

// Close releases the view, once its reads in progress end; it may be
// called more than once. It must be called before the store is closed.
func (r *ReadView) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed {
		r.closed = true
		r.txn.Discard()
	}
}
