package cow

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cowvol/cowvol/cow/snapfmt"
	"github.com/cowvol/cowvol/cow/snapstore"
)

// Flush leases: what keeps the garbage collector of every daemon sharing a
// store off the objects a flush (or a copy, or an EBS direct write) stores
// before its manifest and hold do (gc.go says how a collector judges them).

// leaseMargin: a lease starts this much before it is taken, since object
// timestamps can be coarser than time.Now (a filesystem's mtime is).
const leaseMargin = time.Second

// errLeaseLost: a flush's lease was not refreshed within LeaseTTL/2; the
// flush stops (it is retried with a new lease), since another daemon's
// collector may soon judge the lease dead and take what it stored.
var errLeaseLost = errors.New("flush lease lost: not refreshed within half its TTL")

// flushLease is a flush's lease: refreshed every LeaseTTL/6; ctx is
// cancelled (cause errLeaseLost) once no refresh has succeeded for
// LeaseTTL/2, and the flush checks valid before it stores its manifest.
type flushLease struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	ttl    time.Duration
	done   chan struct{} // closed when the refresher returns
	// mu guards lastOK: when the lease was last stored.
	mu     sync.Mutex
	lastOK time.Time
}

// valid reports errLeaseLost if the lease is past half its TTL.
func (l *flushLease) valid() error {
	l.mu.Lock()
	age := time.Since(l.lastOK)
	l.mu.Unlock()
	if age >= l.ttl/2 {
		l.cancel(errLeaseLost)
	}
	if context.Cause(l.ctx) == errLeaseLost {
		return fmt.Errorf("%w (last stored %s ago)", errLeaseLost, age.Round(time.Millisecond))
	}
	return l.ctx.Err()
}

// blame returns err, marked errLeaseLost when the lease's loss is what
// stopped the work (the store request failed because l.ctx ended).
func (l *flushLease) blame(err error) error {
	if err != nil && context.Cause(l.ctx) == errLeaseLost && !errors.Is(err, errLeaseLost) {
		return fmt.Errorf("%w: %w", errLeaseLost, err)
	}
	return err
}

// leaseKeeper takes and refreshes the leases of this daemon's flushes.
type leaseKeeper struct {
	owner string        // the account ID, the lease's body
	ttl   time.Duration // Options.LeaseTTL
	log   *slog.Logger
}

// holdLease is leaseKeeper.hold with this engine's account, lease TTL and
// logger: flushes, copies and EBS direct writes call it.
func (e *Engine) holdLease(ctx context.Context, st snapstore.Store, snapID string) (_ *flushLease, stop func(), err error) {
	return leaseKeeper{owner: e.accountID, ttl: e.leaseTTL, log: e.log}.hold(ctx, st, snapID)
}

// hold stores a lease for snapshot snapID's flush into st and keeps it
// fresh until the returned stop is called (which deletes it). The flush
// does its store requests under the lease's ctx.
func (k leaseKeeper) hold(ctx context.Context, st snapstore.Store, snapID string) (_ *flushLease, stop func(), err error) {
	key := snapfmt.LeaseKey(snapID, time.Now().Add(-leaseMargin))
	body := []byte(k.owner + "\n")
	taken := time.Now()
	if err := st.Put(ctx, key, body); err != nil {
		return nil, nil, fmt.Errorf("store flush lease: %w", err)
	}
	lctx, cancel := context.WithCancelCause(ctx)
	l := &flushLease{ctx: lctx, cancel: cancel, ttl: k.ttl, done: make(chan struct{}), lastOK: taken}
	go k.refresh(l, st, key, body, snapID)
	return l, func() {
		cancel(context.Canceled)
		<-l.done
		// Bounded: at shutdown with the store down, the lease expires.
		dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer dcancel()
		if err := st.Delete(dctx, key); err != nil {
			k.log.Warn("dropping flush lease (it expires)", "snapshot", snapID, "err", err)
		}
	}, nil
}

// refresh stores lease l (key, body) into st every TTL/6 until l.ctx ends
// or the lease is lost; it closes l.done when it returns.
func (k leaseKeeper) refresh(l *flushLease, st snapstore.Store, key string, body []byte, snapID string) {
	defer close(l.done)
	t := time.NewTicker(k.ttl / 6)
	defer t.Stop()
	for {
		select {
		case <-l.ctx.Done():
			return
		case <-t.C:
		}
		sent := time.Now()
		rctx, rcancel := context.WithTimeout(l.ctx, k.ttl/6)
		err := st.Put(rctx, key, body)
		rcancel()
		if err == nil {
			l.mu.Lock()
			l.lastOK = sent
			l.mu.Unlock()
		} else if l.ctx.Err() == nil {
			k.log.Warn("refreshing flush lease", "snapshot", snapID, "err", err)
		}
		if l.valid() != nil {
			k.log.Warn("flush lease lost; the flush stops and is retried", "snapshot", snapID)
			return
		}
	}
}
