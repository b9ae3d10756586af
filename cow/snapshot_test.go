package cow

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cowvol/cowvol/cow/snapfmt"
	"github.com/cowvol/cowvol/cow/snapstore"
)

// countingStore wraps a real store and counts the objects put per prefix,
// and under "chunks in packs" the chunks the packs hold (their index).
type countingStore struct {
	snapstore.Store
	mu   sync.Mutex
	puts map[string]int
}

func (c *countingStore) Put(ctx context.Context, key string, data []byte) error {
	c.mu.Lock()
	prefix := strings.SplitN(key, "/", 2)[0]
	c.puts[prefix]++
	if prefix == "packs" {
		c.puts["chunks in packs"] += packChunks(data)
	}
	c.mu.Unlock()
	return c.Store.Put(ctx, key, data)
}

// packChunks reads the chunk count from a pack's trailer (-1000 if it has none).
func packChunks(b []byte) int {
	if len(b) < 12 || !bytes.HasSuffix(b, snapfmt.PackMagic) {
		return -1000
	}
	return int(binary.BigEndian.Uint32(b[len(b)-12:]))
}

func (c *countingStore) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.puts
	c.puts = map[string]int{}
	return p
}

func openCountingEngine(t *testing.T, dir string) (*Engine, *countingStore) {
	t.Helper()
	ds, err := snapstore.OpenDir(filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	cs := &countingStore{Store: ds, puts: map[string]int{}}
	eng, err := Open(Options{DataDir: dir, SyncInterval: time.Hour, SnapshotStore: cs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	return eng, cs
}

func pattern(seed byte, n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = seed + byte(i%251) + 1
	}
	return p
}

// TestIncrementalSnapshotUploadsOnlyChanges: the second snapshot stores
// only the chunks that changed, identical blocks are stored once, zero
// blocks not at all.
func TestIncrementalSnapshotUploadsOnlyChanges(t *testing.T) {
	eng, cs := openCountingEngine(t, t.TempDir())
	vi, _ := eng.CreateVolume(ctx, CreateVolumeParams{Size: 64 << 20, BlockSize: 64 << 10})
	h := openHandle(t, eng, vi.ID)
	for i := range 100 { // 100 distinct blocks
		h.WriteAt(pattern(byte(i), 64<<10), int64(i)<<16)
	}
	for i := 100; i < 150; i++ { // 50 copies of one block: one chunk
		h.WriteAt(pattern(7, 64<<10), int64(i)<<16)
	}
	h.WriteAt(make([]byte, 64<<10), 200<<16) // written zeros: no chunk
	s1, err := eng.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID})
	if err != nil {
		t.Fatal(err)
	}
	waitSnapshot(t, eng, s1.ID)
	if puts := cs.take(); puts["chunks in packs"] != 100 || puts["packs"] != 1 || puts["chunks"] != 0 {
		t.Fatalf("first snapshot stored %v, want 100 chunks (distinct non-zero blocks) in 1 pack", puts)
	}
	h.WriteAt(pattern(200, 64<<10), 5<<16)
	h.WriteAt(pattern(201, 64<<10), 300<<16)
	s2, _ := eng.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID})
	waitSnapshot(t, eng, s2.ID)
	puts := cs.take()
	want := map[string]int{"chunks in packs": 2, "packs": 1, "segments": 1, "snapshots": 1, "holds": 1, "leases": 1}
	if fmt.Sprint(puts) != fmt.Sprint(want) {
		t.Fatalf("incremental snapshot stored %v, want %v", puts, want)
	}
	si, _ := eng.SnapshotInfo(s2.ID)
	if want := int64(151 * 64 << 10); si.DataBytes != want {
		t.Fatalf("DataBytes = %d, want %d", si.DataBytes, want)
	}
}

// TestSnapshotPointInTimeUnderLoad: with writers running, each snapshot
// holds, per writer, a version acknowledged before its call or the one in
// flight at its return, never a torn block.
func TestSnapshotPointInTimeUnderLoad(t *testing.T) {
	eng := openTestEngine(t, t.TempDir())
	const writers, bs = 4, 4096
	vi, _ := eng.CreateVolume(ctx, CreateVolumeParams{Size: 1 << 20, BlockSize: bs})
	h := openHandle(t, eng, vi.ID)
	// Writer w writes versions 1, 2, 3... of its own block, each a full
	// block filled with the version number.
	var acked [writers]atomic.Uint32
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, bs)
			for ver := uint32(1); ; ver++ {
				select {
				case <-stop:
					return
				default:
				}
				for i := 0; i < bs; i += 4 {
					buf[i], buf[i+1], buf[i+2], buf[i+3] = byte(ver), byte(ver>>8), byte(ver>>16), byte(ver>>24)
				}
				if _, err := h.WriteAt(buf, int64(w*bs)); err != nil {
					t.Error(err)
					return
				}
				acked[w].Store(ver)
			}
		}()
	}
	type window struct{ lo, hi [writers]uint32 }
	snaps := map[string]window{}
	for range 20 {
		time.Sleep(2 * time.Millisecond)
		var win window
		for w := range writers {
			win.lo[w] = acked[w].Load() // acknowledged before the call
		}
		si, err := eng.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID})
		if errors.Is(err, ErrConcurrentSnapshotLimit) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for w := range writers {
			win.hi[w] = acked[w].Load() + 1 // at most the one in flight at return
		}
		snaps[si.ID] = win
	}
	close(stop)
	wg.Wait()
	for id, win := range snaps {
		waitSnapshot(t, eng, id)
		buf := make([]byte, writers*bs)
		if _, err := eng.ReadSnapshot(ctx, id, buf, 0); err != nil {
			t.Fatal(err)
		}
		for w := range writers {
			b := buf[w*bs:]
			ver := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
			if ver < win.lo[w] || ver > win.hi[w] {
				t.Errorf("snapshot %s: writer %d at version %d, want %d..%d", id, w, ver, win.lo[w], win.hi[w])
			}
			if !bytes.Equal(b[:bs], bytes.Repeat(b[:4], bs/4)) {
				t.Errorf("snapshot %s: writer %d's block is torn", id, w)
			}
		}
	}
}

// TestFrozenSpaceReleased: writing the whole volume, snapshotting and
// waiting, ten times over, leaves the data dir holding about one volume's
// worth of blocks, not ten.
func TestFrozenSpaceReleased(t *testing.T) {
	eng := openTestEngine(t, t.TempDir())
	const size = 8 << 20
	vi, _ := eng.CreateVolume(ctx, CreateVolumeParams{Size: size, BlockSize: 64 << 10})
	h := openHandle(t, eng, vi.ID)
	for round := range 10 {
		if _, err := h.WriteAt(pattern(byte(round), size), 0); err != nil {
			t.Fatal(err)
		}
		si, err := eng.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID})
		if err != nil {
			t.Fatal(err)
		}
		waitSnapshot(t, eng, si.ID)
		if err := h.Sync(); err != nil { // makes the released slots reusable
			t.Fatal(err)
		}
	}
	if got := diskBytes(t, eng.dataPath(vi.ID)); got > 2*size {
		t.Fatalf("data file holds %d bytes after 10 rounds of a %d-byte volume", got, size)
	}
}

// TestPendingSnapshotResumesAfterRestart: a snapshot whose flush did not
// run before the engine stopped completes after the restart, with the
// content of its call.
func TestPendingSnapshotResumesAfterRestart(t *testing.T) {
	dir := t.TempDir()
	eng := openTestEngine(t, dir)
	vi, _ := eng.CreateVolume(ctx, CreateVolumeParams{Size: 4 << 20, BlockSize: 4096})
	h, _ := eng.OpenVolume(vi.ID)
	want := pattern(3, 4<<20)
	h.WriteAt(want, 0)
	eng.gc.Lock() // hold the flusher off
	si, err := eng.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID, Description: "resume me"})
	if err != nil {
		t.Fatal(err)
	}
	h.WriteAt(pattern(9, 4<<20), 0) // after the call: not in the snapshot
	h.Close()
	eng.gc.Unlock()
	eng.Close()

	eng = openTestEngine(t, dir)
	waitSnapshot(t, eng, si.ID)
	got := make([]byte, len(want))
	if _, err := eng.ReadSnapshot(ctx, si.ID, got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("resumed snapshot differs at byte %d", firstDiff(got, want))
	}
	if info, _ := eng.SnapshotInfo(si.ID); info.Description != "resume me" || info.Progress != 100 {
		t.Fatalf("resumed snapshot info %+v", info)
	}
}

func TestSnapshotLimitsAndErrors(t *testing.T) {
	eng := openTestEngine(t, t.TempDir())
	vi, _ := eng.CreateVolume(ctx, CreateVolumeParams{Size: 1 << 20})
	eng.gc.Lock() // keep snapshots pending
	for i := range MaxPendingSnapshots {
		if _, err := eng.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID}); err != nil {
			t.Fatalf("snapshot %d: %v", i, err)
		}
	}
	tests := []struct {
		name string
		p    CreateSnapshotParams
		want error
	}{
		{"sixth pending", CreateSnapshotParams{VolumeID: vi.ID}, ErrConcurrentSnapshotLimit},
		{"unknown volume", CreateSnapshotParams{VolumeID: "vol-00000000000000000"}, ErrVolumeNotFound},
		{"long description", CreateSnapshotParams{VolumeID: vi.ID, Description: strings.Repeat("x", 256)}, ErrInvalidParameter},
		{"other outpost", CreateSnapshotParams{VolumeID: vi.ID, OutpostArn: "arn:aws:outposts:us-east-1:123456789012:outpost/op-0123456789abcdef0"}, ErrOutpostMismatch},
	}
	for _, tt := range tests {
		if _, err := eng.CreateSnapshot(ctx, tt.p); !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
	if err := eng.DeleteVolume(ctx, vi.ID); !errors.Is(err, ErrIncorrectState) {
		t.Errorf("delete volume with pending snapshots: %v, want ErrIncorrectState", err)
	}
	snaps, _ := eng.DescribeSnapshots(ctx)
	if _, err := eng.CreateVolume(ctx, CreateVolumeParams{SnapshotID: snaps[0].ID}); !errors.Is(err, ErrIncorrectState) {
		t.Errorf("volume from a pending snapshot: %v, want ErrIncorrectState", err)
	}
	eng.gc.Unlock()
	for _, s := range snaps {
		waitSnapshot(t, eng, s.ID)
	}
	if _, err := eng.CreateVolume(ctx, CreateVolumeParams{SnapshotID: snaps[0].ID, Size: 512 << 10}); !errors.Is(err, ErrInvalidSize) {
		t.Errorf("volume smaller than its snapshot: %v, want ErrInvalidSize", err)
	}
	if _, err := eng.CreateVolume(ctx, CreateVolumeParams{SnapshotID: "snap-00000000000000000"}); !errors.Is(err, ErrSnapshotNotFound) {
		t.Errorf("volume from a missing snapshot: %v, want ErrSnapshotNotFound", err)
	}
}

// TestDeleteSnapshotKeepsWhatOthersNeed: deleting a snapshot removes its
// own chunks but none that another snapshot or a hydrating volume needs.
func TestDeleteSnapshotKeepsWhatOthersNeed(t *testing.T) {
	dir := t.TempDir()
	eng := openTestEngine(t, dir)
	vi, _ := eng.CreateVolume(ctx, CreateVolumeParams{Size: 2 << 20, BlockSize: 64 << 10})
	h, _ := eng.OpenVolume(vi.ID)
	v1 := pattern(1, 2<<20)
	h.WriteAt(v1, 0)
	s1, _ := eng.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID})
	waitSnapshot(t, eng, s1.ID)
	v2 := bytes.Clone(v1)
	copy(v2[64<<10:], pattern(2, 64<<10))
	h.WriteAt(v2, 0)
	s2, _ := eng.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID})
	waitSnapshot(t, eng, s2.ID)
	// A volume restored from s1, then s1 deleted while it may hydrate.
	rv, err := eng.CreateVolume(ctx, CreateVolumeParams{SnapshotID: s1.ID})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.DeleteSnapshot(ctx, s1.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := eng.SnapshotInfo(s1.ID); !errors.Is(err, ErrSnapshotNotFound) {
		t.Fatalf("deleted snapshot still described: %v", err)
	}
	for _, c := range []struct {
		read func([]byte) error
		want []byte
		name string
	}{
		{func(p []byte) error { _, err := eng.ReadSnapshot(ctx, s2.ID, p, 0); return err }, v2, "s2"},
		{func(p []byte) error {
			rh, _ := eng.OpenVolume(rv.ID)
			defer rh.Close()
			_, err := rh.ReadAt(p, 0)
			return err
		}, v1, "restored volume"},
	} {
		got := make([]byte, len(c.want))
		if err := c.read(got); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !bytes.Equal(got, c.want) {
			t.Fatalf("%s differs at byte %d after deleting s1", c.name, firstDiff(got, c.want))
		}
	}
	if err := eng.DeleteSnapshot(ctx, s2.ID); err != nil {
		t.Fatal(err)
	}
	// The collection runs in the background: one round, here, now.
	if err := collectOnce(eng); err != nil {
		t.Fatal(err)
	}
	// What is left is held: the restored volume holds s1 (32 blocks, one
	// pack) and the source volume holds s2, the base of its next snapshot
	// (one more block, in the second pack).
	var left []string
	eng.stores[StoreRegional].List(ctx, "", func(o snapstore.ObjectInfo) error { left = append(left, o.Key); return nil })
	if n := countPrefix(left, "packs/"); n != 2 {
		t.Fatalf("%d packs left, want 2: %v", n, left)
	}
	if n := countPrefix(left, "snapshots/"); n != 0 {
		t.Fatalf("%d manifests left, want 0: %v", n, left)
	}
	// Deleting both volumes releases the rest.
	h.Close()
	for _, id := range []string{vi.ID, rv.ID} {
		if err := eng.DeleteVolume(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	waitStoreEmpty(t, eng.stores[StoreRegional]) // collected in the background
}

func countPrefix(keys []string, prefix string) int {
	n := 0
	for _, k := range keys {
		if strings.HasPrefix(k, prefix) {
			n++
		}
	}
	return n
}

// TestDeleteSnapshotTwiceAtOnce: two DeleteSnapshot calls that both found
// the snapshot before either deleted it: one deletes it, the other gets
// ErrSnapshotNotFound (as EC2 answers the second), never both nil.
func TestDeleteSnapshotTwiceAtOnce(t *testing.T) {
	eng := openTestEngine(t, t.TempDir())
	vi, err := eng.CreateVolume(ctx, CreateVolumeParams{Size: 1 << 20, BlockSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	h, _ := eng.OpenVolume(vi.ID)
	h.WriteAt(pattern(1, 1<<20), 0)
	s, err := eng.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID})
	if err != nil {
		t.Fatal(err)
	}
	waitSnapshot(t, eng, s.ID)

	var found sync.WaitGroup
	found.Add(2)
	eng.hooks.deleteWaitsForGC = found.Done
	eng.gc.Lock() // both deleters find the snapshot, then wait here
	errs := make(chan error, 2)
	for range 2 {
		go func() { errs <- eng.DeleteSnapshot(ctx, s.ID) }()
	}
	found.Wait()
	eng.gc.Unlock()
	var deleted, notFound int
	for range 2 {
		switch err := <-errs; {
		case err == nil:
			deleted++
		case errors.Is(err, ErrSnapshotNotFound):
			notFound++
		default:
			t.Errorf("DeleteSnapshot: %v", err)
		}
	}
	if deleted != 1 || notFound != 1 {
		t.Errorf("two deletes at once: %d deleted, %d not found; want one of each", deleted, notFound)
	}
}
