package cow

import (
	"context"
	"sync"

	"github.com/cowvol/cowvol/cow/snapstore"
)

// hookStore wraps a real store with injection points: onGet runs before
// every Get, onPut before every Put (its error fails the Put). Tests set
// them to run another daemon's operation at an exact point of this one, or
// to fail a request. afterPut runs after a Put landed, onList before a List.
type hookStore struct {
	snapstore.Store
	mu       sync.Mutex
	onGet    func(key string)
	onPut    func(key string) error
	afterPut func(key string)
	onList   func(prefix string)
}

func (h *hookStore) setList(f func(prefix string)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.onList = f
}

func (h *hookStore) List(ctx context.Context, prefix string, fn func(snapstore.ObjectInfo) error) error {
	h.mu.Lock()
	f := h.onList
	h.mu.Unlock()
	if f != nil {
		f(prefix)
	}
	return h.Store.List(ctx, prefix, fn)
}

func (h *hookStore) setAfterPut(f func(key string)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.afterPut = f
}

func (h *hookStore) setGet(f func(key string)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.onGet = f
}

func (h *hookStore) setPut(f func(key string) error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.onPut = f
}

func (h *hookStore) Get(ctx context.Context, key string) ([]byte, error) {
	h.mu.Lock()
	f := h.onGet
	h.mu.Unlock()
	if f != nil {
		f(key)
	}
	return h.Store.Get(ctx, key)
}

func (h *hookStore) Put(ctx context.Context, key string, b []byte) error {
	h.mu.Lock()
	f := h.onPut
	h.mu.Unlock()
	if f != nil {
		if err := f(key); err != nil {
			return err
		}
	}
	if err := h.Store.Put(ctx, key, b); err != nil {
		return err
	}
	h.mu.Lock()
	after := h.afterPut
	h.mu.Unlock()
	if after != nil {
		after(key)
	}
	return nil
}
