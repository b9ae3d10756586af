package cow

import (
	"bytes"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cowvol/cowvol/cow/snapfmt"
	"github.com/cowvol/cowvol/cow/snapstore"
	"github.com/cowvol/cowvol/cow/snapstore/faulty"
)

// TestFlushUnderStoreFaults runs snapshots against a store that fails in
// the ways real storage does (errors, calls that hang, torn puts, slowness)
// while a writer keeps using the volume. Every snapshot ends completed with
// exactly the content of its call, or (when the faults never stop) in
// state error with a statusMessage and no manifest: never silently partial.
// The volume is unaffected throughout.
func TestFlushUnderStoreFaults(t *testing.T) {
	for _, tc := range []struct {
		name    string
		faults  faulty.Faults
		forever bool // the faults never stop: the snapshot must end in error
	}{
		{"errors", faulty.Faults{Error: 0.15}, false},
		{"hangs", faulty.Faults{Hang: 0.1}, false},
		{"torn puts", faulty.Faults{Torn: 0.1}, false},
		{"slow", faulty.Faults{Latency: 20 * time.Millisecond}, false},
		{"all at once", faulty.Faults{Error: 0.05, Hang: 0.05, Torn: 0.1, Latency: 2 * time.Millisecond}, false},
		{"every put fails", faulty.Faults{Error: 1, PutsOnly: true}, true},
		{"every put hangs", faulty.Faults{Hang: 1, PutsOnly: true}, true},
		{"every put torn", faulty.Faults{Torn: 1}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ds, err := snapstore.OpenDir(filepath.Join(dir, "store"))
			if err != nil {
				t.Fatal(err)
			}
			fs := faulty.New(ds, 1)
			deadline := time.Minute
			if tc.forever {
				deadline = 2 * time.Second
			}
			eng, err := Open(Options{
				DataDir: filepath.Join(dir, "data"), SyncInterval: time.Hour, SnapshotStore: fs,
				FlushDeadline: deadline, FlushRetryBase: 20 * time.Millisecond, StoreCallTimeout: 300 * time.Millisecond,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer eng.Close()
			const size = 4 << 20
			vi, err := eng.CreateVolume(ctx, CreateVolumeParams{Size: size, BlockSize: 4096})
			if err != nil {
				t.Fatal(err)
			}
			h := openHandle(t, eng, vi.ID)
			model := make([]byte, size)
			var modelMu sync.Mutex // the writer's writes and the model change together
			write := func(rng *rand.Rand) {
				off := rng.Int64N(size/4096) * 4096
				n := min(int64(4096*(1+rng.IntN(40))), size-off)
				p := make([]byte, n)
				for i := range p {
					p[i] = byte(rng.Uint32())
				}
				modelMu.Lock()
				defer modelMu.Unlock()
				if _, err := h.WriteAt(p, off); err != nil {
					t.Errorf("write while the store fails: %v", err)
				}
				copy(model[off:], p)
			}
			rng := rand.New(rand.NewPCG(7, 7))
			for range 200 {
				write(rng)
			}

			fs.Set(tc.faults)
			type taken struct {
				id   string
				want []byte
			}
			var snaps []taken
			var stop atomic.Bool
			var wg sync.WaitGroup
			defer wg.Wait()
			defer stop.Store(true)
			wg.Add(1)
			go func() { // the volume stays usable: writes, reads, syncs
				defer wg.Done()
				wrng := rand.New(rand.NewPCG(8, 8))
				got := make([]byte, 64<<10)
				for !stop.Load() {
					write(wrng)
					off := wrng.Int64N(size - int64(len(got)))
					modelMu.Lock()
					if _, err := h.ReadAt(got, off); err != nil {
						t.Errorf("read while the store fails: %v", err)
					} else if !bytes.Equal(got, model[off:off+int64(len(got))]) {
						t.Errorf("volume read at %d differs from what was written", off)
					}
					modelMu.Unlock()
					if err := h.Sync(); err != nil {
						t.Errorf("sync while the store fails: %v", err)
					}
					time.Sleep(time.Millisecond)
				}
			}()
			for range 3 {
				modelMu.Lock()
				si, err := eng.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID})
				want := bytes.Clone(model)
				modelMu.Unlock()
				if err != nil {
					t.Fatal(err)
				}
				snaps = append(snaps, taken{si.ID, want})
				time.Sleep(50 * time.Millisecond)
			}

			// Wait for every snapshot to leave pending.
			states := map[string]SnapshotInfo{}
			limit := time.Now().Add(3*deadline + 30*time.Second)
			for _, s := range snaps {
				for {
					si, err := eng.SnapshotInfo(s.id)
					if err != nil {
						t.Fatal(err)
					}
					if si.State != SnapshotPending {
						states[s.id] = si
						break
					}
					if time.Now().After(limit) {
						t.Fatalf("snapshot %s still pending %d%% long after its flush deadline (the store's faults: %+v)", s.id, si.Progress, tc.faults)
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
			stop.Store(true)
			wg.Wait()
			fs.Set(faulty.Faults{})
			calls, errs, hangs, torn := fs.Counts()
			t.Logf("store: %d calls; injected %d errors, %d hangs, %d torn puts", calls, errs, hangs, torn)

			for _, s := range snaps {
				si := states[s.id]
				switch {
				case tc.forever && si.State != SnapshotError:
					t.Errorf("snapshot %s against a store that never recovers: %s, want error", s.id, si.State)
				case si.State == SnapshotError:
					if !tc.forever {
						t.Errorf("snapshot %s: error (%s) though the faults were transient", s.id, si.StatusMessage)
					}
					if si.StatusMessage == "" {
						t.Errorf("snapshot %s in error without a statusMessage", s.id)
					}
					if ok, _ := ds.Exists(ctx, snapfmt.ManifestKey(s.id)); ok {
						t.Errorf("snapshot %s in error has a manifest", s.id)
					}
				case si.State == SnapshotCompleted:
					checkSnapshotContent(t, eng, ds, dir, s.id, s.want)
				}
			}
		})
	}
}

// checkSnapshotContent fails the test unless snapshot id reads back as
// want, through the engine and through a fresh engine that restores it
// from the store alone.
func checkSnapshotContent(t *testing.T, eng *Engine, ds snapstore.Store, dir, id string, want []byte) {
	t.Helper()
	got := make([]byte, len(want))
	if _, err := eng.ReadSnapshot(ctx, id, got, 0); err != nil {
		t.Errorf("read completed snapshot %s: %v", id, err)
		return
	}
	if !bytes.Equal(got, want) {
		t.Errorf("completed snapshot %s differs from the volume at its call at byte %d", id, firstDiff(got, want))
		return
	}
	other, err := Open(Options{DataDir: filepath.Join(dir, "restore-"+id), SyncInterval: time.Hour, SnapshotStore: ds})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	rv, err := other.CreateVolume(ctx, CreateVolumeParams{SnapshotID: id})
	if err != nil {
		t.Errorf("restore %s from the store: %v", id, err)
		return
	}
	h, err := other.OpenVolume(rv.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	clear(got)
	if _, err := h.ReadAt(got, 0); err != nil {
		t.Errorf("read volume restored from %s: %v", id, err)
		return
	}
	if !bytes.Equal(got, want) {
		t.Errorf("volume restored from %s differs at byte %d", id, firstDiff(got, want))
	}
}
