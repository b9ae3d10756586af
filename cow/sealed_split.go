package cow

import (
	"runtime"
	"sync"
)

// A large request on an encrypted volume is mostly cipher work, one block
// after another on the goroutine that received it. splitSealed cuts it, at
// block boundaries, into as many parts as there are CPUs (at most
// maxSealedParts), each of at least sealedPartMin bytes, and runs them at
// once: the caller does the first part, one goroutine each the others, and
// it returns when all have ended. Each block is still read or written
// exactly as before (its own lock, its own nonces), so a split request
// differs from a sequential one only in the order its blocks are done,
// which concurrent requests already make arbitrary.
const (
	sealedPartMin  = 256 << 10
	maxSealedParts = 4
)

// sealedParts is how many parts a request of n bytes is cut into.
func (v *volume) sealedParts(n int64) int {
	if v.hot == nil {
		return 1
	}
	parts := min(int64(runtime.GOMAXPROCS(0)), maxSealedParts, n/sealedPartMin)
	return int(max(parts, 1))
}

// splitSealed runs fn over [off, off+n) in sealedParts(n) parts, cut at
// block boundaries: fn(lo, hi) handles bytes [lo, hi) of the request
// (relative to off). It returns the error of the first part (in order of
// the request) that failed.
func (v *volume) splitSealed(off, n int64, fn func(lo, hi int64) error) error {
	parts := v.sealedParts(n)
	if parts == 1 {
		return fn(0, n)
	}
	cuts := v.partCuts(off, n, parts)
	errs := make([]error, len(cuts)-1)
	var wg sync.WaitGroup
	for i := 1; i < len(cuts)-1; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn(cuts[i], cuts[i+1])
		}()
	}
	errs[0] = fn(cuts[0], cuts[1])
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// partCuts returns the bounds (relative to off, from 0 to n) of up to
// parts parts of about equal size, each cut on a block boundary; parts
// that would be empty are left out.
func (v *volume) partCuts(off, n int64, parts int) []int64 {
	cuts := []int64{0}
	for i := 1; i < parts; i++ {
		// The block boundary at or after the i-th equal share.
		at := off + n*int64(i)/int64(parts)
		at = (at + v.blockSize - 1) &^ (v.blockSize - 1)
		c := at - off
		if c > cuts[len(cuts)-1] && c < n {
			cuts = append(cuts, c)
		}
	}
	return append(cuts, n)
}
