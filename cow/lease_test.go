package cow

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cowvol/cowvol/cow/snapstore"
)

// TestFlushStopsOnLostLease: a flush whose lease cannot be refreshed for
// half its TTL stops before storing its manifest, and the retry, with a new
// lease, completes. (A collector elsewhere may judge a lease dead after its
// TTL and take what the flush stored.)
func TestFlushStopsOnLostLease(t *testing.T) {
	st := sharedDir(t)
	hs := &hookStore{Store: st}
	const ttl = 600 * time.Millisecond
	e, err := Open(Options{DataDir: t.TempDir(), SyncInterval: time.Hour, SnapshotStore: hs, LeaseTTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	vi, _ := e.CreateVolume(ctx, CreateVolumeParams{Size: 1 << 20, BlockSize: 64 << 10})
	h := openHandle(t, e, vi.ID)
	h.WriteAt(pattern(3, 1<<20), 0)
	h.Close()

	var mu sync.Mutex
	var firstLease string
	leases := 0
	var slowed sync.Once
	hs.setPut(func(key string) error {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case strings.HasPrefix(key, "leases/"):
			if firstLease == "" {
				firstLease = key
				leases++
				return nil
			}
			if key == firstLease { // its refreshes fail
				return errInjected
			}
			if leases == 1 {
				leases++
			}
		case strings.HasPrefix(key, "packs/"):
			// The first attempt's first pack takes longer than half
			// the lease's TTL.
			slowed.Do(func() {
				mu.Unlock()
				time.Sleep(ttl)
				mu.Lock()
			})
		case strings.HasSuffix(key, "/manifest"):
			if leases < 2 {
				t.Errorf("manifest %s stored under the lease that could not be refreshed", key)
			}
		}
		return nil
	})
	s, _ := e.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID})
	waitSnapshot(t, e, s.ID)
	got := make([]byte, 1<<20)
	freshReader(e)
	if _, err := e.ReadSnapshot(ctx, s.ID, got, 0); err != nil || string(got) != string(pattern(3, 1<<20)) {
		t.Fatalf("snapshot after a lost lease: %v", err)
	}
}

// skewedStore reports ModTimes shifted by skew: a store whose clock is off
// from this host's.
type skewedStore struct {
	snapstore.Store
	skew time.Duration
}

func (s *skewedStore) List(ctx context.Context, prefix string, fn func(snapstore.ObjectInfo) error) error {
	return s.Store.List(ctx, prefix, func(o snapstore.ObjectInfo) error {
		o.ModTime = o.ModTime.Add(s.skew)
		return fn(o)
	})
}

// TestGCJudgesLeasesByStoreClock: with the store's clock 20 minutes behind
// the collector's (twice the lease TTL, within the grace period), a live
// lease is still live: its age is judged by the store's clock.
func TestGCJudgesLeasesByStoreClock(t *testing.T) {
	st := &skewedStore{Store: sharedDir(t), skew: -20 * time.Minute}
	e := openSharedEngine(t, st, "111111111111", time.Hour)
	e.StopBackground()
	l, stop, err := e.holdLease(ctx, st, "snap-0000000000000000a")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if err := collectOnce(e); err != nil {
		t.Fatal(err)
	}
	var leases []string
	st.List(ctx, "leases/", func(o snapstore.ObjectInfo) error { leases = append(leases, o.Key); return nil })
	if len(leases) != 1 {
		t.Fatalf("a live lease was judged dead by the collector's clock: leases %v", leases)
	}
	if err := l.valid(); err != nil {
		t.Fatal(err)
	}
}
