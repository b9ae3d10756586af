package cow

import (
	"bytes"
	"errors"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/cowvol/cowvol/cow/snapstore"
)

// fastRestoreState is snapshot id's state as DescribeFastSnapshotRestores
// reports it ("" without a record).
func fastRestoreState(t *testing.T, eng *Engine, id string) FastRestoreState {
	t.Helper()
	all, err := eng.DescribeFastSnapshotRestores(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, fi := range all {
		if fi.SnapshotID == id {
			return fi.State
		}
	}
	return ""
}

// TestFastRestoreStateMachine walks a snapshot through enabling,
// optimizing (held there at the injection point), enabled, disabling and
// disabled, with a disable during an optimization; a volume created while
// enabled is creating until hydrated and reads the snapshot's bytes, one
// created after the disable is available at once. Bad requests change
// nothing.
func TestFastRestoreStateMachine(t *testing.T) {
	const size = 8 << 20
	env := newFaultEnv(t, size)
	eng, snap := env.eng, env.snap
	hold, release := make(chan struct{}), make(chan struct{})
	eng.fast.step = func(_ string, st FastRestoreState) {
		if st == FastRestoreOptimizing {
			select { // held until released; once release is closed, not at all
			case hold <- struct{}{}:
				<-release
			case <-release:
			}
		}
	}
	for _, tc := range []struct {
		name string
		call func() error
		want error
	}{
		{"enable an unknown snapshot", func() error {
			_, err := eng.EnableFastSnapshotRestore(ctx, "snap-0123456789abcdef0", "111111111111")
			return err
		}, ErrSnapshotNotFound},
		{"disable a snapshot never enabled", func() error { _, err := eng.DisableFastSnapshotRestore(ctx, snap); return err }, ErrIncorrectState},
	} {
		if err := tc.call(); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if st := fastRestoreState(t, eng, snap); st != "" {
		t.Fatalf("after refused calls the snapshot has state %q", st)
	}

	fi, err := eng.EnableFastSnapshotRestore(ctx, snap, "111111111111")
	if err != nil || fi.State != FastRestoreEnabling || fi.EnablingTime.IsZero() || fi.OwnerID != "111111111111" {
		t.Fatalf("enable: %+v, %v", fi, err)
	}
	<-hold
	if st := fastRestoreState(t, eng, snap); st != FastRestoreOptimizing {
		t.Fatalf("held in optimizing, described as %q", st)
	}
	if again, err := eng.EnableFastSnapshotRestore(ctx, snap, "111111111111"); err != nil || again.State != FastRestoreOptimizing {
		t.Fatalf("enable while optimizing: %+v, %v (want the state as it is)", again, err)
	}
	release <- struct{}{}
	waitUntil(t, "enabled", func() bool { return fastRestoreState(t, eng, snap) == FastRestoreEnabled })

	vi, err := eng.CreateVolume(ctx, CreateVolumeParams{SnapshotID: snap})
	if err != nil {
		t.Fatal(err)
	}
	if !isFastRestore(t, eng, vi.ID) {
		t.Fatal("a volume created from an enabled snapshot is no fast restore")
	}
	waitUntil(t, "the fast restore volume available", func() bool {
		got, err := eng.VolumeInfo(vi.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != VolumeCreating && got.State != VolumeAvailable || got.State == VolumeAvailable && got.Hydrating {
			t.Fatalf("fast restore volume: state %s, hydrating %v", got.State, got.Hydrating)
		}
		return got.State == VolumeAvailable
	})
	h := openHandle(t, eng, vi.ID)
	got := make([]byte, size)
	if _, err := h.ReadAt(got, 0); err != nil || !bytes.Equal(got, env.data) {
		t.Fatalf("the fast restore volume reads other bytes than the snapshot's (%v)", err)
	}
	h.Close()

	if fi, err := eng.DisableFastSnapshotRestore(ctx, snap); err != nil || fi.State != FastRestoreDisabling {
		t.Fatalf("disable: %+v, %v", fi, err)
	}
	waitUntil(t, "disabled", func() bool { return fastRestoreState(t, eng, snap) == FastRestoreDisabled })
	slow, err := eng.CreateVolume(ctx, CreateVolumeParams{SnapshotID: snap})
	if err != nil || slow.State != VolumeAvailable || isFastRestore(t, eng, slow.ID) {
		t.Fatalf("a volume created after the disable: %+v, %v", slow, err)
	}

	// Enable again, and disable while it optimizes: it never gets enabled.
	if fi, err := eng.EnableFastSnapshotRestore(ctx, snap, "111111111111"); err != nil || fi.State != FastRestoreEnabling || !fi.DisabledTime.IsZero() {
		t.Fatalf("enable after disabled: %+v, %v", fi, err)
	}
	<-hold
	if fi, err := eng.DisableFastSnapshotRestore(ctx, snap); err != nil || fi.State != FastRestoreDisabling {
		t.Fatalf("disable while optimizing: %+v, %v", fi, err)
	}
	close(release)
	waitUntil(t, "disabled after a disable during optimizing", func() bool { return fastRestoreState(t, eng, snap) == FastRestoreDisabled })
	fi, err = eng.EnableFastSnapshotRestore(ctx, snap, "111111111111")
	if err != nil {
		t.Fatal(err)
	}
	// Deleted, the snapshot's record goes (after its optimization ends).
	waitUntil(t, "enabled again", func() bool { return fastRestoreState(t, eng, snap) == FastRestoreEnabled })
	if err := eng.DeleteSnapshot(ctx, snap); err != nil {
		t.Fatal(err)
	}
	if st := fastRestoreState(t, eng, snap); st != "" {
		t.Fatalf("a deleted snapshot is still described, %s", st)
	}
}

// isFastRestore reports whether volume id's record says fast restore.
func isFastRestore(t *testing.T, eng *Engine, id string) bool {
	t.Helper()
	v, err := eng.lookup(id)
	if err != nil {
		t.Fatal(err)
	}
	v.mapMu.RLock()
	defer v.mapMu.RUnlock()
	return v.record.FastRestore
}

// TestFastRestoreSurvivesRestart: an enabled snapshot is still enabled
// after the engine is closed and opened again, with its times, and a
// volume created from it then is a fast restore.
func TestFastRestoreSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	st, err := snapstore.OpenDir(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	open := func() *Engine {
		eng, err := Open(Options{DataDir: dir, SyncInterval: time.Hour, SnapshotStore: st, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		return eng
	}
	eng := open()
	vi, err := eng.CreateVolume(ctx, CreateVolumeParams{Size: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	h := openHandle(t, eng, vi.ID)
	if _, err := h.WriteAt(bytes.Repeat([]byte{7}, 1<<20), 0); err != nil {
		t.Fatal(err)
	}
	h.Close()
	s, err := eng.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID})
	if err != nil {
		t.Fatal(err)
	}
	waitSnapshot(t, eng, s.ID)
	if _, err := eng.EnableFastSnapshotRestore(ctx, s.ID, "111111111111"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "enabled", func() bool { return fastRestoreState(t, eng, s.ID) == FastRestoreEnabled })
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}
	eng = open()
	t.Cleanup(func() { eng.Close() })
	all, err := eng.DescribeFastSnapshotRestores(ctx)
	if err != nil || len(all) != 1 || all[0].State != FastRestoreEnabled || all[0].EnabledTime.IsZero() || all[0].OptimizingTime.IsZero() {
		t.Fatalf("after a restart: %+v, %v", all, err)
	}
	rv, err := eng.CreateVolume(ctx, CreateVolumeParams{SnapshotID: s.ID})
	if err != nil {
		t.Fatal(err)
	}
	if !isFastRestore(t, eng, rv.ID) {
		t.Fatal("a volume created after the restart is no fast restore")
	}
}
