package cow

import (
	"bytes"
	"slices"
	"testing"
)

// TestPartCuts: the parts of a split request cover it exactly, in order,
// each cut on a block boundary, none empty.
func TestPartCuts(t *testing.T) {
	v := &volume{blockSize: 64 << 10}
	for _, tc := range []struct {
		off, n int64
		parts  int
		want   []int64
	}{
		{0, 1 << 20, 2, []int64{0, 512 << 10, 1 << 20}},
		{0, 1 << 20, 4, []int64{0, 256 << 10, 512 << 10, 768 << 10, 1 << 20}},
		{4096, 1 << 20, 2, []int64{0, 576<<10 - 4096, 1 << 20}}, // the cut rounds up to a boundary
		{0, 96 << 10, 2, []int64{0, 64 << 10, 96 << 10}},
		{60 << 10, 8 << 10, 2, []int64{0, 4 << 10, 8 << 10}},
		{0, 64 << 10, 2, []int64{0, 64 << 10}}, // one block: one part
		{0, 3 * 64 << 10, 4, []int64{0, 64 << 10, 128 << 10, 192 << 10}},
	} {
		if got := v.partCuts(tc.off, tc.n, tc.parts); !slices.Equal(got, tc.want) {
			t.Errorf("partCuts(%d, %d, %d) = %v, want %v", tc.off, tc.n, tc.parts, got, tc.want)
		}
	}
}

// TestSealedSplitRequests: large requests on an encrypted volume, split
// into parts that run at once, aligned or not, read back what was written,
// whether read whole or a sector at a time, also after a restart.
func TestSealedSplitRequests(t *testing.T) {
	const size = 8 << 20
	env := newKeyedEnv(t)
	vi, err := env.eng.CreateVolume(ctx, CreateVolumeParams{Size: size, Encrypted: true})
	if err != nil {
		t.Fatal(err)
	}
	model := make([]byte, size)
	h := openHandle(t, env.eng, vi.ID)
	for i, w := range []struct{ off, n int64 }{
		{0, 1 << 20},
		{3 << 20, 2 << 20},
		{(1 << 20) - 1000, (1 << 20) + 3000}, // partial sectors and blocks at both ends
		{5<<20 + 4096, 1<<20 - 8192},
		{0, 1 << 20}, // again: in place, or redirected after the sync
	} {
		p := randomBlocks(uint64(i+1), int(w.n))
		if _, err := h.WriteAt(p, w.off); err != nil {
			t.Fatalf("write %d at %d: %v", w.n, w.off, err)
		}
		copy(model[w.off:], p)
		if i == 2 {
			if err := h.Sync(); err != nil {
				t.Fatal(err)
			}
		}
	}
	check := func(h *Volume) {
		t.Helper()
		got := make([]byte, size)
		if _, err := h.ReadAt(got, 0); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, model) {
			t.Fatal("a whole read differs from what was written")
		}
		for off := int64(0); off < size; off += 4096 {
			if _, err := h.ReadAt(got[:4096], off); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got[:4096], model[off:off+4096]) {
				t.Fatalf("the sector at %d differs from what was written", off)
			}
		}
		odd := got[:(1<<20)+5000]
		if _, err := h.ReadAt(odd, (1<<20)-2500); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(odd, model[(1<<20)-2500:][:len(odd)]) {
			t.Fatal("an unaligned read differs from what was written")
		}
	}
	check(h)
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
	h.Close()
	env.restart(t)
	h = openHandle(t, env.eng, vi.ID)
	defer h.Close()
	check(h)
}
