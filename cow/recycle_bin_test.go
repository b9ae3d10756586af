package cow

import (
	"bytes"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/cowvol/cowvol/cow/snapstore"
)

// openBinEngine opens an engine on a shared store whose retention DAY is day.
func openBinEngine(t *testing.T, st snapstore.Store, day time.Duration) *Engine {
	t.Helper()
	eng, err := Open(Options{DataDir: t.TempDir(), SyncInterval: time.Hour, SnapshotStore: st,
		AccountID: "111111111111", GCGrace: time.Nanosecond, CatalogInterval: 50 * time.Millisecond, RecycleBinDay: day})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	return eng
}

// taggedSnapshot writes data to a new volume and snapshots it with tags;
// it returns the snapshot and the volume.
func taggedSnapshot(t *testing.T, eng *Engine, seed byte, tags []Tag) (SnapshotInfo, string, []byte) {
	t.Helper()
	vi, err := eng.CreateVolume(ctx, CreateVolumeParams{Size: 1 << 20, BlockSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	data := pattern(seed, 1<<20)
	h := openHandle(t, eng, vi.ID)
	h.WriteAt(data, 0)
	h.Close()
	si, err := eng.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID, Tags: tags, Description: "d"})
	if err != nil {
		t.Fatal(err)
	}
	waitSnapshot(t, eng, si.ID)
	return si, vi.ID, data
}

func binIDs(t *testing.T, eng *Engine) []string {
	t.Helper()
	rs, err := eng.RecycledSnapshots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range rs {
		ids = append(ids, r.ID)
	}
	return ids
}

func newRule(t *testing.T, eng *Engine, days int, tags ...RecycleRuleTag) RecycleRule {
	t.Helper()
	r, err := eng.CreateRecycleRule(ctx, RecycleRule{ResourceType: ResourceTypeEBSSnapshot, RetentionValue: days,
		RetentionUnit: RetentionUnitDays, ResourceTags: tags})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestRecycleBinRestore: a snapshot a rule matches goes to the bin on
// DeleteSnapshot (hidden, listed on both daemons sharing the store), its
// data survives the other daemon's collection, and it comes back with the
// same ID and content; an unmatched one is deleted for good.
func TestRecycleBinRestore(t *testing.T) {
	st := sharedDir(t)
	a := openBinEngine(t, st, time.Hour)
	b := openBinEngine(t, st, time.Hour)
	b.StopBackground()
	rule := newRule(t, a, 2, RecycleRuleTag{Key: "backup", Value: "yes"})

	kept, keptVol, data := taggedSnapshot(t, a, 3, []Tag{{Key: "backup", Value: "yes"}})
	plain, plainVol, _ := taggedSnapshot(t, a, 4, []Tag{{Key: "backup", Value: "no"}})
	a.StopBackground()                              // only the collections the test runs
	for _, v := range []string{keptVol, plainVol} { // only the snapshots hold the data now
		if err := a.DeleteVolume(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	before := time.Now()
	for _, id := range []string{kept.ID, plain.ID} {
		if err := a.DeleteSnapshot(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	for _, eng := range []*Engine{a, b} {
		if ids := binIDs(t, eng); !slices.Equal(ids, []string{kept.ID}) {
			t.Fatalf("bin = %v, want [%s]", ids, kept.ID)
		}
		if _, err := eng.SnapshotInfo(kept.ID); !errors.Is(err, ErrSnapshotNotFound) {
			t.Fatalf("a recycled snapshot is described: %v", err)
		}
	}
	rs, _ := b.RecycledSnapshots(ctx)
	if r := rs[0]; r.RuleID != rule.ID || r.VolumeID != keptVol || r.EnterTime.Before(before.Add(-time.Second)) ||
		!r.ExitTime.Equal(r.EnterTime.Add(2*time.Hour)) {
		t.Fatalf("bin entry %+v (rule %s)", r, rule.ID)
	}
	if err := a.DeleteSnapshot(ctx, kept.ID); !errors.Is(err, ErrSnapshotNotFound) {
		t.Fatalf("deleting a recycled snapshot: %v", err)
	}
	time.Sleep(10 * time.Millisecond) // past the 1 ns grace period
	if err := collectOnce(b); err != nil {
		t.Fatal(err)
	}
	if _, err := b.RestoreRecycledSnapshot(ctx, plain.ID); !errors.Is(err, ErrSnapshotNotFound) {
		t.Fatalf("restoring a snapshot deleted for good: %v", err)
	}
	// Restored by the other daemon: the same ID, byte-exact.
	si, err := b.RestoreRecycledSnapshot(ctx, kept.ID)
	if err != nil || si.ID != kept.ID || si.State != SnapshotCompleted || len(si.Tags) != 1 {
		t.Fatalf("RestoreRecycledSnapshot = %+v, %v", si, err)
	}
	if ids := binIDs(t, a); len(ids) != 0 {
		t.Fatalf("bin after the restore: %v", ids)
	}
	if _, err := b.RestoreRecycledSnapshot(ctx, kept.ID); !errors.Is(err, ErrSnapshotNotFound) {
		t.Fatalf("restoring twice: %v", err)
	}
	freshReader(a)
	vi, err := a.CreateVolume(ctx, CreateVolumeParams{SnapshotID: kept.ID})
	if err != nil {
		t.Fatal(err)
	}
	if got := readVolume(t, a, vi.ID, len(data)); !bytes.Equal(got, data) {
		t.Fatalf("restored snapshot differs at %d", firstDiff(got, data))
	}
	// An ordinary snapshot again, on the daemon that made it too:
	// retagged, and deleted into the bin once more.
	if err := a.ChangeTags(ctx, TagChange{ResourceIDs: []string{kept.ID}, Set: []Tag{{Key: "note", Value: "restored"}}}); err != nil {
		t.Fatal(err)
	}
	if err := a.DeleteSnapshot(ctx, kept.ID); err != nil {
		t.Fatal(err)
	}
	if ids := binIDs(t, b); !slices.Equal(ids, []string{kept.ID}) {
		t.Fatalf("bin after deleting the restored snapshot = %v", ids)
	}
	si, err = a.RestoreRecycledSnapshot(ctx, kept.ID)
	if err != nil || len(si.Tags) != 2 {
		t.Fatalf("second restore = %+v, %v (want both tags)", si, err)
	}
}

// TestRecycleBinExpiry: once its retention ends, a recycled snapshot is
// deleted for good by the next collection on any daemon, and its data goes.
func TestRecycleBinExpiry(t *testing.T) {
	st := sharedDir(t)
	a := openBinEngine(t, st, 200*time.Millisecond)
	b := openBinEngine(t, st, 200*time.Millisecond)
	b.StopBackground()
	newRule(t, a, 1) // every snapshot
	snap, vol, _ := taggedSnapshot(t, a, 5, nil)
	a.StopBackground()
	if err := a.DeleteVolume(ctx, vol); err != nil {
		t.Fatal(err)
	}
	if err := a.DeleteSnapshot(ctx, snap.ID); err != nil {
		t.Fatal(err)
	}
	packs := storeKeys(t, st, "packs/")
	if len(packs) == 0 {
		t.Fatal("no packs stored")
	}
	if err := collectOnce(b); err != nil {
		t.Fatal(err)
	}
	if got := storeKeys(t, st, "packs/"); !slices.Equal(got, packs) {
		t.Fatalf("packs collected during retention: %v -> %v", packs, got)
	}
	time.Sleep(250 * time.Millisecond)
	if ids := binIDs(t, a); len(ids) != 0 {
		t.Fatalf("an expired snapshot is listed: %v", ids)
	}
	if err := collectOnce(b); err != nil {
		t.Fatal(err)
	}
	for _, prefix := range []string{"packs/", "holds/", "snapshots/"} {
		if left := storeKeys(t, st, prefix); len(left) != 0 {
			t.Fatalf("after expiry, %s holds %v", prefix, left)
		}
	}
	if _, err := a.RestoreRecycledSnapshot(ctx, snap.ID); !errors.Is(err, ErrSnapshotNotFound) {
		t.Fatalf("restoring an expired snapshot: %v", err)
	}
}

// TestRecycleBinRecordDamaged: a damaged record keeps its snapshot's data
// (and is not listed), rather than deleting what it cannot read.
func TestRecycleBinRecordDamaged(t *testing.T) {
	st := sharedDir(t)
	a := openBinEngine(t, st, time.Millisecond)
	newRule(t, a, 1)
	snap, vol, _ := taggedSnapshot(t, a, 6, nil)
	a.StopBackground()
	a.DeleteVolume(ctx, vol)
	if err := a.DeleteSnapshot(ctx, snap.ID); err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, recycleRecordKey(snap.ID), []byte("{garbled")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	if err := collectOnce(a); err != nil {
		t.Fatal(err)
	}
	if len(storeKeys(t, st, "packs/")) == 0 || len(storeKeys(t, st, "holds/")) != 1 {
		t.Fatal("a snapshot with a damaged recycle-bin record lost its data")
	}
	if ids := binIDs(t, a); len(ids) != 0 {
		t.Fatalf("bin lists %v", ids)
	}
}
