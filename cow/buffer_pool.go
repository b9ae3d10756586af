package cow

import (
	"math/bits"
	"sync"
)

// bufferPool recycles byte slices in power-of-two size classes up to
// 4 MiB (a 1 MiB block with its seals and scratch), so the data path does
// not allocate per request.
type bufferPool struct {
	classes [23]sync.Pool // 1 B .. 4 MiB
}

func (p *bufferPool) get(n int) []byte {
	c := sizeClass(n)
	if c >= len(p.classes) {
		return make([]byte, n)
	}
	if b, ok := p.classes[c].Get().(*[]byte); ok {
		return (*b)[:n]
	}
	return make([]byte, n, 1<<c)
}

func (p *bufferPool) put(b []byte) {
	c := sizeClass(cap(b))
	if c >= len(p.classes) || cap(b) != 1<<c {
		return
	}
	b = b[:cap(b)]
	p.classes[c].Put(&b)
}

// sizeClass is the smallest c with 1<<c >= n.
func sizeClass(n int) int {
	if n <= 1 {
		return 0
	}
	return bits.Len(uint(n - 1))
}
