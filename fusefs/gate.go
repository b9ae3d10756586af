package fusefs

import (
	"sync"
)

// gate stands at the top of every request handler. Open, it lets requests
// through and counts them. Closed (a graceful handover), a request that
// arrives never starts: its handler blocks until the process exits, so the
// request stays where the kernel keeps requests read but not answered, and
// the successor has the kernel send it again (FUSE_NOTIFY_RESEND). close
// returns once the requests already through have finished: a request
// boundary, with every answer sent.
type gate struct {
	mu     sync.Mutex
	closed bool
	busy   sync.WaitGroup
	never  chan struct{} // never closed
}

func newGate() *gate { return &gate{never: make(chan struct{})} }

// enter lets a request through, or blocks for good once the gate is
// closed. Every enter that returns is followed by one leave.
func (g *gate) enter() {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		<-g.never
	}
	g.busy.Add(1)
	g.mu.Unlock()
}

func (g *gate) leave() { g.busy.Done() }

// close stops new requests and waits for those under way.
func (g *gate) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.busy.Wait()
}
