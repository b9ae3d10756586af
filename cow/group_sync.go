package cow

import "sync"

// groupSync runs fn on behalf of many concurrent callers: each call returns
// after a run of fn that started after the call began, and callers that
// arrive while a run is in flight share the next one. This is group commit:
// many fsyncs, one fdatasync and one Badger sync.
type groupSync struct {
	fn func() error

	mu      sync.Mutex
	running bool
	next    *syncRound // the round that starts when the running one ends
}

type syncRound struct {
	done chan struct{}
	err  error
}

func newGroupSync(fn func() error) *groupSync { return &groupSync{fn: fn} }

// sync waits for a run of fn that started after the call and returns its error.
func (g *groupSync) sync() error { return g.syncIf(nil) }

// syncIf is sync, except that it returns at once when no run is in flight
// and need (called under g.mu; nil: always) reports nothing to do.
func (g *groupSync) syncIf(need func() bool) error {
	g.mu.Lock()
	if !g.running && need != nil && !need() {
		g.mu.Unlock()
		return nil
	}
	if !g.running {
		g.running = true
		g.mu.Unlock()
		r := &syncRound{done: make(chan struct{})}
		g.run(r)
		return r.err
	}
	if g.next == nil {
		g.next = &syncRound{done: make(chan struct{})}
	}
	r := g.next
	g.mu.Unlock()
	<-r.done
	return r.err
}

// run runs round r and then any round that queued up meanwhile. The caller
// that started the chain runs the first round; the rest run on a goroutine
// that ends when no round is waiting.
func (g *groupSync) run(r *syncRound) {
	r.err = g.fn()
	close(r.done)
	g.mu.Lock()
	next := g.next
	g.next = nil
	if next == nil {
		g.running = false
		g.mu.Unlock()
		return
	}
	g.mu.Unlock()
	go g.run(next)
}
