// Package faulty wraps a snapstore.Store and injects the faults real
// snapshot storage has: errors, calls that hang until their context ends,
// torn puts (part of the object stored, then an error) and slowness. It is
// for tests of the engine; nothing in the daemon imports it.
package faulty

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cowvol/cowvol/cow/snapstore"
)

// ErrInjected is the error of every injected failure.
var ErrInjected = errors.New("faulty: injected store failure")

// Faults says which faults to inject, each a probability per call (0..1).
type Faults struct {
	// Error fails a call with ErrInjected, doing nothing.
	Error float64
	// Hang blocks a call until its context ends, then returns ctx.Err().
	Hang float64
	// Torn stores a prefix of a Put's data under the key, then fails the
	// Put: a store that is not atomic, a connection cut mid-upload.
	Torn float64
	// Latency delays every call (honouring its context).
	Latency time.Duration
	// PutsOnly limits Error and Hang to Put; reads, listings and
	// deletions go through.
	PutsOnly bool
}

// Store is a snapstore.Store that injects Faults into the calls it passes
// to the store it wraps.
type Store struct {
	inner snapstore.Store

	// mu guards the fields that follow.
	mu     sync.Mutex
	faults Faults
	rng    *rand.Rand

	errors, hangs, torn, calls atomic.Int64
}

var _ snapstore.Store = (*Store)(nil)

// New wraps inner; seed makes the choice of faulty calls repeatable for
// one sequence of calls.
func New(inner snapstore.Store, seed uint64) *Store {
	return &Store{inner: inner, rng: rand.New(rand.NewPCG(seed, 0xfa017))}
}

// Set replaces the faults injected from now on (the zero Faults: none).
func (s *Store) Set(f Faults) {
	s.mu.Lock()
	s.faults = f
	s.mu.Unlock()
}

// Counts reports how many calls were made and how many faults of each kind
// were injected.
func (s *Store) Counts() (calls, errors, hangs, torn int64) {
	return s.calls.Load(), s.errors.Load(), s.hangs.Load(), s.torn.Load()
}

func (s *Store) String() string { return "faulty+" + s.inner.String() }

type fault int

const (
	none fault = iota
	failErr
	failHang
	failTorn
)

// pick decides the fate of one call.
func (s *Store) pick(put bool) (fault, time.Duration) {
	s.calls.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.faults
	x := s.rng.Float64()
	eligible := put || !f.PutsOnly
	switch {
	case eligible && x < f.Error:
		s.errors.Add(1)
		return failErr, f.Latency
	case eligible && x < f.Error+f.Hang:
		s.hangs.Add(1)
		return failHang, f.Latency
	case put && x < f.Error+f.Hang+f.Torn:
		s.torn.Add(1)
		return failTorn, f.Latency
	}
	return none, f.Latency
}

// before applies the latency and an error or hang; it returns non-nil when
// the call must fail without reaching the store.
func (s *Store) before(ctx context.Context, op, key string, put bool) (fault, error) {
	f, latency := s.pick(put)
	if latency > 0 {
		t := time.NewTimer(latency)
		select {
		case <-ctx.Done():
			t.Stop()
			return f, ctx.Err()
		case <-t.C:
		}
	}
	switch f {
	case failErr:
		return f, fmt.Errorf("%s %s: %w", op, key, ErrInjected)
	case failHang:
		<-ctx.Done()
		return f, fmt.Errorf("%s %s: hung until: %w", op, key, ctx.Err())
	}
	return f, nil
}

func (s *Store) Put(ctx context.Context, key string, data []byte) error {
	f, err := s.before(ctx, "put", key, true)
	if err != nil {
		return err
	}
	if f == failTorn {
		n := len(data) / 2
		if err := s.inner.Put(ctx, key, data[:n:n]); err != nil {
			return err
		}
		return fmt.Errorf("put %s: torn after %d of %d bytes: %w", key, n, len(data), ErrInjected)
	}
	return s.inner.Put(ctx, key, data)
}

func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	if _, err := s.before(ctx, "get", key, false); err != nil {
		return nil, err
	}
	return s.inner.Get(ctx, key)
}

func (s *Store) Exists(ctx context.Context, key string) (bool, error) {
	if _, err := s.before(ctx, "exists", key, false); err != nil {
		return false, err
	}
	return s.inner.Exists(ctx, key)
}

func (s *Store) GetRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	if _, err := s.before(ctx, "get range", key, false); err != nil {
		return nil, err
	}
	return s.inner.GetRange(ctx, key, off, n)
}

func (s *Store) List(ctx context.Context, prefix string, fn func(snapstore.ObjectInfo) error) error {
	if _, err := s.before(ctx, "list", prefix, false); err != nil {
		return err
	}
	return s.inner.List(ctx, prefix, fn)
}

func (s *Store) Delete(ctx context.Context, key string) error {
	if _, err := s.before(ctx, "delete", key, false); err != nil {
		return err
	}
	return s.inner.Delete(ctx, key)
}
