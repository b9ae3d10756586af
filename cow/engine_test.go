package cow

import (
	"bytes"
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var ctx = context.Background()

func TestCreateVolumeValidation(t *testing.T) {
	eng := openTestEngine(t, t.TempDir())
	tests := []struct {
		name string
		p    CreateVolumeParams
		want error
	}{
		{"zero size", CreateVolumeParams{Size: 0}, ErrInvalidSize},
		{"negative size", CreateVolumeParams{Size: -1 << 30}, ErrInvalidSize},
		{"over 64 TiB", CreateVolumeParams{Size: MaxVolumeSize + 1<<30}, ErrInvalidSize},
		{"not a block multiple", CreateVolumeParams{Size: 1<<20 + 4096}, ErrInvalidSize},
		{"block not power of two", CreateVolumeParams{Size: 1 << 30, BlockSize: 3000}, ErrInvalidBlockSize},
		{"block too small", CreateVolumeParams{Size: 1 << 30, BlockSize: 2048}, ErrInvalidBlockSize},
		{"block too large", CreateVolumeParams{Size: 1 << 30, BlockSize: 2 << 20}, ErrInvalidBlockSize},
		{"empty tag key", CreateVolumeParams{Size: 1 << 30, Tags: []Tag{{Key: ""}}}, ErrInvalidParameter},
		{"duplicate tag", CreateVolumeParams{Size: 1 << 30, Tags: []Tag{{Key: "a"}, {Key: "a"}}}, ErrInvalidParameter},
		{"64 TiB ok", CreateVolumeParams{Size: MaxVolumeSize}, nil},
		{"4 KiB blocks ok", CreateVolumeParams{Size: 1 << 20, BlockSize: 4096}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := eng.DescribeVolumes(ctx)
			_, err := eng.CreateVolume(ctx, tt.p)
			if !errors.Is(err, tt.want) {
				t.Fatalf("CreateVolume(%+v) = %v, want %v", tt.p, err, tt.want)
			}
			after, _ := eng.DescribeVolumes(ctx)
			if tt.want != nil && len(after) != len(before) {
				t.Fatalf("a refused CreateVolume changed the volume count from %d to %d", len(before), len(after))
			}
		})
	}
}

func TestUnwrittenBlocksReadZerosAndTakeNoSpace(t *testing.T) {
	dir := t.TempDir()
	eng := openTestEngine(t, dir)
	vi, err := eng.CreateVolume(ctx, CreateVolumeParams{Size: 1 << 40}) // 1 TiB
	if err != nil {
		t.Fatal(err)
	}
	h := openHandle(t, eng, vi.ID)
	buf := bytes.Repeat([]byte{0xff}, 1<<20)
	if _, err := h.ReadAt(buf, 512<<30); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf, make([]byte, 1<<20)) {
		t.Fatal("unwritten blocks did not read as zeros")
	}
	// 8 MiB written at the far end of a 1 TiB volume costs 8 MiB.
	data := bytes.Repeat([]byte("cowvol"), (8<<20)/6+1)[:8<<20]
	if _, err := h.WriteAt(data, 1<<40-8<<20); err != nil {
		t.Fatal(err)
	}
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := diskBytes(t, eng.dataPath(vi.ID)); got > 9<<20 {
		t.Fatalf("data file holds %d bytes for 8 MiB written", got)
	}
	// Discarding it gives the space back.
	if err := h.Punch(1<<40-8<<20, 8<<20); err != nil {
		t.Fatal(err)
	}
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := diskBytes(t, eng.dataPath(vi.ID)); got > 64<<10 {
		t.Fatalf("data file holds %d bytes after discarding everything", got)
	}
	info, _ := eng.VolumeInfo(vi.ID)
	if info.AllocatedBytes != 0 {
		t.Fatalf("AllocatedBytes = %d after discarding everything", info.AllocatedBytes)
	}
}

func TestIOOutOfRange(t *testing.T) {
	eng := openTestEngine(t, t.TempDir())
	vi, _ := eng.CreateVolume(ctx, CreateVolumeParams{Size: 1 << 20})
	h := openHandle(t, eng, vi.ID)
	if _, err := h.WriteAt([]byte("x"), 1<<20); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("write at the end: %v, want ErrOutOfRange", err)
	}
	if _, err := h.WriteAt(make([]byte, 2), 1<<20-1); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("write across the end: %v, want ErrOutOfRange", err)
	}
	if err := h.Punch(-1, 10); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("punch at -1: %v, want ErrOutOfRange", err)
	}
	n, err := h.ReadAt(make([]byte, 10), 1<<20-4)
	if n != 4 || err == nil {
		t.Fatalf("read across the end = %d, %v; want 4, io.EOF", n, err)
	}
}

func TestDeleteVolume(t *testing.T) {
	dir := t.TempDir()
	eng := openTestEngine(t, dir)
	vi, _ := eng.CreateVolume(ctx, CreateVolumeParams{Size: 1 << 30})
	h := openHandle(t, eng, vi.ID)
	if _, err := h.WriteAt([]byte("data"), 0); err != nil {
		t.Fatal(err)
	}
	if info, _ := eng.VolumeInfo(vi.ID); info.State != VolumeInUse {
		t.Fatalf("state with an open handle = %s, want in-use", info.State)
	}
	if err := eng.DeleteVolume(ctx, vi.ID); !errors.Is(err, ErrVolumeInUse) {
		t.Fatalf("delete while open: %v, want ErrVolumeInUse", err)
	}
	h.Close()
	if err := eng.DeleteVolume(ctx, vi.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := eng.VolumeInfo(vi.ID); !errors.Is(err, ErrVolumeNotFound) {
		t.Fatalf("after delete: %v, want ErrVolumeNotFound", err)
	}
	if err := eng.DeleteVolume(ctx, vi.ID); !errors.Is(err, ErrVolumeNotFound) {
		t.Fatalf("second delete: %v, want ErrVolumeNotFound", err)
	}
	if _, err := os.Stat(eng.dataPath(vi.ID)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("data file after delete: %v", err)
	}
	// And nothing of it comes back after a restart.
	eng.Close()
	eng = openTestEngine(t, dir)
	if vols, _ := eng.DescribeVolumes(ctx); len(vols) != 0 {
		t.Fatalf("volumes after restart: %v", vols)
	}
}

func TestClientTokenIdempotency(t *testing.T) {
	dir := t.TempDir()
	eng := openTestEngine(t, dir)
	p := CreateVolumeParams{Size: 1 << 30, ClientToken: "tok-1", Tags: []Tag{{"a", "b"}}}
	first, err := eng.CreateVolume(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	retry := func(when string) {
		t.Helper()
		if again, err := eng.CreateVolume(ctx, p); err != nil || again.ID != first.ID {
			t.Fatalf("same token again%s = %v, %v; want %s", when, again.ID, err, first.ID)
		}
		other := p
		other.Size = 2 << 30
		if _, err := eng.CreateVolume(ctx, other); !errors.Is(err, ErrIdempotentMismatch) {
			t.Fatalf("token reused with another size%s: %v, want ErrIdempotentMismatch", when, err)
		}
		if vols, _ := eng.DescribeVolumes(ctx); len(vols) != 1 {
			t.Fatalf("%d volumes%s, want 1", len(vols), when)
		}
	}
	retry("")
	// The token outlives the daemon: a client retrying across a restart
	// gets the volume it made, not a second one.
	eng.Close()
	eng = openTestEngine(t, dir)
	retry(" after a restart")
}

func TestDataDirLock(t *testing.T) {
	dir := t.TempDir()
	openTestEngine(t, dir)
	if _, err := Open(Options{DataDir: dir}); !errors.Is(err, ErrDataDirLocked) {
		t.Fatalf("second Open of one data dir: %v, want ErrDataDirLocked", err)
	}
}

// TestConcurrentWritersSeeTheirData runs writers on disjoint and shared
// blocks at once (run it with -race): each writer's last write survives.
func TestConcurrentWritersSeeTheirData(t *testing.T) {
	eng := openTestEngine(t, t.TempDir())
	vi, _ := eng.CreateVolume(ctx, CreateVolumeParams{Size: 16 << 20, BlockSize: 64 << 10})
	h := openHandle(t, eng, vi.ID)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Writer w owns bytes [w*4096, w*4096+4096) of every 64 KiB block.
			p := bytes.Repeat([]byte{byte(w + 1)}, 4096)
			for i := range 64 {
				if _, err := h.WriteAt(p, int64(i)<<16+int64(w)*4096); err != nil {
					t.Error(err)
					return
				}
				if i%16 == 0 {
					if err := h.Sync(); err != nil {
						t.Error(err)
					}
				}
			}
		}()
	}
	wg.Wait()
	buf := make([]byte, 64<<10)
	for i := range 64 {
		if _, err := h.ReadAt(buf, int64(i)<<16); err != nil {
			t.Fatal(err)
		}
		for w := range 8 {
			if buf[w*4096] != byte(w+1) || buf[w*4096+4095] != byte(w+1) {
				t.Fatalf("block %d: writer %d's data lost", i, w)
			}
		}
	}
}

func TestGroupSyncSharesRounds(t *testing.T) {
	var mu sync.Mutex
	runs := 0
	release := make(chan struct{})
	g := newGroupSync(func() error {
		mu.Lock()
		runs++
		first := runs == 1
		mu.Unlock()
		if first {
			<-release // hold the first round while others queue
		}
		return nil
	})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); g.sync() }()
	for { // wait until the first round runs
		mu.Lock()
		r := runs
		mu.Unlock()
		if r == 1 {
			break
		}
	}
	for range 10 {
		wg.Add(1)
		go func() { defer wg.Done(); g.sync() }()
	}
	// Let the ten queue behind the running round, then release it.
	for {
		g.mu.Lock()
		queued := g.next != nil
		g.mu.Unlock()
		if queued {
			break
		}
	}
	close(release)
	wg.Wait()
	if runs < 2 || runs > 11 {
		t.Fatalf("%d rounds for 11 callers", runs)
	}
}

// TestSlotAllocatorLoad: while a map loads, new slots come from the data
// file's end up (and slots freed meanwhile, named by records the load
// reads, are reused); the end of the load frees the unused slots it found,
// lowest first.
func TestSlotAllocatorLoad(t *testing.T) {
	var a slotAllocator
	a.startLoad(10)
	if got := []uint64{a.alloc(), a.alloc(), a.alloc()}; got[0] != 10 || got[2] != 12 {
		t.Fatalf("allocations while loading %v, want from the floor up [10 11 12]", got)
	}
	a.reuse([]uint64{3, 11})
	if got := a.alloc(); got != 3 {
		t.Fatalf("allocation %d, want the freed 3", got)
	}
	a.endLoad([][2]uint64{{0, 1}, {5, 7}})
	var got []uint64
	for range 5 {
		got = append(got, a.alloc())
	}
	if want := []uint64{0, 5, 6, 11, 13}; !slices.Equal(got, want) {
		t.Fatalf("allocations after the load %v, want %v", got, want)
	}
}

func TestSlotSet(t *testing.T) {
	var s slotSet
	for _, x := range []uint64{5, 1, 2, 9, 2, 130} {
		s.add(x)
	}
	if s.end() != 131 || !s.has(130) || s.has(64) {
		t.Fatalf("end %d, has(130) %v, has(64) %v", s.end(), s.has(130), s.has(64))
	}
	want := [][2]uint64{{0, 1}, {3, 5}, {6, 9}, {10, 12}}
	if got := s.holes(12); !slices.Equal(got, want) {
		t.Fatalf("holes %v, want %v", got, want)
	}
}

func openHandle(t testing.TB, eng *Engine, id string) *Volume {
	t.Helper()
	h, err := eng.OpenVolume(id)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// diskBytes is the space a file occupies on disk.
func diskBytes(t *testing.T, path string) int64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

// TestMissingDataFile: at start, a volume record whose data file is gone
// is recreated when it never held data, and refused with a clear message
// when it did: never served as zeros.
func TestMissingDataFile(t *testing.T) {
	dir := t.TempDir()
	eng, err := Open(Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	empty, _ := eng.CreateVolume(ctx, CreateVolumeParams{Size: 1 << 20})
	full, _ := eng.CreateVolume(ctx, CreateVolumeParams{Size: 1 << 20})
	h, _ := eng.OpenVolume(full.ID)
	h.WriteAt([]byte("data"), 0)
	h.Close()
	eng.Close()

	os.Remove(eng.dataPath(empty.ID))
	eng, err = Open(Options{DataDir: dir})
	if err != nil {
		t.Fatalf("start with an empty volume's data file missing: %v", err)
	}
	if _, err := eng.VolumeInfo(empty.ID); err != nil {
		t.Fatalf("the empty volume is gone: %v", err)
	}
	eng.Close()

	os.Remove(eng.dataPath(full.ID))
	if _, err := Open(Options{DataDir: dir}); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("start with a written volume's data file missing: %v, want a refusal naming it", err)
	}
}

// TestSyncSyncsMetadataOnlyWhenItChanged: a sync round whose writes all
// went in place changes no metadata and costs only the data file's
// fdatasync; one with new mappings, or with slots freed by records written
// outside it, syncs Badger too.
func TestSyncSyncsMetadataOnlyWhenItChanged(t *testing.T) {
	eng := openTestEngine(t, t.TempDir())
	vi, err := eng.CreateVolume(ctx, CreateVolumeParams{Size: 1 << 20, BlockSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	h := openHandle(t, eng, vi.ID)
	page := bytes.Repeat([]byte{7}, 4096)
	steps := []struct {
		name      string
		do        func(t *testing.T)
		metaSyncs uint64
	}{
		{"first write to a block: a new mapping", func(t *testing.T) { h.WriteAt(page, 0) }, 1},
		{"the same block again, in place", func(t *testing.T) { h.WriteAt(page, 0) }, 0},
		{"part of it, in place", func(t *testing.T) { h.WriteAt(page[:512], 1024) }, 0},
		{"nothing written", func(t *testing.T) {}, 0},
		{"after a snapshot: redirected", func(t *testing.T) {
			snapshotAndWait(t, eng, vi.ID)
			h.WriteAt(page, 0)
		}, 1},
		{"slots released by a completed snapshot: punched, nothing to sync", func(t *testing.T) {
			// The flush retires the version the write above superseded;
			// this round punches it (its records are already durable).
			snapshotAndWait(t, eng, vi.ID)
			v, _ := eng.lookup(vi.ID)
			v.mapMu.Lock()
			retired := len(v.slots.retired)
			v.mapMu.Unlock()
			if retired == 0 {
				t.Fatal("the snapshot released no slot")
			}
		}, 0},
		{"the punched slots, before their reuse", func(t *testing.T) {
			// The records that dropped them were written outside any
			// round; this one makes them durable, then the slots
			// may be reused.
			v, _ := eng.lookup(vi.ID)
			v.mapMu.Lock()
			pending := len(v.slots.pending)
			v.mapMu.Unlock()
			if pending == 0 {
				t.Fatal("no slot waits for reuse")
			}
		}, 1},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			st.do(t)
			before := eng.meta.Syncs()
			if err := h.Sync(); err != nil {
				t.Fatal(err)
			}
			if got := eng.meta.Syncs() - before; got != st.metaSyncs {
				t.Fatalf("sync round: %d metadata syncs, want %d", got, st.metaSyncs)
			}
		})
	}
	// Everything read back after a restart.
	got := make([]byte, 4096)
	if _, err := h.ReadAt(got, 0); err != nil || !bytes.Equal(got, page) {
		t.Fatalf("read back %v: %x...", err, got[:8])
	}
}

// snapshotAndWait takes a snapshot of volume id, waits for it to complete,
// and syncs the metadata the flush wrote.
func snapshotAndWait(t *testing.T, eng *Engine, id string) {
	t.Helper()
	si, err := eng.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: id})
	if err != nil {
		t.Fatal(err)
	}
	waitSnapshot(t, eng, si.ID)
	// Completed shows before the flush has made it the base and released
	// frozen blocks: wait for that too.
	for {
		eng.snapshots.mu.Lock()
		busy := eng.snapshots.inFlight != nil
		eng.snapshots.mu.Unlock()
		if !busy {
			return
		}
		time.Sleep(time.Millisecond)
	}
}
