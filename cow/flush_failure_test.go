package cow

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cowvol/cowvol/cow/snapfmt"
	"github.com/cowvol/cowvol/cow/snapstore"
)

// failingStore wraps a real store; while failing is set, every Put fails.
type failingStore struct {
	snapstore.Store
	failing atomic.Bool
	puts    atomic.Int64
}

var errInjected = errors.New("injected: store unavailable")

func (f *failingStore) Put(ctx context.Context, key string, data []byte) error {
	if f.failing.Load() {
		return errInjected
	}
	f.puts.Add(1)
	return f.Store.Put(ctx, key, data)
}

// TestFlushAgainstFailingStore: a store that fails for a while makes the
// flush retry, then complete with the right content; a store that fails for
// good ends the snapshot in state error with a statusMessage, no manifest
// written, and the volume unaffected.
func TestFlushAgainstFailingStore(t *testing.T) {
	dir := t.TempDir()
	ds, _ := snapstore.OpenDir(filepath.Join(dir, "store"))
	fs := &failingStore{Store: ds}
	eng, err := Open(Options{DataDir: filepath.Join(dir, "data"), SyncInterval: time.Hour, SnapshotStore: fs, FlushDeadline: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	vi, _ := eng.CreateVolume(ctx, CreateVolumeParams{Size: 1 << 20, BlockSize: 4096})
	h := openHandle(t, eng, vi.ID)
	want := pattern(5, 1<<20)
	h.WriteAt(want, 0)

	// Fails for good.
	fs.failing.Store(true)
	bad, err := eng.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID})
	if err != nil {
		t.Fatal(err)
	}
	var si SnapshotInfo
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if si, _ = eng.SnapshotInfo(bad.ID); si.State != SnapshotPending {
			break
		}
		// The volume stays writable and readable meanwhile.
		if _, err := h.WriteAt(want[:4096], 0); err != nil {
			t.Fatalf("write while the store fails: %v", err)
		}
	}
	if si.State != SnapshotError || !strings.Contains(si.StatusMessage, "injected") {
		t.Fatalf("snapshot against a dead store: state %s, message %q", si.State, si.StatusMessage)
	}
	if ok, _ := ds.Exists(ctx, snapfmt.ManifestKey(bad.ID)); ok {
		t.Fatal("a failed snapshot has a manifest")
	}

	// Fails for a while, then recovers: the next snapshot completes whole.
	good, err := eng.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // at least one failed attempt
	fs.failing.Store(false)
	waitSnapshot(t, eng, good.ID)
	got := make([]byte, len(want))
	if _, err := eng.ReadSnapshot(ctx, good.ID, got, 0); err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatalf("snapshot after the store recovered differs at byte %d", firstDiff(got, want))
	}
}

// TestFailedFlushUnpublishesManifest: a flush that stores its manifest and
// then fails until its deadline (here: every hold fails) ends in error with
// no manifest left in the store; other daemons never list it as completed,
// and nothing leaks when it is deleted.
func TestFailedFlushUnpublishesManifest(t *testing.T) {
	st := sharedDir(t)
	hs := &hookStore{Store: st}
	hs.setPut(func(key string) error {
		if strings.HasPrefix(key, "holds/") {
			return errInjected
		}
		return nil
	})
	eng, err := Open(Options{DataDir: t.TempDir(), SyncInterval: time.Hour, SnapshotStore: hs, FlushDeadline: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	vi, _ := eng.CreateVolume(ctx, CreateVolumeParams{Size: 1 << 20, BlockSize: 64 << 10})
	h := openHandle(t, eng, vi.ID)
	h.WriteAt(pattern(4, 1<<20), 0)
	h.Close()
	s, _ := eng.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID})
	var si SnapshotInfo
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if si, _ = eng.SnapshotInfo(s.ID); si.State != SnapshotPending {
			break
		}
	}
	if si.State != SnapshotError {
		t.Fatalf("snapshot %s is %s, want error", s.ID, si.State)
	}
	if ok, _ := st.Exists(ctx, snapfmt.ManifestKey(s.ID)); ok {
		t.Fatalf("snapshot %s is in state error on its owner, but its manifest is stored (complete for everyone else)", s.ID)
	}
}

// TestFlushAtShutdownIsNotPermanent: Close marks the engine closed before
// it stops the flusher; a flush that starts in between must not fail its
// snapshot for good ("volume is gone"), only stop until the next start.
func TestFlushAtShutdownIsNotPermanent(t *testing.T) {
	eng := openTestEngine(t, t.TempDir())
	vi, err := eng.CreateVolume(ctx, CreateVolumeParams{Size: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	eng.gc.Lock() // the flusher waits for it before it looks the volume up
	si, err := eng.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID})
	if err != nil {
		eng.gc.Unlock()
		t.Fatal(err)
	}
	for {
		eng.snapshots.mu.Lock()
		picked := eng.snapshots.inFlight != nil
		eng.snapshots.mu.Unlock()
		if picked {
			break
		}
		time.Sleep(time.Millisecond)
	}
	eng.volumes.mu.Lock()
	eng.volumes.closed = true // as Close does first
	eng.volumes.mu.Unlock()
	eng.gc.Unlock()
	time.Sleep(50 * time.Millisecond) // the flush runs into the closed engine
	eng.StopBackground()
	s, _ := eng.lookupSnapshot(ctx, si.ID)
	if st := s.record().State; st != string(SnapshotPending) {
		t.Fatalf("a flush cut off by shutdown left the snapshot %s (%s), want pending", st, s.record().StatusMessage)
	}
	eng.volumes.mu.Lock()
	eng.volumes.closed = false // let the test's Close close it
	eng.volumes.mu.Unlock()
}
