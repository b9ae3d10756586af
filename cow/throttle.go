package cow

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Background pacing. Background work (a snapshot's flush, a restored
// volume's hydration) runs at full speed while the volumes are idle and
// yields to foreground I/O while they are busy: ZFS async destroy and Ceph
// snap-trim both stalled client I/O until they were throttled.
const (
	// DefaultBackgroundBusyRate is the rate background work may move
	// data at while foreground I/O is going on (docs/ARCHITECTURE.md,
	// "Background work yields": at 64 MiB/s 1 MiB writes during an 8 GiB
	// flush ran at the speed they have without one, at 160 MiB/s at 0.67).
	DefaultBackgroundBusyRate = 64 << 20 // bytes per second
	// busyWindow: the volumes count as busy for this long after a
	// foreground request.
	busyWindow = 50 * time.Millisecond
	// paceBurst is how much background data may go at once when busy.
	paceBurst = 4 << 20
)

// ioGovernor paces background work against foreground I/O. Foreground
// requests mark themselves with one atomic add; background workers call
// pace before each unit of work.
type ioGovernor struct {
	busyRate float64 // bytes per second while busy; <= 0: no limit
	fgOps    atomic.Uint64
	now      func() time.Time

	// mu guards the fields that follow.
	mu       sync.Mutex
	seenOps  uint64    // fgOps when last sampled
	lastBusy time.Time // when foreground I/O was last seen
	tokens   float64   // bytes background work may move now
	filledAt time.Time
}

func newIOGovernor(busyRate float64) *ioGovernor {
	return &ioGovernor{busyRate: busyRate, now: time.Now}
}

// foreground records one foreground request.
func (g *ioGovernor) foreground() { g.fgOps.Add(1) }

// pace waits, while foreground I/O is busy, until background work may move
// n more bytes at the busy rate. While idle it returns at once.
func (g *ioGovernor) pace(ctx context.Context, n int) error {
	for {
		wait := g.reserve(n)
		if wait == 0 {
			return ctx.Err()
		}
		// Sleep at most a busy window: if the volumes fall idle
		// meanwhile, work goes back to full speed.
		t := time.NewTimer(min(wait, busyWindow))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// reserve takes n bytes of background allowance and returns 0, or returns
// how long to wait before asking again.
func (g *ioGovernor) reserve(n int) time.Duration {
	if g.busyRate <= 0 {
		return 0
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	if ops := g.fgOps.Load(); ops != g.seenOps {
		g.seenOps, g.lastBusy = ops, now
	}
	if now.Sub(g.lastBusy) >= busyWindow {
		// Idle: keep a full bucket, so that a burst is allowed when
		// foreground I/O starts again.
		g.tokens, g.filledAt = paceBurst, now
		return 0
	}
	g.tokens = min(paceBurst, g.tokens+now.Sub(g.filledAt).Seconds()*g.busyRate)
	g.filledAt = now
	// A unit larger than the burst goes once the bucket is full.
	if g.tokens >= float64(min(n, paceBurst)) {
		g.tokens -= float64(n)
		return 0
	}
	return max(time.Microsecond, time.Duration((float64(min(n, paceBurst))-g.tokens)/g.busyRate*float64(time.Second)))
}
