package cow

import (
	"context"
	"fmt"
	"time"

	"github.com/cowvol/cowvol/cow/snapstore"
)

// DefaultStoreCallTimeout bounds one call to a snapshot store (an 8 MiB
// pack, a ranged read) unless Options.StoreCallTimeout says otherwise.
const DefaultStoreCallTimeout = 5 * time.Minute

// timeoutStore gives every call to the store it wraps a deadline, so that
// a call that hangs (a server that accepts a request and never answers)
// fails and is retried instead of holding a flush, a hydration or a read of
// a snapshot file forever. List is bounded per call too: listings are
// paged by the backends and the engine's callbacks are quick.
type timeoutStore struct {
	snapstore.Store
	d time.Duration
}

var _ snapstore.Store = timeoutStore{}

func withCallTimeout(st snapstore.Store, d time.Duration) snapstore.Store {
	if st == nil {
		return nil
	}
	return timeoutStore{Store: st, d: d}
}

// call runs fn under a deadline and names the timeout in the error.
func (s timeoutStore) call(ctx context.Context, op, key string, fn func(ctx context.Context) error) error {
	cctx, cancel := context.WithTimeout(ctx, s.d)
	defer cancel()
	err := fn(cctx)
	if err != nil && ctx.Err() == nil && cctx.Err() != nil {
		return fmt.Errorf("%s %s in %s: no answer within %v: %w", op, key, s.Store, s.d, err)
	}
	return err
}

func (s timeoutStore) Put(ctx context.Context, key string, data []byte) error {
	return s.call(ctx, "put", key, func(ctx context.Context) error { return s.Store.Put(ctx, key, data) })
}

func (s timeoutStore) Get(ctx context.Context, key string) (b []byte, err error) {
	err = s.call(ctx, "get", key, func(ctx context.Context) error { b, err = s.Store.Get(ctx, key); return err })
	return b, err
}

func (s timeoutStore) Exists(ctx context.Context, key string) (ok bool, err error) {
	err = s.call(ctx, "exists", key, func(ctx context.Context) error { ok, err = s.Store.Exists(ctx, key); return err })
	return ok, err
}

func (s timeoutStore) GetRange(ctx context.Context, key string, off, n int64) (b []byte, err error) {
	err = s.call(ctx, "get range", key, func(ctx context.Context) error {
		b, err = s.Store.GetRange(ctx, key, off, n)
		return err
	})
	return b, err
}

func (s timeoutStore) List(ctx context.Context, prefix string, fn func(snapstore.ObjectInfo) error) error {
	return s.call(ctx, "list", prefix, func(ctx context.Context) error { return s.Store.List(ctx, prefix, fn) })
}

func (s timeoutStore) Delete(ctx context.Context, key string) error {
	return s.call(ctx, "delete", key, func(ctx context.Context) error { return s.Store.Delete(ctx, key) })
}
