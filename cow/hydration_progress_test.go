package cow

import (
	"testing"

	"github.com/cowvol/cowvol/cow/snapfmt"
)

// TestRedirectsCounted: a block's first write in a generation is a
// redirect (to a fresh slot), later writes in that generation are in place,
// and the first write after a snapshot is a redirect again.
func TestRedirectsCounted(t *testing.T) {
	eng := openTestEngine(t, t.TempDir())
	vi, err := eng.CreateVolume(ctx, CreateVolumeParams{Size: 1 << 20, BlockSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	h, _ := eng.OpenVolume(vi.ID)
	redirects := func() uint64 {
		t.Helper()
		info, err := eng.VolumeInfo(vi.ID)
		if err != nil {
			t.Fatal(err)
		}
		return info.Redirects
	}
	for range 2 {
		if _, err := h.WriteAt(pattern(1, 4*64<<10), 0); err != nil {
			t.Fatal(err)
		}
	}
	if n := redirects(); n != 4 {
		t.Errorf("4 blocks written twice: %d redirects, want 4", n)
	}
	s, err := eng.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID})
	if err != nil {
		t.Fatal(err)
	}
	waitSnapshot(t, eng, s.ID)
	if _, err := h.WriteAt(pattern(2, 2*64<<10), 64<<10); err != nil {
		t.Fatal(err)
	}
	if n := redirects(); n != 6 {
		t.Errorf("2 blocks written after a snapshot: %d redirects, want 6", n)
	}
}

func TestHydrationProgress(t *testing.T) {
	segs := []snapfmt.SegmentRef{{Index: 0}, {Index: 1}, {Index: 2}, {Index: 5}}
	for _, tc := range []struct {
		name  string
		only  map[uint64]bool
		total int64
	}{
		{"a full pass", nil, 4},
		{"a pass over faulted segments", map[uint64]bool{1: true, 5: true, 9: true}, 2},
	} {
		var p hydrationProgress
		p.done.Store(3) // from an earlier pass
		p.start(segs, tc.only)
		if done, total := p.get(); done != 0 || total != tc.total {
			t.Errorf("%s: %d of %d, want 0 of %d", tc.name, done, total, tc.total)
		}
	}
}
