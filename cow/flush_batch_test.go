package cow

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"testing"

	"github.com/cowvol/cowvol/cow/snapfmt"
	"github.com/cowvol/cowvol/meta"
)

// TestFlushBatches: a segment's changes are cut at gaps in the block
// numbers and at the batch size, and every change is in one batch, in
// order.
func TestFlushBatches(t *testing.T) {
	ch := func(blks ...uint64) []blockChange {
		out := make([]blockChange, len(blks))
		for i, b := range blks {
			out[i] = blockChange{blk: b}
		}
		return out
	}
	run := func(first, n uint64) []uint64 {
		out := make([]uint64, n)
		for i := range out {
			out[i] = first + uint64(i)
		}
		return out
	}
	tests := []struct {
		name      string
		blks      []uint64
		blockSize int
		want      []int // batch lengths
	}{
		{"none", nil, 4 << 10, nil},
		{"one", []uint64{7}, 4 << 10, []int{1}},
		{"gaps", []uint64{1, 2, 3, 5, 6, 9}, 4 << 10, []int{3, 2, 1}},
		{"a run longer than a batch", run(10, 150), 4 << 10, []int{64, 64, 22}},
		{"large blocks go one by one", run(0, 3), 1 << 20, []int{1, 1, 1}},
		{"64 KiB blocks", run(0, 9), 64 << 10, []int{4, 4, 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			batches := flushBatches(ch(tc.blks...), tc.blockSize)
			var lens []int
			var all []uint64
			for _, b := range batches {
				lens = append(lens, len(b))
				for i, c := range b {
					if i > 0 && c.blk != b[i-1].blk+1 {
						t.Fatalf("batch %v is not consecutive", b)
					}
					all = append(all, c.blk)
				}
			}
			if fmt.Sprint(lens) != fmt.Sprint(tc.want) || fmt.Sprint(all) != fmt.Sprint(tc.blks) && len(tc.blks) > 0 {
				t.Fatalf("batches of %v: lengths %v (want %v), blocks %v", tc.blks, lens, tc.want, all)
			}
		})
	}
}

// TestSlotRun: the leading data versions in consecutive slots.
func TestSlotRun(t *testing.T) {
	x := func(slots ...int64) []blockChange {
		out := make([]blockChange, len(slots))
		for i, s := range slots {
			if s < 0 {
				out[i].x = meta.Extent{Flags: meta.ExtentZero}
			} else {
				out[i].x = meta.Extent{Slot: uint64(s) + 1}
			}
		}
		return out
	}
	tests := []struct {
		name  string
		batch []blockChange
		want  int
	}{
		{"empty", nil, 0},
		{"zero first", x(-1, 3, 4), 0},
		{"consecutive", x(3, 4, 5), 3},
		{"a zero version ends it", x(3, 4, -1, 6), 2},
		{"a jump ends it", x(3, 4, 9, 10), 2},
		{"backwards", x(5, 4), 1},
	}
	for _, tc := range tests {
		if got := slotRun(tc.batch); got != tc.want {
			t.Errorf("%s: slotRun = %d, want %d", tc.name, got, tc.want)
		}
	}
}

// TestDedupIndexBounded: the index remembers at most two generations; a
// chunk of the old one is found (and kept), one older than that is stored
// again, and the locations it returns are the ones stored.
func TestDedupIndexBounded(t *testing.T) {
	d := newDedupIndexLimit(4)
	puts := 0
	id := func(i int) snapfmt.ChunkID { return sha256.Sum256([]byte{byte(i)}) }
	store := func(i int) snapfmt.Loc {
		t.Helper()
		loc, seq, err := d.store(id(i), func(c snapfmt.ChunkID) (snapfmt.Loc, int, error) {
			puts++
			return snapfmt.Loc{ID: c, Pack: snapfmt.PackID{byte(i)}, Off: uint32(i), N: 10}, i, nil
		})
		if err != nil || loc.ID != id(i) || loc.Off != uint32(i) || seq != i {
			t.Fatalf("store %d: %v %d %v", i, loc, seq, err)
		}
		return loc
	}
	for i := range 10 {
		store(i)
		if n := d.len(); n > 8 {
			t.Fatalf("after %d chunks the index holds %d, want at most 8", i+1, n)
		}
	}
	if puts != 10 {
		t.Fatalf("%d puts for 10 distinct chunks", puts)
	}
	store(9) // newest generation
	store(5) // old generation: found, moved to the newest
	if puts != 10 {
		t.Fatalf("chunks still remembered were stored again (%d puts)", puts)
	}
	store(0) // forgotten: stored again
	if puts != 11 {
		t.Fatalf("a forgotten chunk: %d puts, want 11", puts)
	}
}

// TestSmallBlockSnapshotsRestoreExactly: 4 KiB-block volumes (plaintext
// and encrypted, whose slots are read block by block) with runs longer
// than a flush batch, gaps, written zeros and repeated blocks; a first
// snapshot and, after overwrites in the middle of runs, an incremental
// one; volumes restored from each read back byte for byte, and repeated
// blocks are stored once.
func TestSmallBlockSnapshotsRestoreExactly(t *testing.T) {
	for _, encrypted := range []bool{false, true} {
		t.Run(fmt.Sprintf("encrypted=%v", encrypted), func(t *testing.T) {
			env := newKeyedEnv(t)
			eng := env.eng
			const bs, size = 4 << 10, 8 << 20
			vi, err := eng.CreateVolume(ctx, CreateVolumeParams{Size: size, BlockSize: bs, Encrypted: encrypted})
			if err != nil {
				t.Fatal(err)
			}
			h := openHandle(t, eng, vi.ID)
			want := make([]byte, size)
			write := func(off int, p []byte) {
				t.Helper()
				if _, err := h.WriteAt(p, int64(off)); err != nil {
					t.Fatal(err)
				}
				copy(want[off:], p)
			}
			write(0, randomBlocks(1, 300*bs))     // a run of 300 blocks
			write(310*bs, randomBlocks(2, 70*bs)) // a gap, then 70
			write(100*bs, make([]byte, 5*bs))     // zeros in the middle of the run
			for i := 400; i < 450; i++ {          // 50 copies of one block
				write(i*bs, pattern(9, bs))
			}
			write(1000*bs+100, randomBlocks(3, 3*bs)) // unaligned, across blocks
			s1 := snapshotAndCheck(t, eng, vi.ID, want)

			// Overwrites inside runs already stored: one block, a part of
			// one, and a range across a batch boundary.
			write(5*bs, randomBlocks(4, bs))
			write(70*bs+17, []byte("partial overwrite"))
			write(60*bs, randomBlocks(5, 10*bs))
			write(420*bs, pattern(9, bs)) // the same content again
			s2 := snapshotAndCheck(t, eng, vi.ID, want)
			if s1 == s2 {
				t.Fatal("two snapshots share an ID")
			}
		})
	}
}

// snapshotAndCheck snapshots volume volID and checks that a volume
// restored from it reads want exactly; it returns the snapshot's ID.
func snapshotAndCheck(t *testing.T, eng *Engine, volID string, want []byte) string {
	t.Helper()
	s, err := eng.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: volID})
	if err != nil {
		t.Fatal(err)
	}
	waitSnapshot(t, eng, s.ID)
	rv, err := eng.CreateVolume(ctx, CreateVolumeParams{SnapshotID: s.ID})
	if err != nil {
		t.Fatal(err)
	}
	rh := openHandle(t, eng, rv.ID)
	got, err := io.ReadAll(io.NewSectionReader(rh, 0, int64(len(want))))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("restored volume of %s differs first at byte %d (block %d)", s.ID, i, i/4096)
			}
		}
	}
	return s.ID
}

// TestSmallBlockFlushStoresEachContentOnce: at 4 KiB blocks, repeated
// blocks within a batch, across batches and across segments are stored
// once; zero blocks not at all.
func TestSmallBlockFlushStoresEachContentOnce(t *testing.T) {
	eng, cs := openCountingEngine(t, t.TempDir())
	const bs = 4 << 10
	seg := int64(1) << snapfmt.SegmentShift * bs
	vi, err := eng.CreateVolume(ctx, CreateVolumeParams{Size: 2 * seg, BlockSize: bs})
	if err != nil {
		t.Fatal(err)
	}
	h := openHandle(t, eng, vi.ID)
	for _, off := range []int64{0, 300 * bs, seg} {
		if _, err := h.WriteAt(randomBlocks(7, 200*bs), off); err != nil { // the same 200 blocks, three times
			t.Fatal(err)
		}
	}
	for i := int64(0); i < 100; i++ { // one block, 100 times
		if _, err := h.WriteAt(pattern(3, bs), 600*bs+i*bs); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.WriteAt(make([]byte, 50*bs), 800*bs); err != nil {
		t.Fatal(err)
	}
	s, err := eng.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID})
	if err != nil {
		t.Fatal(err)
	}
	waitSnapshot(t, eng, s.ID)
	if puts := cs.take(); puts["chunks in packs"] != 201 {
		t.Fatalf("the snapshot stored %v, want 201 chunks (the distinct non-zero blocks)", puts)
	}
}
