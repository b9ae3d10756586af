package cow

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"

	"github.com/cowvol/cowvol/cow/snapstore"
)

// spillDirName is where the data dir keeps holds a full store refused, a
// directory store per snapshot store (named after it).
const spillDirName = "spilled-holds"

// spillStore wraps a snapshot store so that a hold survives the store
// being full (snapstore.ErrStoreFull): restoring a snapshot stores a hold
// (a copy of its manifest, a few KiB), and a full store must not keep a
// user from restoring what it holds. A refused hold is kept in the data
// dir instead and reads, lists and deletes as if it were in the store, so
// this daemon's collector marks from it; the engine's space loop moves it
// into the store once it has room (moveSpilled).
//
// What a spilled hold cannot do is protect the snapshot's data from
// another daemon on the same store: until it is moved, a deletion of the
// snapshot there may collect the data. A hold whose segments are gone is
// dropped rather than moved, so that it never breaks anyone's collection.
type spillStore struct {
	snapstore.Store
	dir string // <data-dir>/spilled-holds/<store name>
	log *slog.Logger

	// mu serialises spilled holds' moves and deletions (a hold deleted
	// while it moves must not land in the store after the deletion) and
	// guards local.
	mu    sync.Mutex
	local *snapstore.Dir // opened on first use
}

// spillHolds wraps st (nil stays nil), keeping refused holds under dir.
func spillHolds(st snapstore.Store, dir string, log *slog.Logger) snapstore.Store {
	if st == nil {
		return nil
	}
	return &spillStore{Store: st, dir: dir, log: log}
}

// localLocked opens the spilled holds' directory; with create false, nil
// when it does not exist. s.mu is held.
func (s *spillStore) localLocked(create bool) (*snapstore.Dir, error) {
	if s.local != nil {
		return s.local, nil
	}
	if _, err := os.Stat(s.dir); !create && errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	d, err := snapstore.OpenDir(s.dir)
	if err != nil {
		return nil, err
	}
	s.local = d
	return d, nil
}

// spilled returns the directory of spilled holds, or nil when none was
// ever spilled.
func (s *spillStore) spilled() *snapstore.Dir {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, err := s.localLocked(false)
	if err != nil {
		s.log.Warn("opening the spilled holds", "dir", s.dir, "err", err)
	}
	return d
}

// Put stores a hold in the data dir when the store is full.
func (s *spillStore) Put(ctx context.Context, key string, data []byte) error {
	err := s.Store.Put(ctx, key, data)
	if !isHoldKey(key) {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		// A copy spilled before is stale now.
		if d, _ := s.localLocked(false); d != nil {
			if derr := d.Delete(ctx, key); derr != nil {
				s.log.Warn("dropping a spilled hold stored since", "key", key, "err", derr)
			}
		}
		return nil
	}
	if !errors.Is(err, snapstore.ErrStoreFull) {
		return err
	}
	d, lerr := s.localLocked(true)
	if lerr == nil {
		lerr = d.Put(ctx, key, data)
	}
	if lerr != nil {
		return fmt.Errorf("%w (keeping the hold in the data dir until the store has room failed too: %v)", err, lerr)
	}
	s.log.Warn("the snapshot store is full: keeping a hold in the data dir until it has room", "key", key, "store", s.Store.String(), "err", err)
	return nil
}

// Get reads a hold from the data dir when the store lacks it.
func (s *spillStore) Get(ctx context.Context, key string) ([]byte, error) {
	b, err := s.Store.Get(ctx, key)
	if !isHoldKey(key) || !errors.Is(err, snapstore.ErrNotFound) {
		return b, err
	}
	if d := s.spilled(); d != nil {
		if lb, lerr := d.Get(ctx, key); lerr == nil {
			return lb, nil
		}
	}
	return nil, err
}

// Exists finds holds in the data dir too.
func (s *spillStore) Exists(ctx context.Context, key string) (bool, error) {
	ok, err := s.Store.Exists(ctx, key)
	if err != nil || ok || !isHoldKey(key) {
		return ok, err
	}
	if d := s.spilled(); d != nil {
		return d.Exists(ctx, key)
	}
	return false, nil
}

// List lists the spilled holds among the store's objects.
func (s *spillStore) List(ctx context.Context, prefix string, fn func(snapstore.ObjectInfo) error) error {
	if !strings.HasPrefix(prefix, "holds/") && !strings.HasPrefix("holds/", prefix) {
		return s.Store.List(ctx, prefix, fn)
	}
	d := s.spilled()
	if d == nil {
		return s.Store.List(ctx, prefix, fn)
	}
	objs := map[string]snapstore.ObjectInfo{}
	if err := d.List(ctx, prefix, func(o snapstore.ObjectInfo) error { objs[o.Key] = o; return nil }); err != nil {
		return fmt.Errorf("list spilled holds: %w", err)
	}
	if len(objs) == 0 {
		return s.Store.List(ctx, prefix, fn)
	}
	err := s.Store.List(ctx, prefix, func(o snapstore.ObjectInfo) error { objs[o.Key] = o; return nil })
	if err != nil {
		return err
	}
	keys := make([]string, 0, len(objs))
	for k := range objs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := fn(objs[k]); err != nil {
			return err
		}
	}
	return nil
}

// Delete deletes a hold in the data dir too (first: a hold not in the store
// is only there).
func (s *spillStore) Delete(ctx context.Context, key string) error {
	if !isHoldKey(key) {
		return s.Store.Delete(ctx, key)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if d, err := s.localLocked(false); err != nil {
		return fmt.Errorf("delete spilled hold %s: %w", key, err)
	} else if d != nil {
		if err := d.Delete(ctx, key); err != nil {
			return fmt.Errorf("delete spilled hold: %w", err)
		}
	}
	return s.Store.Delete(ctx, key)
}

// moveSpilled moves the spilled holds into the store, first dropping any
// whose segments are gone from it. It stops at the first failed put (the
// store is still full).
func (s *spillStore) moveSpilled(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, err := s.localLocked(false)
	if d == nil || err != nil {
		return err
	}
	var keys []string
	if err := d.List(ctx, "holds/", func(o snapstore.ObjectInfo) error { keys = append(keys, o.Key); return nil }); err != nil {
		return fmt.Errorf("list spilled holds: %w", err)
	}
	for _, key := range keys {
		b, err := d.Get(ctx, key)
		if err != nil {
			return err
		}
		gone, err := s.missingSegment(ctx, b)
		if err != nil {
			return fmt.Errorf("check spilled hold %s: %w", key, err)
		}
		if gone != "" {
			s.log.Error("a spilled hold's data was deleted from the store (by another daemon, while the store was full); dropping the hold",
				"key", key, "missing", gone)
		} else if err := s.Store.Put(ctx, key, b); err != nil {
			return fmt.Errorf("move spilled hold %s: %w", key, err)
		} else {
			s.log.Info("spilled hold stored", "key", key, "store", s.Store.String())
		}
		if err := d.Delete(ctx, key); err != nil {
			return err
		}
	}
	return nil
}

// missingSegment returns the key of a segment that manifest b names and the
// store lacks, or "".
func (s *spillStore) missingSegment(ctx context.Context, b []byte) (string, error) {
	m, err := decodeManifest(b)
	if err != nil {
		return "", err
	}
	for _, key := range m.segmentKeys() {
		ok, err := s.Store.Exists(ctx, key)
		if err != nil {
			return "", err
		}
		if !ok {
			return key, nil
		}
	}
	return "", nil
}
