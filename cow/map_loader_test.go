package cow

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cowvol/cowvol/meta"
)

// loadGate holds volumes' background map loads once they have installed
// page at (or any later page), until opened or the engine stops: the
// injection point that places I/O, snapshots and kills inside a load.
type loadGate struct {
	at       uint64
	held     chan struct{} // closed once a loader is held
	release  chan struct{}
	heldOnce sync.Once
	relOnce  sync.Once
}

func newLoadGate(at uint64) *loadGate {
	return &loadGate{at: at, held: make(chan struct{}), release: make(chan struct{})}
}

func (g *loadGate) hook(ctx context.Context, volID string, page uint64) {
	if page < g.at {
		return
	}
	g.heldOnce.Do(func() { close(g.held) })
	select {
	case <-g.release:
	case <-ctx.Done():
	}
}

func (g *loadGate) open() { g.relOnce.Do(func() { close(g.release) }) }

// holding reports whether a loader is held at the gate now (false for a
// nil gate).
func (g *loadGate) holding() bool {
	if g == nil {
		return false
	}
	select {
	case <-g.release:
		return false
	default:
	}
	select {
	case <-g.held:
		return true
	default:
		return false
	}
}

// openGated opens an engine on dir whose map loads gate holds.
func openGated(t *testing.T, dir, journal string, gate *loadGate) *Engine {
	t.Helper()
	opts := Options{DataDir: dir, SyncInterval: time.Hour, GCGrace: time.Nanosecond, JournalDir: journal, bootID: "boot-A"}
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

// TestIOWhileTheMapLoads holds a volume's map load at a page and, while
// it is held, reads the whole volume, writes, discards and snapshots in
// pages loaded and not, then lets the load finish; then the volume is
// restarted cleanly or killed (the map journal holding the unsynced
// writes). Every read, the snapshot taken during the load and the volume
// after the restart must equal the model.
func TestIOWhileTheMapLoads(t *testing.T) {
	for _, kill := range []bool{false, true} {
		name := map[bool]string{false: "close", true: "kill"}[kill]
		t.Run(name, func(t *testing.T) { runIOWhileLoading(t, kill) })
	}
}

func runIOWhileLoading(t *testing.T, kill bool) {
	const bs, size = 4 << 10, 16 << 20 // 4096 blocks: 8 pages
	dir, journal := t.TempDir(), t.TempDir()
	eng := openGated(t, dir, journal, nil)
	vi, err := eng.CreateVolume(ctx, CreateVolumeParams{Size: size, BlockSize: bs})
	if err != nil {
		t.Fatal(err)
	}
	ref := randomBlocks(1, size)
	writeAll(t, eng, vi.ID, ref, 0)
	snapshotAndWait(t, eng, vi.ID) // versions of an older generation
	half := randomBlocks(2, size/2)
	writeAll(t, eng, vi.ID, half, size/4)
	copy(ref[size/4:], half)
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}

	gate := newLoadGate(3)
	eng = openGated(t, dir, journal, gate)
	select {
	case <-gate.held:
	case <-time.After(time.Minute):
		t.Fatal("the load never reached page 3: was the map loaded before Open returned?")
	}
	h := openHandle(t, eng, vi.ID)
	checkVolume(t, h, ref, "while the load is held")
	page := func(p, i int) int64 { return int64(p*pageLen+i) * bs }
	for _, w := range []struct{ p, i, n int }{{1, 7, 3}, {3, 500, 20}, {6, 0, 1}, {7, 100, 2}} {
		p := randomBlocks(uint64(w.p+10), w.n*bs-100)
		if _, err := h.WriteAt(p, page(w.p, w.i)+50); err != nil {
			t.Fatal(err)
		}
		copy(ref[page(w.p, w.i)+50:], p)
	}
	if err := h.Punch(page(5, 3), 9*bs); err != nil {
		t.Fatal(err)
	}
	clear(ref[page(5, 3) : page(5, 3)+9*bs])
	si, err := eng.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID})
	if err != nil {
		t.Fatal(err)
	}
	atFork := bytes.Clone(ref)
	// A page no one has loaded yet, after the fork: its versions are
	// older than the snapshot's generation, so the write redirects.
	p := randomBlocks(30, bs)
	if _, err := h.WriteAt(p, page(4, 200)); err != nil {
		t.Fatal(err)
	}
	copy(ref[page(4, 200):], p)
	checkSnapshotRead(t, eng, si.ID, atFork)
	// DescribeVolumes answers at once: a file system's getattr must not
	// wait for the load; AllocatedBytes is then the data file's usage.
	vols, err := eng.DescribeVolumes(ctx)
	if err != nil || len(vols) != 1 || vols[0].AllocatedBytes < int64(len(ref))/4 {
		t.Fatalf("DescribeVolumes during the load: %+v, %v; want the volume with the data file's usage", vols, err)
	}
	checkVolume(t, h, ref, "after I/O during the load")
	if kill {
		// Killed during the load, with an unsynced write in the journal.
		if _, err := h.WriteAt(p, page(2, 9)); err != nil {
			t.Fatal(err)
		}
		copy(ref[page(2, 9):], p)
		h.Close()
		killEngine(eng)
	} else {
		gate.open()
		waitSnapshot(t, eng, si.ID)
		checkSnapshotRead(t, eng, si.ID, atFork)
		checkVolume(t, h, ref, "after the load")
		h.Close()
		if err := eng.Close(); err != nil {
			t.Fatal(err)
		}
	}
	eng = openGated(t, dir, journal, nil)
	checkVolume(t, openHandle(t, eng, vi.ID), ref, "after the restart")
	waitSnapshot(t, eng, si.ID)
	checkSnapshotRead(t, eng, si.ID, atFork)
	if err := waitVolumesLoaded(eng); err != nil {
		t.Fatal(err)
	}
	info, err := eng.VolumeInfo(vi.ID)
	if want := int64(countNonZeroBlocks(ref, bs) * bs); err != nil || info.AllocatedBytes != want {
		t.Fatalf("allocated %d bytes (%v), want %d", info.AllocatedBytes, err, want)
	}
}

func checkVolume(t *testing.T, h *Volume, want []byte, when string) {
	t.Helper()
	got := make([]byte, len(want))
	if _, err := h.ReadAt(got, 0); err != nil {
		t.Fatalf("%s: read: %v", when, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: the volume differs from the model at byte %d", when, firstDiff(got, want))
	}
}

func checkSnapshotRead(t *testing.T, eng *Engine, id string, want []byte) {
	t.Helper()
	got := make([]byte, len(want))
	if _, err := eng.ReadSnapshot(ctx, id, got, 0); err != nil {
		t.Fatalf("read snapshot %s: %v", id, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("snapshot %s differs from its call's content at byte %d", id, firstDiff(got, want))
	}
}

// TestLoadStopsAtDamage: a record the metadata checks cannot catch (a
// live-map entry naming a slot past the data file's end, though the
// volume's slots end says none does) is found by the background load once
// the engine serves: the volume then serves no I/O, the start after
// refuses it (ErrMetadataDamaged, as a start before the engine served
// would have), and a start accepting the loss opens it.
func TestLoadStopsAtDamage(t *testing.T) {
	dir := t.TempDir()
	eng := openGated(t, dir, "", nil)
	vi, err := eng.CreateVolume(ctx, CreateVolumeParams{Size: 4 << 20, BlockSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, eng, vi.ID, randomBlocks(1, 64<<10), 0)
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}
	ms, err := meta.Open(meta.Options{Dir: filepath.Join(dir, "meta")})
	if err != nil {
		t.Fatal(err)
	}
	var b meta.Batch
	b.PutLive(vi.ID, 700, meta.Extent{Slot: 1 << 20, Gen: 1})
	if err := errors.Join(ms.Apply(&b), ms.Sync(), ms.Close()); err != nil {
		t.Fatal(err)
	}

	eng = openGated(t, dir, "", nil)
	if err := waitVolumesLoaded(eng); !errors.Is(err, ErrMetadataDamaged) {
		t.Fatalf("load: %v, want ErrMetadataDamaged", err)
	}
	h := openHandle(t, eng, vi.ID)
	if _, err := h.ReadAt(make([]byte, 4096), 0); !errors.Is(err, ErrMetadataDamaged) {
		t.Fatalf("read of a damaged volume: %v, want ErrMetadataDamaged", err)
	}
	if info, err := eng.VolumeInfo(vi.ID); err != nil || info.State != VolumeError {
		t.Fatalf("state %s (%v), want error", info.State, err)
	}
	h.Close()
	eng.Close()
	if _, err := openErr(dir, false); !errors.Is(err, ErrMetadataDamaged) {
		t.Fatalf("the start after: %v, want ErrMetadataDamaged", err)
	}
	e2, err := openErr(dir, true)
	if err != nil {
		t.Fatalf("start accepting the loss: %v", err)
	}
	got := readAll(t, e2, vi.ID, 64<<10)
	if !bytes.Equal(got, randomBlocks(1, 64<<10)) {
		t.Fatal("the blocks the damage did not touch changed")
	}
	e2.Close()
	if _, err := os.Stat(e2.damagePath(vi.ID)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the damage record outlived the accepted start: %v", err)
	}
	e3, err := openErr(dir, false)
	if err != nil {
		t.Fatalf("the start after the accepted one: %v", err)
	}
	e3.Close()
}
