package cow

import (
	"bytes"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cowvol/cowvol/cow/snapfmt"
	"github.com/cowvol/cowvol/cow/snapstore"
)

// TestTierStateMachine: for each stored tier state, the tier the snapshot
// is in, whether the standard store keeps its data, and what archiving and
// restoring it do.
func TestTierStateMachine(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	grace := time.Hour
	rec := func(s TieringStatus, expiry time.Time) *tierRecord {
		return &tierRecord{SnapshotID: "snap-1", Status: s, StartTime: now.Add(-time.Minute), RestoreExpiryTime: expiry}
	}
	later, earlier := now.Add(time.Hour), now.Add(-time.Minute)
	archived := func(done time.Time) *tierRecord {
		r := rec(TieringArchivalCompleted, time.Time{})
		r.ArchivalCompleteTime = done
		return r
	}
	tests := []struct {
		name      string
		t         *tierRecord
		stale     bool
		tier      string
		keeps     bool
		archiveOK bool
		plan      restorePlan // 0: refused
	}{
		{"never tiered", nil, false, TierStandard, true, true, 0},
		{"archiving", rec(TieringArchivalInProgress, time.Time{}), false, TierStandard, true, false, 0},
		{"archiving, abandoned", rec(TieringArchivalInProgress, time.Time{}), true, TierStandard, true, true, 0},
		{"archival failed", rec(TieringArchivalFailed, time.Time{}), false, TierStandard, true, true, 0},
		{"archived", archived(now.Add(-2 * grace)), false, TierArchive, false, false, restoreCopy},
		{"archived, in grace", archived(earlier), false, TierArchive, true, false, restoreCopy},
		{"restoring temporarily", rec(TieringTempInProgress, time.Time{}), false, TierArchive, false, false, 0},
		{"restoring, abandoned", rec(TieringTempInProgress, time.Time{}), true, TierArchive, false, false, restoreCopy},
		{"temporary restore failed", rec(TieringTempFailed, time.Time{}), false, TierArchive, false, false, restoreCopy},
		{"temporarily restored", rec(TieringTempCompleted, later), false, TierStandard, true, false, restoreExtend},
		{"temporary restore expired, in grace", rec(TieringTempCompleted, earlier), false, TierArchive, true, false, restoreCopy},
		{"temporary restore expired long ago", rec(TieringTempCompleted, now.Add(-2*grace)), false, TierArchive, false, false, restoreCopy},
		{"restoring permanently", rec(TieringPermInProgress, time.Time{}), false, TierArchive, false, false, 0},
		{"permanent restore failed", rec(TieringPermFailed, time.Time{}), false, TierArchive, false, false, restoreCopy},
		{"permanently restored", rec(TieringPermCompleted, time.Time{}), false, TierStandard, true, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.t.storageTier(now); got != tt.tier {
				t.Errorf("storageTier = %s, want %s", got, tt.tier)
			}
			if got := tt.t.keepsStandardData(now, grace); got != tt.keeps {
				t.Errorf("keepsStandardData = %v, want %v", got, tt.keeps)
			}
			err := tt.t.checkArchive(now, tt.stale)
			if (err == nil) != tt.archiveOK || (err != nil && !errors.Is(err, ErrIncorrectState)) {
				t.Errorf("checkArchive = %v, want ok %v", err, tt.archiveOK)
			}
			plan, err := tt.t.planRestore(now, tt.stale)
			if plan != tt.plan || (err == nil) != (tt.plan != 0) || (err != nil && !errors.Is(err, ErrIncorrectState)) {
				t.Errorf("planRestore = %v, %v; want %v", plan, err, tt.plan)
			}
			exp := tt.t.restoreExpiry(now)
			if wantExp := tt.tier == TierStandard && tt.t != nil && tt.t.Status == TieringTempCompleted; wantExp != !exp.IsZero() {
				t.Errorf("restoreExpiry = %v", exp)
			}
		})
	}
}

// TestDecodeTier: a stored tier object decodes to what was encoded; one
// that is not well formed is ErrCorrupt.
func TestDecodeTier(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Millisecond)
	good := tierRecord{SnapshotID: "snap-1", Status: TieringTempCompleted, StartTime: now, RestoreExpiryTime: now.Add(time.Hour), RestoreDays: 3}
	b, err := encodeTier(good)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeTier(b, "snap-1")
	good.Version = tierFormat
	if err != nil || got != good {
		t.Fatalf("decode = %+v, %v; want %+v", got, err, good)
	}
	for name, body := range map[string]string{
		"not json":          `{`,
		"other snapshot":    strings.Replace(string(b), "snap-1", "snap-2", 1),
		"format":            strings.Replace(string(b), `"version":1`, `"version":2`, 1),
		"status":            strings.Replace(string(b), "temporary-restore-completed", "frozen", 1),
		"no expiry":         `{"version":1,"snapshotId":"snap-1","lastTieringOperationStatus":"temporary-restore-completed","lastTieringStartTime":"2026-01-01T00:00:00Z"}`,
		"no start":          `{"version":1,"snapshotId":"snap-1","lastTieringOperationStatus":"archival-completed"}`,
		"restore days < 0":  `{"version":1,"snapshotId":"snap-1","lastTieringOperationStatus":"archival-completed","lastTieringStartTime":"2026-01-01T00:00:00Z","restoreDays":-1}`,
		"restore days huge": `{"version":1,"snapshotId":"snap-1","lastTieringOperationStatus":"archival-completed","lastTieringStartTime":"2026-01-01T00:00:00Z","restoreDays":181}`,
	} {
		if _, err := decodeTier([]byte(body), "snap-1"); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err = %v, want ErrCorrupt", name, err)
		}
	}
}

// FuzzDecodeTier: any stored bytes decode to a valid state or ErrCorrupt,
// never a panic; a valid state encodes back to one that decodes equal.
func FuzzDecodeTier(f *testing.F) {
	f.Add([]byte(`{"version":1,"snapshotId":"snap-1","lastTieringOperationStatus":"archival-completed","lastTieringStartTime":"2026-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"version":1,"snapshotId":"snap-1","lastTieringOperationStatus":"temporary-restore-completed","lastTieringStartTime":"2026-01-01T00:00:00Z","restoreExpiryTime":"2026-01-02T00:00:00Z","restoreDays":1}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		tr, err := decodeTier(b, "snap-1")
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("err = %v, want ErrCorrupt", err)
			}
			return
		}
		eb, err := encodeTier(tr)
		if err != nil {
			t.Fatal(err)
		}
		again, err := decodeTier(eb, "snap-1")
		if err != nil || !again.StartTime.Equal(tr.StartTime) || again.Status != tr.Status {
			t.Fatalf("re-decode = %+v, %v; want %+v", again, err, tr)
		}
	})
}

// objectsUnder counts the data objects (segments, packs, chunks) of st.
func objectsUnder(t *testing.T, st snapstore.Store) int {
	t.Helper()
	n := 0
	for _, p := range []string{snapfmt.SegmentPrefix, snapfmt.PackPrefix, snapfmt.ChunkPrefix} {
		if err := st.List(ctx, p, func(snapstore.ObjectInfo) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

// waitTier waits until snapshot id's last tiering operation has status want.
func waitTier(t *testing.T, eng *Engine, id string, want TieringStatus) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		all, err := eng.DescribeSnapshotTierStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, ts := range all {
			if ts.Snapshot.ID != id {
				continue
			}
			if ts.LastStatus == want {
				return
			}
			if strings.HasSuffix(string(ts.LastStatus), "-failed") {
				t.Fatalf("%s: %s: %s", id, ts.LastStatus, ts.LastStatusDetail)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %s in 30 s", id, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestArchiveFreesAndRestores: archiving frees the snapshot's data in the
// standard store (the volume it came from is deleted, so nothing else
// holds it) and refuses volumes from it; a temporary restore brings it back
// byte-exact, and a permanent one keeps it while the archive's copy goes.
// An encrypted snapshot's archive copy is sealed as the original is.
func TestArchiveFreesAndRestores(t *testing.T) {
	for _, encrypted := range []bool{false, true} {
		name := "plaintext"
		if encrypted {
			name = "encrypted"
		}
		t.Run(name, func(t *testing.T) { archiveFreesAndRestores(t, encrypted) })
	}
}

func archiveFreesAndRestores(t *testing.T, encrypted bool) {
	stores := newTierStores(t)
	dir, std, arc := stores.dir, stores.std, stores.arc
	opts := stores.options("data")
	opts.TierDay, opts.Keys = time.Hour, testKeyring(t)
	eng, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	data := randomBlocks(7, 2<<20)
	snap := volumeSnapshot(t, eng, CreateVolumeParams{Size: 2 << 20, BlockSize: 64 << 10, Encrypted: encrypted}, data, true)
	if _, err := eng.RestoreSnapshotTier(ctx, snap.ID, 1, false, false); !errors.Is(err, ErrIncorrectState) {
		t.Fatalf("restore of a standard snapshot: %v, want ErrIncorrectState", err)
	}
	if _, err := eng.ModifySnapshotTier(ctx, snap.ID, false); err != nil {
		t.Fatal(err)
	}
	waitTier(t, eng, snap.ID, TieringArchivalCompleted)
	if _, err := eng.ModifySnapshotTier(ctx, snap.ID, false); !errors.Is(err, ErrIncorrectState) {
		t.Fatalf("archive twice: %v, want ErrIncorrectState", err)
	}
	if err := collectOnce(eng); err != nil {
		t.Fatal(err)
	}
	if n := objectsUnder(t, std); n != 0 {
		t.Fatalf("%d data objects left in the standard store after archiving", n)
	}
	if _, err := eng.CreateVolume(ctx, CreateVolumeParams{SnapshotID: snap.ID}); !errors.Is(err, ErrIncorrectState) {
		t.Fatalf("volume from an archived snapshot: %v, want ErrIncorrectState", err)
	}
	if encrypted {
		if files := filesContaining(t, [][]byte{data[:64], data[1<<20 : 1<<20+64]}, filepath.Join(dir, "archive")); len(files) > 0 {
			t.Fatalf("plaintext of an encrypted snapshot in the archive store: %v", files)
		}
	}
	if si, _ := eng.SnapshotInfo(snap.ID); si.StorageTier != TierArchive {
		t.Fatalf("storage tier %q, want archive", si.StorageTier)
	}

	if _, err := eng.RestoreSnapshotTier(ctx, snap.ID, 2, false, false); err != nil {
		t.Fatal(err)
	}
	waitTier(t, eng, snap.ID, TieringTempCompleted)
	if si, _ := eng.SnapshotInfo(snap.ID); si.StorageTier != TierStandard || si.RestoreExpiryTime.IsZero() {
		t.Fatalf("restored: tier %q, expiry %v", si.StorageTier, si.RestoreExpiryTime)
	}
	if err := collectOnce(eng); err != nil {
		t.Fatal(err)
	}
	checkVolumeFrom(t, eng, snap.ID, data)

	if _, err := eng.RestoreSnapshotTier(ctx, snap.ID, 0, true, false); err != nil {
		t.Fatal(err)
	}
	waitTier(t, eng, snap.ID, TieringPermCompleted)
	if err := collectOnce(eng); err != nil {
		t.Fatal(err)
	}
	checkVolumeFrom(t, eng, snap.ID, data)
	// The archive's copy goes at its next collection.
	eng.tiers.collectSoon()
	deadline := time.Now().Add(30 * time.Second)
	for objectsUnder(t, arc) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d data objects left in the archive store after a permanent restore", objectsUnder(t, arc))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tierStores are a standard and an archive snapshot store in a test
// directory, as the daemons of one account share them.
type tierStores struct {
	dir      string
	std, arc *snapstore.Dir
}

func newTierStores(t *testing.T) tierStores {
	t.Helper()
	s := tierStores{dir: t.TempDir()}
	var err error
	if s.std, err = snapstore.OpenDir(filepath.Join(s.dir, "standard")); err != nil {
		t.Fatal(err)
	}
	if s.arc, err = snapstore.OpenDir(filepath.Join(s.dir, "archive")); err != nil {
		t.Fatal(err)
	}
	return s
}

// options are the options of an engine on the stores with its data in
// dir/name: no timed sync, collection without grace, the catalog read
// often.
func (s tierStores) options(name string) Options {
	return Options{DataDir: filepath.Join(s.dir, name), SyncInterval: time.Hour, SnapshotStore: s.std, ArchiveStore: s.arc,
		GCGrace: time.Nanosecond, CatalogInterval: 20 * time.Millisecond}
}

// volumeSnapshot creates a volume of p holding data and a completed
// snapshot of it; deleteVolume deletes the volume after, so that the
// snapshot's data is its own.
func volumeSnapshot(t *testing.T, eng *Engine, p CreateVolumeParams, data []byte, deleteVolume bool) SnapshotInfo {
	t.Helper()
	vi, err := eng.CreateVolume(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	h := openHandle(t, eng, vi.ID)
	h.WriteAt(data, 0)
	h.Close()
	snap, err := eng.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID})
	if err != nil {
		t.Fatal(err)
	}
	waitSnapshot(t, eng, snap.ID)
	if deleteVolume {
		if err := eng.DeleteVolume(ctx, vi.ID); err != nil {
			t.Fatal(err)
		}
	}
	return snap
}

// checkVolumeFrom creates a volume from snapshot id and compares its
// content with want.
func checkVolumeFrom(t *testing.T, eng *Engine, id string, want []byte) {
	t.Helper()
	vi, err := eng.CreateVolume(ctx, CreateVolumeParams{SnapshotID: id})
	if err != nil {
		t.Fatal(err)
	}
	if got := readVolume(t, eng, vi.ID, len(want)); !bytes.Equal(got, want) {
		t.Fatalf("volume from %s differs from the data snapshotted", id)
	}
}

// TestTierSharedByHosts: two daemons of one account on one standard and
// one archive store. A archives; B sees the snapshot archived and refuses
// volumes from it; B restores it for a day and A, whose cached manifest
// named the data archiving freed, makes a byte-exact volume from it.
func TestTierSharedByHosts(t *testing.T) {
	stores := newTierStores(t)
	open := func(name string) *Engine {
		opts := stores.options(name)
		opts.TierDay = time.Hour
		eng, err := Open(opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { eng.Close() })
		return eng
	}
	a, b := open("a"), open("b")
	data := pattern(3, 1<<20)
	snap := volumeSnapshot(t, a, CreateVolumeParams{Size: 1 << 20, BlockSize: 64 << 10}, data, true)
	checkTierRead(t, a, snap.ID, data) // A caches the manifest
	if _, err := a.ModifySnapshotTier(ctx, snap.ID, false); err != nil {
		t.Fatal(err)
	}
	waitTier(t, a, snap.ID, TieringArchivalCompleted)
	waitTier(t, b, snap.ID, TieringArchivalCompleted)
	if _, err := b.CreateVolume(ctx, CreateVolumeParams{SnapshotID: snap.ID}); !errors.Is(err, ErrIncorrectState) {
		t.Fatalf("B: volume from an archived snapshot: %v, want ErrIncorrectState", err)
	}
	if err := collectOnce(b); err != nil {
		t.Fatal(err)
	}
	if _, err := b.RestoreSnapshotTier(ctx, snap.ID, 1, false, false); err != nil {
		t.Fatal(err)
	}
	waitTier(t, b, snap.ID, TieringTempCompleted)
	waitTier(t, a, snap.ID, TieringTempCompleted)
	checkTierRead(t, a, snap.ID, data)
	checkVolumeFrom(t, a, snap.ID, data)
}

// checkTierRead reads snapshot id's content (as its snapshot file is
// read, through the reader's caches) and compares it with want.
func checkTierRead(t *testing.T, eng *Engine, id string, want []byte) {
	t.Helper()
	got := make([]byte, len(want))
	if n, err := eng.ReadSnapshot(ctx, id, got, 0); n != len(want) || (err != nil && !errors.Is(err, io.EOF)) {
		t.Fatalf("read snapshot %s: %d bytes, %v", id, n, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("snapshot %s reads other bytes than snapshotted", id)
	}
}

// TestTierSurvivesRestart: the tier state is the store's, so a daemon
// restarted on the same data dir shows its archived snapshot archived,
// refuses volumes from it, and restores it.
func TestTierSurvivesRestart(t *testing.T) {
	stores := newTierStores(t)
	open := func() *Engine {
		eng, err := Open(stores.options("data"))
		if err != nil {
			t.Fatal(err)
		}
		return eng
	}
	eng := open()
	data := randomBlocks(5, 1<<20)
	snap := volumeSnapshot(t, eng, CreateVolumeParams{Size: 1 << 20, BlockSize: 64 << 10}, data, false)
	if _, err := eng.ModifySnapshotTier(ctx, snap.ID, false); err != nil {
		t.Fatal(err)
	}
	waitTier(t, eng, snap.ID, TieringArchivalCompleted)
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}

	eng = open()
	t.Cleanup(func() { eng.Close() })
	waitTier(t, eng, snap.ID, TieringArchivalCompleted)
	if si, _ := eng.SnapshotInfo(snap.ID); si.StorageTier != TierArchive {
		t.Fatalf("after a restart: storage tier %q, want archive", si.StorageTier)
	}
	if _, err := eng.CreateVolume(ctx, CreateVolumeParams{SnapshotID: snap.ID}); !errors.Is(err, ErrIncorrectState) {
		t.Fatalf("after a restart: volume from an archived snapshot: %v, want ErrIncorrectState", err)
	}
	if _, err := eng.RestoreSnapshotTier(ctx, snap.ID, 0, true, false); err != nil {
		t.Fatal(err)
	}
	waitTier(t, eng, snap.ID, TieringPermCompleted)
	checkVolumeFrom(t, eng, snap.ID, data)
}
