package cow

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cowvol/cowvol/cow/snapfmt"
	"github.com/cowvol/cowvol/cow/snapstore"
)

// Two daemons (engines with their own data dirs) on one store: a directory
// here, which both open; the S3 backend passes the same conformance suite,
// and integration/ runs two daemon binaries on one MinIO bucket.

func openSharedEngine(t *testing.T, store snapstore.Store, account string, grace time.Duration) *Engine {
	t.Helper()
	eng, err := Open(Options{DataDir: t.TempDir(), SyncInterval: time.Hour, SnapshotStore: store,
		AccountID: account, GCGrace: grace, CatalogInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	return eng
}

func sharedDir(t *testing.T) snapstore.Store {
	t.Helper()
	st, err := snapstore.OpenDir(filepath.Join(t.TempDir(), "shared"))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func readVolume(t *testing.T, eng *Engine, id string, n int) []byte {
	t.Helper()
	h := openHandle(t, eng, id)
	defer h.Close()
	b := make([]byte, n)
	if _, err := h.ReadAt(b, 0); err != nil {
		t.Fatalf("read %s: %v", id, err)
	}
	return b
}

// TestSharedStoreCatalogue: a snapshot completed on A is described on B
// with A's owner ID, becomes a volume on B, and DeleteSnapshot on A while B
// still depends on it (hydration stopped) leaves B's data in place; B's
// catalogue then forgets the snapshot.
func TestSharedStoreCatalogue(t *testing.T) {
	st := sharedDir(t)
	a := openSharedEngine(t, st, "111111111111", time.Nanosecond)
	b := openSharedEngine(t, st, "222222222222", time.Nanosecond)

	vi, _ := a.CreateVolume(ctx, CreateVolumeParams{Size: 4 << 20, BlockSize: 64 << 10})
	data := pattern(9, 4<<20)
	copy(data[1<<20:], make([]byte, 64<<10)) // a zero block
	h := openHandle(t, a, vi.ID)
	h.WriteAt(data, 0)
	h.Close()
	snap, _ := a.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID, Description: "from A"})
	// Pending on A: B does not see it.
	if _, err := b.SnapshotInfo(snap.ID); err == nil {
		if si, _ := a.SnapshotInfo(snap.ID); si.State == SnapshotPending {
			t.Fatal("B sees a snapshot pending on A")
		}
	}
	waitSnapshot(t, a, snap.ID)

	// By ID at once; in the listing after a refresh.
	si, err := b.SnapshotInfo(snap.ID)
	if err != nil || si.OwnerID != "111111111111" || si.State != SnapshotCompleted || si.Description != "from A" || si.VolumeSize != 4<<20 {
		t.Fatalf("B's SnapshotInfo = %+v, %v", si, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		all, _ := b.DescribeSnapshots(ctx)
		if len(all) == 1 && all[0].ID == snap.ID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("B lists %+v", all)
		}
		time.Sleep(20 * time.Millisecond)
	}
	own, _ := a.SnapshotInfo(snap.ID)
	if own.OwnerID != "" {
		t.Fatalf("A's own snapshot has OwnerID %q; the control server fills it in", own.OwnerID)
	}

	// B's account may use A's snapshot, not delete it.
	if err := b.DeleteSnapshot(ctx, snap.ID); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("B deleting A's snapshot: %v, want ErrNotOwner", err)
	}
	// Only once A's account gives B's createVolumePermission.
	if _, err := b.CreateVolume(ctx, CreateVolumeParams{SnapshotID: snap.ID}); !errors.Is(err, ErrNoCreateVolumePermission) {
		t.Fatalf("B creating a volume from A's snapshot unshared: %v, want ErrNoCreateVolumePermission", err)
	}
	if err := a.ModifySnapshotPermission(ctx, PermissionChange{SnapshotID: snap.ID, AddUsers: []string{"222222222222"}}); err != nil {
		t.Fatal(err)
	}
	// B's hydration never starts (background stopped before the
	// create): every block B reads comes from the store, through B's hold.
	b.StopBackground()
	rv, err := b.CreateVolume(ctx, CreateVolumeParams{SnapshotID: snap.ID})
	if err != nil {
		t.Fatal(err)
	}
	var packs []string
	st.List(ctx, "packs/", func(o snapstore.ObjectInfo) error { packs = append(packs, o.Key); return nil })
	if err := a.DeleteSnapshot(ctx, snap.ID); err != nil {
		t.Fatal(err)
	}
	// A's volume keeps its own hold; delete it, so only B's hold is left.
	if err := a.DeleteVolume(ctx, vi.ID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond) // past the (1 ns) grace period by any clock
	if err := collectOnce(a); err != nil {
		t.Fatal(err)
	}
	var holds []string
	st.List(ctx, "holds/", func(o snapstore.ObjectInfo) error { holds = append(holds, o.Key); return nil })
	if len(holds) != 1 || holds[0] != snapfmt.HoldKey(rv.ID, snap.ID) {
		t.Fatalf("holds after A deleted its snapshot and volume: %v, want only B's", holds)
	}
	for _, k := range packs {
		if ok, _ := st.Exists(ctx, k); !ok {
			t.Fatalf("pack %s B's hold needs was collected", k)
		}
	}
	freshReader(b)
	if got := readVolume(t, b, rv.ID, len(data)); !bytes.Equal(got, data) {
		t.Fatalf("B's volume differs at %d after A deleted the snapshot", firstDiff(got, data))
	}
	if err := b.catalog.refresh(ctx, StoreRegional, st); err != nil {
		t.Fatal(err)
	}
	if _, err := b.SnapshotInfo(snap.ID); !errors.Is(err, ErrSnapshotNotFound) {
		t.Fatalf("B still describes the deleted snapshot: %v", err)
	}
}

// TestGCGraceAndLeases: an object no root needs goes only when it is older
// than the grace period and than every live flush lease's start (less the
// grace period); a dead lease protects nothing.
func TestGCGraceAndLeases(t *testing.T) {
	st := sharedDir(t)
	grace := 300 * time.Millisecond
	a := openSharedEngine(t, st, "111111111111", grace)
	a.StopBackground() // only the collections this test runs
	orphan := func(i int) string {
		k := fmt.Sprintf("packs/%02x/%032x", i, i)
		if err := st.Put(ctx, k, []byte("unreferenced")); err != nil {
			t.Fatal(err)
		}
		return k
	}
	exists := func(k string) bool { ok, _ := st.Exists(ctx, k); return ok }
	gc := func() {
		if err := collectOnce(a); err != nil {
			t.Fatal(err)
		}
	}
	old := orphan(1)
	time.Sleep(leaseMargin + 2*grace)
	_, stop, err := a.holdLease(ctx, st, "snap-0000000000000000a") // another daemon's flush starts
	if err != nil {
		t.Fatal(err)
	}
	young := orphan(2)
	gc()
	if exists(old) || !exists(young) {
		t.Fatalf("after the first collection: old %v (want gone), young %v (want kept)", exists(old), exists(young))
	}
	time.Sleep(2 * grace)
	gc()
	if !exists(young) {
		t.Fatal("an object stored during a live flush lease was collected")
	}
	stop()
	gc()
	if exists(young) {
		t.Fatal("an unreferenced object outlived its grace period and the lease")
	}
	// A lease whose daemon died (not refreshed for LeaseTTL) protects nothing.
	a.leaseTTL = 100 * time.Millisecond
	if err := st.Put(ctx, snapfmt.LeaseKey("snap-0000000000000000b", time.Now()), nil); err != nil {
		t.Fatal(err)
	}
	late := orphan(3)
	time.Sleep(2 * grace)
	gc()
	if exists(late) {
		t.Fatal("a dead lease kept garbage")
	}
	var leases []string
	st.List(ctx, "leases/", func(o snapstore.ObjectInfo) error { leases = append(leases, o.Key); return nil })
	if len(leases) != 0 {
		t.Fatalf("dead leases left: %v", leases)
	}
}

// TestSharedStoreConcurrentGC: A takes snapshots of a volume it keeps
// rewriting and deletes old ones while B, on the same store, creates volumes
// from A's snapshots (racing the deletions) and collects garbage in a loop,
// with a short grace period (longer than the filesystem's timestamp
// granularity, which the real default covers many times over: with none,
// this test caught a pack whose coarse mtime predated its flush's lease).
// Every snapshot that survives reads back exactly,
// and every volume B created reads back its snapshot.
func TestSharedStoreConcurrentGC(t *testing.T) {
	st := sharedDir(t)
	a := openSharedEngine(t, st, "111111111111", 100*time.Millisecond)
	b := openSharedEngine(t, st, "222222222222", 100*time.Millisecond)
	const size = 2 << 20
	vi, _ := a.CreateVolume(ctx, CreateVolumeParams{Size: size, BlockSize: 64 << 10})
	h := openHandle(t, a, vi.ID)
	defer h.Close()
	content := make([]byte, size)

	stopGC := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stopGC:
				return
			default:
			}
			err := collectOnce(b)
			if err != nil && !errors.Is(err, errRootVanished) {
				t.Error(err)
				return
			}
		}
	}()

	type kept struct {
		id   string
		data []byte
	}
	var snaps []kept
	type restored struct {
		vol  string
		data []byte
	}
	var vols []restored
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 12 {
		for range 8 {
			blk := rng.IntN(size >> 16)
			p := pattern(byte(round*8+blk), 64<<10)
			copy(content[blk<<16:], p)
			h.WriteAt(p, int64(blk)<<16)
		}
		s, err := a.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID})
		if err != nil {
			t.Fatal(err)
		}
		waitSnapshot(t, a, s.ID)
		if err := a.ModifySnapshotPermission(ctx, PermissionChange{SnapshotID: s.ID, AddUsers: []string{"222222222222"}}); err != nil {
			t.Fatal(err)
		}
		if round%4 == 3 {
			// The newest goes at once: the volume's base is then only
			// its hold, which the next flush swaps for another while
			// B's collector may be marking.
			if err := a.DeleteSnapshot(ctx, s.ID); err != nil {
				t.Fatal(err)
			}
			continue
		}
		snaps = append(snaps, kept{s.ID, bytes.Clone(content)})
		if len(snaps) > 2 {
			victim := snaps[0]
			snaps = snaps[1:]
			// B races A's deletion with a create from the same snapshot.
			var rv VolumeInfo
			var cerr error
			done := make(chan struct{})
			go func() {
				defer close(done)
				rv, cerr = b.CreateVolume(ctx, CreateVolumeParams{SnapshotID: victim.id})
			}()
			if err := a.DeleteSnapshot(ctx, victim.id); err != nil {
				t.Fatal(err)
			}
			<-done
			switch {
			case cerr == nil:
				vols = append(vols, restored{rv.ID, victim.data})
			case !errors.Is(cerr, ErrSnapshotNotFound):
				t.Fatalf("create from a snapshot being deleted: %v", cerr)
			}
		}
	}
	close(stopGC)
	wg.Wait()
	for _, s := range snaps {
		got := make([]byte, size)
		if _, err := b.ReadSnapshot(ctx, s.id, got, 0); err != nil {
			t.Fatalf("read %s on B: %v", s.id, err)
		}
		if !bytes.Equal(got, s.data) {
			t.Fatalf("snapshot %s differs at %d", s.id, firstDiff(got, s.data))
		}
	}
	for _, v := range vols {
		if got := readVolume(t, b, v.vol, size); !bytes.Equal(got, v.data) {
			t.Fatalf("volume %s differs at %d", v.vol, firstDiff(got, v.data))
		}
	}
	t.Logf("%d snapshots kept, %d volumes created on B racing deletions on A", len(snaps), len(vols))
}

// TestOwnSnapshotDeletedElsewhere: a snapshot B took and A (a host of the
// same account: another account may not delete it) deleted drops out of
// B's answers at B's next refresh; B keeps the record (pointing B at
// another bucket by mistake must not destroy its catalogue).
func TestOwnSnapshotDeletedElsewhere(t *testing.T) {
	st := sharedDir(t)
	a := openSharedEngine(t, st, "222222222222", time.Nanosecond)
	b := openSharedEngine(t, st, "222222222222", time.Nanosecond)
	vi, _ := b.CreateVolume(ctx, CreateVolumeParams{Size: 1 << 20})
	h := openHandle(t, b, vi.ID)
	h.WriteAt(pattern(3, 1<<20), 0)
	h.Close()
	s, _ := b.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID})
	waitSnapshot(t, b, s.ID)
	if err := a.DeleteSnapshot(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := b.SnapshotInfo(s.ID)
		all, _ := b.DescribeSnapshots(ctx)
		if errors.Is(err, ErrSnapshotNotFound) && len(all) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("B still has its snapshot A deleted: %v, %d listed", err, len(all))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if recs, _ := b.meta.Snapshots(); len(recs) != 1 {
		t.Fatalf("B has %d snapshot records, want its 1 kept", len(recs))
	}
	// The volume still builds its next snapshot on its hold.
	s2, _ := b.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID})
	waitSnapshot(t, b, s2.ID)
	got := make([]byte, 1<<20)
	if _, err := a.ReadSnapshot(ctx, s2.ID, got, 0); err != nil || !bytes.Equal(got, pattern(3, 1<<20)) {
		t.Fatalf("A reads B's next snapshot: %v", err)
	}
}
