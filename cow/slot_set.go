package cow

import "math/bits"

// slotSet is a set of slots, a bit each: the slots a volume's records
// refer to, gathered while its map loads (2.5 million slots take 312 KiB,
// where a list of them took 8 bytes each, twice: live map and change sets).
// It grows to the highest slot added.
type slotSet struct {
	w []uint64
}

func (s *slotSet) add(slot uint64) {
	i := slot >> 6
	if i >= uint64(len(s.w)) {
		s.w = append(s.w, make([]uint64, i+1-uint64(len(s.w)))...)
	}
	s.w[i] |= 1 << (slot & 63)
}

func (s *slotSet) has(slot uint64) bool {
	i := slot >> 6
	return i < uint64(len(s.w)) && s.w[i]&(1<<(slot&63)) != 0
}

// end is one past the highest slot in the set (0 when empty).
func (s *slotSet) end() uint64 {
	for i := len(s.w) - 1; i >= 0; i-- {
		if s.w[i] != 0 {
			return uint64(i)<<6 + 64 - uint64(bits.LeadingZeros64(s.w[i]))
		}
	}
	return 0
}

// holes returns the runs [from, to) of slots below limit not in the set.
func (s *slotSet) holes(limit uint64) (runs [][2]uint64) {
	for lo := uint64(0); lo < limit; {
		for lo < limit && s.has(lo) {
			lo++
		}
		hi := lo
		for hi < limit && !s.has(hi) {
			hi++
		}
		if hi > lo {
			runs = append(runs, [2]uint64{lo, hi})
		}
		lo = hi
	}
	return runs
}
