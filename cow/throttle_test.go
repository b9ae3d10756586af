package cow

import (
	"context"
	"testing"
	"time"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestIOGovernor(t *testing.T) {
	const rate = 64 << 20
	const block = 1 << 20
	clock := &fakeClock{t: time.Unix(1_000_000, 0)}
	g := newIOGovernor(rate)
	g.now = clock.now

	// Idle: background work is never held back.
	for range 100 {
		if w := g.reserve(block); w != 0 {
			t.Fatalf("idle: asked to wait %v", w)
		}
	}

	// Busy: the burst goes at once, then the rate holds.
	g.foreground()
	moved := 0
	for g.reserve(block) == 0 {
		moved += block
		if moved > 2*paceBurst {
			t.Fatal("busy: background work is not held back")
		}
	}
	if moved != paceBurst {
		t.Fatalf("busy: a burst of %d bytes went at once, want %d", moved, paceBurst)
	}
	// Over a simulated second of steady foreground I/O, background work
	// moves the rate plus at most one burst.
	moved = 0
	for elapsed := time.Duration(0); elapsed < time.Second; {
		g.foreground()
		w := g.reserve(block)
		if w == 0 {
			moved += block
			continue
		}
		if w > busyWindow+time.Second/rate*block {
			t.Fatalf("asked to wait %v for one block", w)
		}
		clock.advance(w)
		elapsed += w
	}
	if moved < rate-block || moved > rate+paceBurst {
		t.Fatalf("busy for 1s: moved %d MiB, want about %d MiB", moved>>20, rate>>20)
	}

	// Foreground I/O stops: after the busy window, full speed again.
	clock.advance(busyWindow)
	if w := g.reserve(block); w != 0 {
		t.Fatalf("idle again: asked to wait %v", w)
	}
}

func TestIOGovernorUnlimited(t *testing.T) {
	g := newIOGovernor(-1)
	g.foreground()
	for range 1000 {
		if w := g.reserve(1 << 20); w != 0 {
			t.Fatalf("no limit set: asked to wait %v", w)
		}
	}
}

func TestIOGovernorPaceHonoursContext(t *testing.T) {
	g := newIOGovernor(1) // one byte per second: every wait is long
	ctx, cancel := context.WithCancel(context.Background())
	g.foreground()
	for g.reserve(1<<20) == 0 {
	}
	done := make(chan error, 1)
	go func() {
		// Foreground I/O keeps going while pace waits.
		for ctx.Err() == nil {
			g.foreground()
			time.Sleep(time.Millisecond)
		}
	}()
	go func() { done <- g.pace(ctx, 1<<20) }()
	cancel()
	if err := <-done; err == nil {
		t.Fatal("pace returned nil after its context was cancelled")
	}
}
