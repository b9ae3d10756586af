package meta

import (
	"slices"
	"testing"
)

// ChangedBlocksInRange visits the same blocks as ChangesInRange, in the same
// order, for ranges inside, across and outside the changes.
func TestChangedBlocksInRangeMatchesChangesInRange(t *testing.T) {
	s, err := Open(Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	const vol, other = "vol-0123456789abcdef0", "vol-0123456789abcdef1"
	var b Batch
	for _, c := range []struct{ gen, blk uint64 }{{1, 0}, {1, 5}, {1, 70000}, {2, 5}, {2, 6}, {3, 65535}, {3, 65536}, {4, 9}} {
		b.PutChange(vol, c.blk, Extent{Slot: c.blk + 1, Gen: c.gen})
		b.PutChange(other, c.blk+1, Extent{Slot: 1, Gen: c.gen}) // another volume's: never visited
	}
	if err := s.Apply(&b); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name        string
		after, upto uint64
		first, end  uint64
		want        []uint64
	}{
		{"all", 0, 4, 0, 1 << 20, []uint64{0, 5, 70000, 5, 6, 65535, 65536, 9}},
		{"first segment", 0, 4, 0, 65536, []uint64{0, 5, 5, 6, 65535, 9}},
		{"generations 2 and 3", 1, 3, 0, 1 << 20, []uint64{5, 6, 65535, 65536}},
		{"empty range", 0, 4, 10, 65535, nil},
		{"no generations", 4, 4, 0, 1 << 20, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var keys, full []uint64
			if err := s.ChangedBlocksInRange(vol, tc.after, tc.upto, tc.first, tc.end, func(blk uint64) error {
				keys = append(keys, blk)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if err := s.ChangesInRange(vol, tc.after, tc.upto, tc.first, tc.end, func(_, blk uint64, _ Extent) error {
				full = append(full, blk)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(keys, tc.want) || !slices.Equal(full, tc.want) {
				t.Errorf("ChangedBlocksInRange %v, ChangesInRange %v, want %v", keys, full, tc.want)
			}
		})
	}
}
