package cow

import (
	"testing"
	"time"

	"github.com/cowvol/cowvol/cow/snapfmt"
	"github.com/cowvol/cowvol/cow/snapstore"
)

// TestRecycleBinKeepsArchivedSnapshot: an archived snapshot deleted into
// the recycle bin keeps its data, which is the archive's copy: the
// standard store's collection (which no longer has the data the bin's hold
// names) still succeeds, the archive copy stays while the bin holds the
// snapshot, and after RestoreSnapshotFromRecycleBin and a permanent tier
// restore a volume from it reads byte-exact. Once the bin lets go of an
// archived snapshot, its archive copy goes.
func TestRecycleBinKeepsArchivedSnapshot(t *testing.T) {
	stores := newTierStores(t)
	std, arc := stores.std, stores.arc
	opts := stores.options("data")
	opts.TierDay, opts.RecycleBinDay = time.Hour, time.Hour
	eng, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	newRule(t, eng, 1) // every snapshot
	keep, keepVol, data := taggedSnapshot(t, eng, 5, nil)
	gone, goneVol, _ := taggedSnapshot(t, eng, 6, nil)
	for _, v := range []string{keepVol, goneVol} {
		if err := eng.DeleteVolume(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{keep.ID, gone.ID} {
		if _, err := eng.ModifySnapshotTier(ctx, id, false); err != nil {
			t.Fatal(err)
		}
		waitTier(t, eng, id, TieringArchivalCompleted)
	}
	if err := collectOnce(eng); err != nil {
		t.Fatal(err)
	}
	if n := objectsUnder(t, std); n != 0 {
		t.Fatalf("%d data objects left in the standard store after archiving", n)
	}
	for _, id := range []string{keep.ID, gone.ID} {
		if err := eng.DeleteSnapshot(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	// The bin's holds name data archiving freed: the collection must
	// not trip over them.
	if err := collectOnce(eng); err != nil {
		t.Fatalf("standard store collection with archived snapshots in the bin: %v", err)
	}
	// The bin lets go of one (its record rewritten as if its retention
	// were over).
	expireRecycledNow(t, eng, std, gone.ID)
	if err := collectOnce(eng); err != nil {
		t.Fatal(err)
	}
	eng.tiers.collectSoon()
	waitGone(t, arc, snapfmt.ManifestKey(gone.ID))
	if ok, err := arc.Exists(ctx, snapfmt.ManifestKey(keep.ID)); err != nil || !ok {
		t.Fatalf("the archive copy of a snapshot in the recycle bin: exists %v, %v", ok, err)
	}

	if _, err := eng.RestoreRecycledSnapshot(ctx, keep.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := eng.RestoreSnapshotTier(ctx, keep.ID, 0, true, false); err != nil {
		t.Fatal(err)
	}
	waitTier(t, eng, keep.ID, TieringPermCompleted)
	checkVolumeFrom(t, eng, keep.ID, data)
}

// expireRecycledNow rewrites snapshot id's recycle-bin record so that its
// retention is over.
func expireRecycledNow(t *testing.T, eng *Engine, st snapstore.Store, id string) {
	t.Helper()
	b, err := st.Get(ctx, recycleRecordKey(id))
	if err != nil {
		t.Fatal(err)
	}
	r, err := decodeRecycled(b, id)
	if err != nil {
		t.Fatal(err)
	}
	r.EnterTime, r.ExitTime = time.Now().Add(-time.Hour-time.Second), time.Now().Add(-time.Second)
	if b, err = encodeRecycled(r); err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, recycleRecordKey(id), b); err != nil {
		t.Fatal(err)
	}
}

// waitGone waits until key is no longer in st.
func waitGone(t *testing.T, st snapstore.Store, key string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, err := st.Exists(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still stored after 30 s", key)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
