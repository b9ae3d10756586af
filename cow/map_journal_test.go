package cow

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"
)

// killEngine stops eng as kill -9 would: nothing more is synced, and what
// it wrote to its files (data files, Badger, the map journals, all in the
// page cache or tmpfs) stays as it is.
func killEngine(eng *Engine) {
	eng.StopBackground()
	eng.volumes.mu.Lock()
	eng.volumes.closed = true
	eng.volumes.mu.Unlock()
	for _, v := range eng.allVolumes() {
		v.file.Close()
		v.mapMu.Lock()
		if v.journal != nil {
			v.journal.close()
			v.journal = nil
		}
		v.mapMu.Unlock()
	}
	eng.meta.Close()
	eng.lock.Close()
}

func openJournaled(t *testing.T, dir, journal, boot string, keys KeyManager) *Engine {
	t.Helper()
	return openJournaledGated(t, dir, journal, boot, keys, nil)
}

// openJournaledGated is openJournaled with the map loads held by gate
// (nil: none).
func openJournaledGated(t *testing.T, dir, journal, boot string, keys KeyManager, gate *loadGate) *Engine {
	t.Helper()
	opts := Options{DataDir: dir, SyncInterval: time.Hour, GCGrace: time.Nanosecond, Keys: keys,
		JournalDir: journal, bootID: boot}
	if gate != nil {
		opts.afterLoadPage = gate.hook
	}
	eng, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if gate != nil {
			gate.open()
		}
		eng.Close()
	})
	return eng
}

// TestKillKeepsAcknowledgedWrites: random writes, discards, syncs and
// snapshots, and kills at random moments: with the map journal, the
// engine that takes over serves exactly what the killed one acknowledged,
// fsynced or not.
func TestKillKeepsAcknowledgedWrites(t *testing.T) {
	forEachModelCase(t, func(t *testing.T, seed uint64, bs int, encrypted bool) {
		runKillModel(t, seed, bs, encrypted, *modelSteps, false)
	})
}

// TestKillDuringMapLoad is TestKillKeepsAcknowledgedWrites with every
// start's map load held at a random page (an injection point, no
// sleeps) and let go at a random later step, or never before the next
// kill: reads, writes, discards, syncs, snapshots and kills land while
// pages of the map, and its change sets, are not loaded yet.
func TestKillDuringMapLoad(t *testing.T) {
	forEachModelCase(t, func(t *testing.T, seed uint64, bs int, encrypted bool) {
		runKillModel(t, seed, bs, encrypted, *modelSteps, true)
	})
}

func runKillModel(t *testing.T, seed uint64, blockSize int, encrypted bool, steps int, gated bool) {
	rng := rand.New(rand.NewPCG(seed, 0x6b696c6c))
	dir, journal := t.TempDir(), t.TempDir()
	var keys KeyManager
	if encrypted {
		keys = testKeyring(t)
	}
	size := int64(4 << 20)
	var gate *loadGate
	open := func() *Engine { return openJournaled(t, dir, journal, "boot-A", keys) }
	if gated {
		// Pages enough for a load to be held in the middle of.
		size = min(int64(blockSize)*pageLen*4, 64<<20)
		pages := int(size / int64(blockSize) / pageLen)
		open = func() *Engine {
			gate = newLoadGate(uint64(rng.IntN(pages)))
			return openJournaledGated(t, dir, journal, "boot-A", keys, gate)
		}
	}
	eng := open()
	vi, err := eng.CreateVolume(ctx, CreateVolumeParams{Size: size, BlockSize: blockSize, Encrypted: encrypted})
	if err != nil {
		t.Fatal(err)
	}
	h, err := eng.OpenVolume(vi.ID)
	if err != nil {
		t.Fatal(err)
	}
	ref := &reference{data: make([]byte, size)}
	kills, heldKills := 0, 0
	for step := range steps {
		switch op := rng.IntN(100); {
		case op < 50:
			off := rng.Int64N(size)
			n := min(int64(1+rng.IntN(3*blockSize)), size-off)
			p := make([]byte, n)
			for i := range p {
				p[i] = byte(rng.IntN(255) + 1)
			}
			if _, err := h.WriteAt(p, off); err != nil {
				t.Fatalf("step %d: write: %v", step, err)
			}
			ref.write(p, off)
		case op < 62:
			off := rng.Int64N(size)
			n := min(int64(1+rng.IntN(4*blockSize)), size-off)
			if err := h.Punch(off, n); err != nil {
				t.Fatalf("step %d: punch: %v", step, err)
			}
			ref.punch(off, n)
		case op < 70:
			if err := h.Sync(); err != nil {
				t.Fatalf("step %d: sync: %v", step, err)
			}
		case op < 74:
			_, err := eng.CreateSnapshot(context.Background(), CreateSnapshotParams{VolumeID: vi.ID})
			if err != nil && !errors.Is(err, ErrConcurrentSnapshotLimit) {
				t.Fatalf("step %d: snapshot: %v", step, err)
			}
		case op < 80:
			if gate.holding() {
				heldKills++
			}
			killEngine(eng)
			kills++
			eng = open()
			if h, err = eng.OpenVolume(vi.ID); err != nil {
				t.Fatalf("step %d: reopen: %v", step, err)
			}
			if gated && rng.IntN(2) == 0 {
				// Not read at once: syncs and snapshots may make the
				// replayed entries durable before their pages load.
				continue
			}
			got := make([]byte, size)
			if _, err := h.ReadAt(got, 0); err != nil {
				t.Fatalf("step %d: read after the kill: %v", step, err)
			}
			if !bytes.Equal(got, ref.data) {
				t.Fatalf("step %d (kill %d): the volume differs from what was acknowledged at byte %d", step, kills, firstDiff(got, ref.data))
			}
		case op < 84 && gate != nil:
			gate.open()
		default:
			off := rng.Int64N(size)
			n := min(int64(1+rng.IntN(4*blockSize)), size-off)
			got := make([]byte, n)
			if _, err := h.ReadAt(got, off); err != nil {
				t.Fatalf("step %d: read: %v", step, err)
			}
			if !bytes.Equal(got, ref.data[off:off+n]) {
				t.Fatalf("step %d: read differs from the model at byte %d", step, firstDiff(got, ref.data[off:off+n]))
			}
		}
	}
	got := make([]byte, size)
	if _, err := h.ReadAt(got, 0); err != nil || !bytes.Equal(got, ref.data) {
		t.Fatalf("at the end: %v, the volume differs from the model at byte %d", err, firstDiff(got, ref.data))
	}
	h.Close()
	if kills == 0 {
		t.Fatal("no kill in the run: the test proved nothing")
	}
	if gated && heldKills == 0 {
		t.Fatal("no kill landed while a map load was held: the test proved nothing")
	}
	if gated {
		t.Logf("%d kills, %d of them while a map load was held", kills, heldKills)
	}
}

// TestJournalNeedsItsBoot: unsynced writes are in the journal, and come
// back after a kill; a reboot (another boot ID) discards the journal: the
// durable map is the truth, as after a power cut. Without a journal the
// unsynced writes are lost to a kill too.
func TestJournalNeedsItsBoot(t *testing.T) {
	tests := []struct {
		name        string
		journal     bool
		boot        string
		wantWritten bool
	}{
		{"journal, same boot", true, "boot-A", true},
		{"journal, after a reboot", true, "boot-B", false},
		{"no journal", false, "boot-A", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, journal := t.TempDir(), ""
			if tt.journal {
				journal = t.TempDir()
			}
			eng := openJournaled(t, dir, journal, "boot-A", nil)
			vi, err := eng.CreateVolume(ctx, CreateVolumeParams{Size: 1 << 20, BlockSize: 4096})
			if err != nil {
				t.Fatal(err)
			}
			h, _ := eng.OpenVolume(vi.ID)
			want := bytes.Repeat([]byte("acknowledged"), 1000)
			if _, err := h.WriteAt(want, 8192); err != nil {
				t.Fatal(err)
			}
			killEngine(eng)
			eng = openJournaled(t, dir, journal, tt.boot, nil)
			h, _ = eng.OpenVolume(vi.ID)
			got := make([]byte, len(want))
			if _, err := h.ReadAt(got, 8192); err != nil {
				t.Fatal(err)
			}
			if written := bytes.Equal(got, want); written != tt.wantWritten {
				t.Fatalf("after the kill the write is there: %v, want %v", written, tt.wantWritten)
			}
			h.Close()
		})
	}
}
