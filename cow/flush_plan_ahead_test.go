package cow

import (
	"errors"
	"reflect"
	"slices"
	"testing"

	"github.com/cowvol/cowvol/cow/snapfmt"
	"github.com/cowvol/cowvol/meta"
)

// memChanges is a changeSource of change records (generation, block) held
// in memory, in (generation, block) order as the metadata store keeps them.
type memChanges struct {
	recs []meta.Extent // Slot is the block, Gen the generation
	fail error         // returned by ChangesInRange when set
}

func (m *memChanges) each(after, upto, first, end uint64, fn func(gen, blk uint64, x meta.Extent) error) error {
	for _, r := range m.recs {
		if r.Gen > after && r.Gen <= upto && r.Slot >= first && r.Slot < end {
			if err := fn(r.Gen, r.Slot, meta.Extent{Slot: r.Slot + 100, Gen: r.Gen}); err != nil {
				return err
			}
		}
	}
	return nil
}

func (m *memChanges) ChangesInRange(_ string, after, upto, first, end uint64, fn func(gen, blk uint64, e meta.Extent) error) error {
	if m.fail != nil {
		return m.fail
	}
	return m.each(after, upto, first, end, fn)
}

func (m *memChanges) ChangedBlocksInRange(_ string, after, upto, first, end uint64, fn func(blk uint64) error) error {
	return m.each(after, upto, first, end, func(_, blk uint64, _ meta.Extent) error { return fn(blk) })
}

func (m *memChanges) NextChange(_ string, after, upto, from uint64) (uint64, bool, error) {
	blk, ok := uint64(0), false
	for _, r := range m.recs {
		if r.Gen > after && r.Gen <= upto && r.Slot >= from && (!ok || r.Slot < blk) {
			blk, ok = r.Slot, true
		}
	}
	return blk, ok, nil
}

type planned struct {
	Idx     uint64
	Changes []blockChange
}

func drain(t *testing.T, p segmentPlanner) ([]planned, error) {
	t.Helper()
	var out []planned
	for range 100 {
		sp, ok, err := p.nextSegment()
		if err != nil || !ok {
			return out, err
		}
		out = append(out, planned{sp.idx, sp.changes})
	}
	t.Fatal("the plan does not end")
	return nil, nil
}

// A plan run ahead gives the same segments, in the same order, as the
// plan itself, and keeps returning its end (or its error) once reached.
func TestPlanAheadGivesThePlansSegments(t *testing.T) {
	const seg = uint64(1) << snapfmt.SegmentShift
	src := &memChanges{}
	for _, r := range [][2]uint64{{1, 3}, {1, seg + 1}, {1, 5*seg + 7}, {2, 3}, {2, seg - 1}, {3, 9 * seg}} {
		src.recs = append(src.recs, meta.Extent{Gen: r[0], Slot: r[1]})
	}
	for _, tc := range []struct {
		name        string
		after, upto uint64
		extra       []uint64
	}{
		{"every generation", 0, 3, nil},
		{"the last two", 1, 3, nil},
		{"extra segments", 0, 2, []uint64{2, 5, 12}},
		{"nothing changed", 3, 3, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want, err := drain(t, newFlushPlan(src, "vol", tc.after, tc.upto, slices.Clone(tc.extra)))
			if err != nil {
				t.Fatal(err)
			}
			a := startPlanAhead(newFlushPlan(src, "vol", tc.after, tc.upto, slices.Clone(tc.extra)))
			defer a.close()
			got, err := drain(t, a)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("ahead %v, plan %v", got, want)
			}
			if _, ok, err := a.nextSegment(); ok || err != nil {
				t.Fatalf("after the end: ok %v, err %v", ok, err)
			}
		})
	}
}

func TestPlanAheadErrorAndClose(t *testing.T) {
	boom := errors.New("boom")
	src := &memChanges{recs: []meta.Extent{{Gen: 1, Slot: 3}}, fail: boom}
	a := startPlanAhead(newFlushPlan(src, "vol", 0, 1, nil))
	for range 2 {
		if _, _, err := a.nextSegment(); !errors.Is(err, boom) {
			t.Fatalf("err %v, want %v", err, boom)
		}
	}
	a.close()

	// Closed before the end: close returns (the goroutine stopped while
	// it waited to hand over a segment), and the plan gives no more.
	src.fail = nil
	a = startPlanAhead(newFlushPlan(src, "vol", 0, 1, nil))
	a.close()
	if _, ok, err := a.nextSegment(); ok || !errors.Is(err, errPlanClosed) {
		t.Fatalf("closed: ok %v, err %v", ok, err)
	}
}
