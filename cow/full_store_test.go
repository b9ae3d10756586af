package cow

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cowvol/cowvol/cow/snapstore"
)

// TestFullStore: with the snapshot store refusing every put for lack of
// space (snapstore.ErrStoreFull), a restore is refused saying why and
// leaves nothing behind, a new snapshot stays pending saying the store is
// full, and deleting snapshots and volumes frees space: the collector runs
// without its clock probe. Once the store has room, the pending snapshot
// completes and the restore works.
func TestFullStore(t *testing.T) {
	const size = 4 << 20
	st := sharedDir(t)
	hs := &hookStore{Store: st}
	var full atomic.Bool
	hs.setPut(func(key string) error {
		if full.Load() {
			return fmt.Errorf("put %s: %w: no space left on device", key, snapstore.ErrStoreFull)
		}
		return nil
	})
	eng, err := Open(Options{DataDir: t.TempDir(), SyncInterval: time.Hour, SnapshotStore: hs, GCGrace: time.Nanosecond,
		FlushRetryBase: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	snapshotOf := func(seed uint64) (string, string, []byte) {
		vi, _ := eng.CreateVolume(ctx, CreateVolumeParams{Size: size, BlockSize: 64 << 10})
		data := randomBytes(seed, size)
		h := openHandle(t, eng, vi.ID)
		h.WriteAt(data, 0)
		h.Close()
		s, _ := eng.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID})
		waitSnapshot(t, eng, s.ID)
		return vi.ID, s.ID, data
	}
	_, keep, want := snapshotOf(5)
	keepPacks := storeKeys(t, st, "packs/")
	dropVol, drop, _ := snapshotOf(6)
	busy, _ := eng.CreateVolume(ctx, CreateVolumeParams{Size: size, BlockSize: 64 << 10})
	h := openHandle(t, eng, busy.ID)
	h.WriteAt(randomBytes(7, size), 0)
	h.Close()

	full.Store(true)
	vols, _ := eng.DescribeVolumes(ctx)
	holds := storeKeys(t, st, "holds/")
	_, err = eng.CreateVolume(ctx, CreateVolumeParams{SnapshotID: keep})
	if !errors.Is(err, ErrStoreFull) || !strings.Contains(err.Error(), "full") {
		t.Fatalf("restore from a full store: %v, want ErrStoreFull saying so", err)
	}
	if after, _ := eng.DescribeVolumes(ctx); len(after) != len(vols) {
		t.Fatal("a refused restore left a volume")
	}
	if after := storeKeys(t, st, "holds/"); !slices.Equal(after, holds) {
		t.Fatalf("a refused restore changed the holds: %v, were %v", after, holds)
	}
	pending, _ := eng.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: busy.ID})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		si, _ := eng.SnapshotInfo(pending.ID)
		if strings.Contains(si.StatusMessage, "snapshot store is full") {
			break
		}
		if si.State != SnapshotPending || time.Now().After(deadline) {
			t.Fatalf("snapshot into a full store: %s %q", si.State, si.StatusMessage)
		}
	}

	// Deleting frees space: the collector runs on the full store.
	if err := eng.DeleteSnapshot(ctx, drop); err != nil {
		t.Fatal(err)
	}
	if err := eng.DeleteVolume(ctx, dropVol); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if packs := storeKeys(t, st, "packs/"); slices.Equal(packs, keepPacks) {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("packs in the full store after deletions: %v, want the kept snapshot's %v", packs, keepPacks)
		}
	}

	// Room again: the snapshot completes, the restore works.
	full.Store(false)
	waitSnapshot(t, eng, pending.ID)
	restored, err := eng.CreateVolume(ctx, CreateVolumeParams{SnapshotID: keep})
	if err != nil {
		t.Fatal(err)
	}
	if got := readVolume(t, eng, restored.ID, size); !bytes.Equal(got, want) {
		t.Fatalf("the restored volume differs at %d", firstDiff(got, want))
	}
}
