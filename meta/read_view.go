package meta

import badger "github.com/dgraph-io/badger/v4"

// ReadView is the store as it was when the view was taken: writes made
// since are not seen. The engine loads a volume's map through one taken
// before it serves, so that every record the load reads is one that was
// durable at the start, none the engine wrote since.
type ReadView struct {
	txn *badger.Txn
}

// NewReadView takes a view of the store as it is now. Close releases it.
func (s *Store) NewReadView() *ReadView { return &ReadView{txn: s.db.NewTransaction(false)} }

// LiveExtents is Store.LiveExtents as of the view.
func (r *ReadView) LiveExtents(volID string, fn func(blk uint64, e Extent) error) error {
	return scanTxn(r.txn, LivePrefix(volID), liveFn(volID, fn))
}

// ChangeExtents is Store.ChangeExtents as of the view.
func (r *ReadView) ChangeExtents(volID string, fn func(gen, blk uint64, e Extent) error) error {
	return scanTxn(r.txn, ChangePrefix(volID), changeFn(volID, fn))
}

// Close releases the view; it may be called more than once.
func (r *ReadView) Close() { r.txn.Discard() }
