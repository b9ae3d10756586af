package cow

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cowvol/cowvol/cow/snapfmt"
	"github.com/cowvol/cowvol/cow/snapstore"
)

// Races between daemons on one store, each placed exactly by a hookStore
// injection point rather than by timing.

// collectOnce runs one mark-and-sweep round of eng on the regional store.
func collectOnce(eng *Engine) error {
	eng.gc.Lock()
	defer eng.gc.Unlock()
	return newCollector(eng).collectLocked(ctx, StoreRegional)
}

// freshReader empties eng's caches (in place: its background goroutines
// use them), so that reads go to the store.
func freshReader(eng *Engine) {
	clearPackCache(eng)
	o := eng.reader.objects
	o.mu.Lock()
	o.lru.lru.Purge()
	o.mu.Unlock()
}

func clearPackCache(eng *Engine) {
	p := eng.reader.packs
	p.mu.Lock()
	p.windows.lru.Purge()
	p.mu.Unlock()
}

// TestGCHoldSwapRace: B's collector lists the roots; before it reads A's
// base hold H1, A completes a snapshot (manifest M2 and hold H2, which
// share H1's data) and drops H1. The mark must not treat the vanished H1
// as needing nothing: the round is abandoned, and the next one, listing
// H2, keeps the data.
func TestGCHoldSwapRace(t *testing.T) {
	st := sharedDir(t)
	grace := 50 * time.Millisecond
	a := openSharedEngine(t, st, "111111111111", grace)
	hs := &hookStore{Store: st}
	b := openSharedEngine(t, hs, "111111111111", grace)
	b.StopBackground()

	const size = 2 << 20
	vi, _ := a.CreateVolume(ctx, CreateVolumeParams{Size: size, BlockSize: 64 << 10})
	h := openHandle(t, a, vi.ID)
	defer h.Close()
	data := pattern(5, size)
	h.WriteAt(data, 0)
	s1, _ := a.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID})
	waitSnapshot(t, a, s1.ID)
	// The user deletes S1: the volume's base is now only its hold.
	if err := a.DeleteSnapshot(ctx, s1.ID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(leaseMargin/10 + 4*grace) // S1's data is past its grace period

	var s2 string
	var once sync.Once
	hs.setGet(func(key string) {
		if !strings.HasPrefix(key, "holds/") {
			return
		}
		once.Do(func() {
			p := pattern(6, 64<<10)
			copy(data, p)
			h.WriteAt(p, 0)
			s, err := a.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID})
			if err != nil {
				t.Error(err)
				return
			}
			waitSnapshot(t, a, s.ID)
			s2 = s.ID
			// The snapshot is marked completed just before setBase
			// drops the old hold: wait for the drop.
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
				if ok, _ := st.Exists(ctx, key); !ok {
					break
				}
				if time.Now().After(deadline) {
					t.Errorf("A's flush never dropped %s", key)
					break
				}
			}
		})
	})
	err := collectOnce(b)
	hs.setGet(nil)
	if !errors.Is(err, errRootVanished) {
		t.Fatalf("B's collection racing the hold swap: %v, want errRootVanished", err)
	}
	if err := collectOnce(b); err != nil {
		t.Fatalf("B's next collection: %v", err)
	}
	freshReader(a)
	got := make([]byte, size)
	if _, err := a.ReadSnapshot(ctx, s2, got, 0); err != nil {
		t.Fatalf("snapshot %s unreadable after B's collections: %v", s2, err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("snapshot %s differs at %d", s2, firstDiff(got, data))
	}
}

// TestRetriedFlushAdoptsStoredManifest: A's flush stores the manifest,
// then fails storing the hold; B reads the snapshot (and caches the
// manifest) meanwhile. A's retry must adopt the stored manifest, not
// rewrite it with new packs: afterwards the manifest is byte for byte the
// one B cached, and both daemons read the snapshot after a collection.
func TestRetriedFlushAdoptsStoredManifest(t *testing.T) {
	st := sharedDir(t)
	grace := 50 * time.Millisecond
	hs := &hookStore{Store: st}
	a := openSharedEngine(t, hs, "111111111111", grace)
	b := openSharedEngine(t, st, "222222222222", grace)
	b.StopBackground()
	const size = 1 << 20
	vi, _ := a.CreateVolume(ctx, CreateVolumeParams{Size: size, BlockSize: 64 << 10})
	h := openHandle(t, a, vi.ID)
	defer h.Close()
	data := pattern(5, size)
	h.WriteAt(data, 0)
	var once sync.Once
	var sid string
	var first []byte
	hs.setPut(func(key string) error {
		if !strings.HasPrefix(key, "holds/") {
			return nil
		}
		var err error
		once.Do(func() {
			first, err = st.Get(ctx, snapfmt.ManifestKey(sid))
			if err != nil {
				t.Errorf("the manifest is not stored before the hold: %v", err)
			}
			got := make([]byte, size)
			if _, rerr := b.ReadSnapshot(ctx, sid, got, 0); rerr != nil {
				t.Errorf("B reads the snapshot during attempt 1: %v", rerr)
			}
			err = errors.New("injected: hold put fails")
		})
		return err
	})
	s, _ := a.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID})
	sid = s.ID
	waitSnapshot(t, a, s.ID)
	hs.setPut(nil)
	if final, err := st.Get(ctx, snapfmt.ManifestKey(s.ID)); err != nil || !bytes.Equal(final, first) {
		t.Fatalf("the retry rewrote the manifest (err %v): it is not immutable", err)
	}
	// The next snapshot rewrites every block: S's data is needed only
	// by S's manifest.
	h.WriteAt(pattern(9, size), 0)
	s3, _ := a.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID})
	waitSnapshot(t, a, s3.ID)
	time.Sleep(leaseMargin/10 + 4*grace)
	if err := collectOnce(b); err != nil {
		t.Fatal(err)
	}
	clearPackCache(b) // B keeps its cached manifest
	freshReader(a)
	for _, eng := range []*Engine{a, b} {
		got := make([]byte, size)
		if _, err := eng.ReadSnapshot(ctx, s.ID, got, 0); err != nil {
			t.Fatalf("snapshot %s unreadable after B's collection: %v", s.ID, err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("snapshot %s differs at %d", s.ID, firstDiff(got, data))
		}
	}
}

// TestDeleteCreateDeadlock: a flush holds e.gc shared (stopped in a pack
// upload), DeleteSnapshot waits for e.gc, then CreateVolume from a
// snapshot starts. Once the flush ends, both calls must return: none of
// them may hold e.volumes.mu while waiting for e.gc.
func TestDeleteCreateDeadlock(t *testing.T) {
	st := sharedDir(t)
	hs := &hookStore{Store: st}
	e := openSharedEngine(t, hs, "111111111111", time.Hour)
	vi, _ := e.CreateVolume(ctx, CreateVolumeParams{Size: 1 << 20})
	h := openHandle(t, e, vi.ID)
	h.WriteAt(pattern(1, 1<<20), 0)
	s0, _ := e.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID})
	waitSnapshot(t, e, s0.ID)

	gate := make(chan struct{})
	started := make(chan struct{})
	var gated sync.Once
	hs.setPut(func(key string) error {
		if strings.HasPrefix(key, "packs/") {
			gated.Do(func() { close(started); <-gate })
		}
		return nil
	})
	h.WriteAt(pattern(2, 1<<20), 0)
	h.Close()
	if _, err := e.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID}); err != nil {
		t.Fatal(err)
	}
	<-started // the flush holds e.gc shared, stopped in a pack upload
	holdWaits := make(chan struct{})
	var holdOnce sync.Once
	e.hooks.holdWaitsForGC = func() { holdOnce.Do(func() { close(holdWaits) }) }
	deadline := time.Now().Add(10 * time.Second)
	done := make(chan string, 2)
	go func() { err := e.DeleteSnapshot(ctx, s0.ID); done <- "delete: " + errString(err) }()
	// DeleteSnapshot waits in gc.Lock once a shared lock can no longer
	// be taken: a writer is pending (the flush still holds it shared).
	for e.gc.TryRLock() {
		e.gc.RUnlock()
		if time.Now().After(deadline) {
			deadlocked(t, "DeleteSnapshot never waited for e.gc")
		}
		runtime.Gosched()
	}
	go func() {
		_, err := e.CreateVolume(ctx, CreateVolumeParams{SnapshotID: s0.ID})
		done <- "create: " + errString(err)
	}()
	// CreateVolume is about to take e.gc shared, behind the pending
	// DeleteSnapshot; only then does the flush go on.
	select {
	case <-holdWaits:
	case <-time.After(time.Until(deadline)):
		deadlocked(t, "CreateVolume never reached e.gc")
	}
	close(gate)
	for range 2 {
		select {
		case r := <-done:
			t.Log(r)
		case <-time.After(10 * time.Second):
			deadlocked(t, "DeleteSnapshot and CreateVolume deadlocked")
		}
	}
}

// deadlocked ends the test binary with every goroutine's stack. Not
// t.Fatal nor panic: the engine's cleanup, which runs on both, would block
// on e.volumes.mu too.
func deadlocked(t *testing.T, what string) {
	buf := make([]byte, 1<<20)
	n := runtime.Stack(buf, true)
	fmt.Fprintf(os.Stderr, "--- FAIL: %s: %s:\n%s\n", t.Name(), what, buf[:n])
	os.Exit(1)
}

func errString(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

// TestHydrationKeepsNewHold: a volume created from a snapshot takes a
// snapshot of its own while it hydrates; its flush stores the new hold,
// and hydration ends just before the flush makes that hold the base. The
// end of hydration must drop only the hold of the snapshot the volume came
// from, never the new one.
func TestHydrationKeepsNewHold(t *testing.T) {
	st := sharedDir(t)
	hs := &hookStore{Store: st}
	e := openSharedEngine(t, hs, "111111111111", time.Hour)
	const size = 1 << 20
	vi, _ := e.CreateVolume(ctx, CreateVolumeParams{Size: size, BlockSize: 64 << 10})
	h := openHandle(t, e, vi.ID)
	h.WriteAt(pattern(1, size), 0)
	h.Close()
	s0, _ := e.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID})
	waitSnapshot(t, e, s0.ID)

	// The hydrator's first read of its base hold waits for gate.
	gate := make(chan struct{})
	var release sync.Once
	open := func() { release.Do(func() { close(gate) }) }
	defer open()
	var gated atomic.Bool
	hs.setGet(func(key string) {
		// Only the first (the hydrator's): the flush reads it too.
		if strings.HasPrefix(key, "holds/") && strings.HasSuffix(key, "/"+s0.ID) && gated.CompareAndSwap(false, true) {
			<-gate
		}
	})
	rv, err := e.CreateVolume(ctx, CreateVolumeParams{SnapshotID: s0.ID})
	if err != nil {
		t.Fatal(err)
	}
	v, _ := e.lookup(rv.ID)
	rh := openHandle(t, e, rv.ID)
	want := pattern(1, size)
	p := pattern(2, 64<<10) // a whole block: no fetch from the base
	copy(want, p)
	rh.WriteAt(p, 0)
	rh.Close()
	var newHold string
	hs.setAfterPut(func(key string) {
		if !strings.HasPrefix(key, "holds/"+rv.ID+"/") {
			return
		}
		newHold = key
		// The flush stored the new hold: let hydration finish now.
		open()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
			v.mapMu.Lock()
			done := !v.record.Hydrating
			v.mapMu.Unlock()
			if done {
				break
			}
			if time.Now().After(deadline) {
				t.Error("hydration did not finish")
				break
			}
		}
	})
	s1, _ := e.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: rv.ID})
	waitSnapshot(t, e, s1.ID)
	hs.setAfterPut(nil)
	hs.setGet(nil)
	// setBase runs just after the snapshot is marked completed.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		v.mapMu.Lock()
		base := v.record.BaseManifest
		v.mapMu.Unlock()
		if base == newHold {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("base %s, want %s", base, newHold)
		}
	}
	var holds []string
	st.List(ctx, "holds/"+rv.ID+"/", func(o snapstore.ObjectInfo) error { holds = append(holds, o.Key); return nil })
	if len(holds) != 1 || holds[0] != newHold {
		t.Fatalf("holds of %s: %v, want only its base %s", rv.ID, holds, newHold)
	}
	// The volume's next snapshot builds on that base.
	if err := e.DeleteSnapshot(ctx, s0.ID); err != nil {
		t.Fatal(err)
	}
	s2, _ := e.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: rv.ID})
	waitSnapshot(t, e, s2.ID)
	freshReader(e)
	got := make([]byte, size)
	if _, err := e.ReadSnapshot(ctx, s2.ID, got, 0); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("snapshot %s: %v (differs at %d)", s2.ID, err, firstDiff(got, want))
	}
}

// TestFlushRefreshesExistingSegment: a flush whose segment is byte for byte
// one stored long ago (unreferenced since) must store it again: another
// daemon's collection between the segment and the manifest would otherwise
// delete it, as the lease protects only objects stored after it started.
func TestFlushRefreshesExistingSegment(t *testing.T) {
	st := sharedDir(t)
	grace := 50 * time.Millisecond
	hs := &hookStore{Store: st}
	a := openSharedEngine(t, hs, "111111111111", time.Hour) // A's own collections keep all
	b := openSharedEngine(t, st, "111111111111", grace)
	b.StopBackground()
	const size = 1 << 20
	same := bytes.Repeat([]byte{7}, size) // every block the same chunk
	vi, _ := a.CreateVolume(ctx, CreateVolumeParams{Size: size, BlockSize: 64 << 10})
	h := openHandle(t, a, vi.ID)
	defer h.Close()
	h.WriteAt(same, 0)
	s1, _ := a.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID})
	waitSnapshot(t, a, s1.ID)
	h.WriteAt(pattern(2, 64<<10), 0) // block 0 changes...
	s2, _ := a.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID})
	waitSnapshot(t, a, s2.ID)
	if err := a.DeleteSnapshot(ctx, s1.ID); err != nil { // S1's segment: no root needs it
		t.Fatal(err)
	}
	time.Sleep(leaseMargin + 4*grace) // ...and is older than any lease's cutoff
	h.WriteAt(same[:64<<10], 0)       // ...and back: S3's segment is S1's
	var s3 string
	var once sync.Once
	hs.setPut(func(key string) error {
		if strings.HasSuffix(key, "/manifest") {
			once.Do(func() {
				if err := collectOnce(b); err != nil {
					t.Errorf("B's collection: %v", err)
				}
			})
		}
		return nil
	})
	s, _ := a.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID})
	s3 = s.ID
	waitSnapshot(t, a, s3)
	hs.setPut(nil)
	freshReader(a)
	got := make([]byte, size)
	if _, err := a.ReadSnapshot(ctx, s3, got, 0); err != nil || !bytes.Equal(got, same) {
		t.Fatalf("snapshot %s after B's collection: %v", s3, err)
	}
}

// waitStoreEmpty waits until st holds nothing under the prefixes the
// collector sweeps and roots live in.
func waitStoreEmpty(t *testing.T, st snapstore.Store) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var left []string
		for _, p := range []string{"snapshots/", "holds/", "segments/", "packs/"} {
			st.List(ctx, p, func(o snapstore.ObjectInfo) error { left = append(left, o.Key); return nil })
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("objects left in the store: %v", left)
		}
	}
}

// TestDeleteDoesNotWaitForGC: DeleteSnapshot and DeleteVolume return while
// the collection they trigger is stopped in its sweep (a mark and sweep of
// a whole bucket can take long); the collection then runs in the
// background and leaves the store empty.
func TestDeleteDoesNotWaitForGC(t *testing.T) {
	st := sharedDir(t)
	hs := &hookStore{Store: st}
	e, err := Open(Options{DataDir: t.TempDir(), SyncInterval: time.Hour, SnapshotStore: hs, GCGrace: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	vi, _ := e.CreateVolume(ctx, CreateVolumeParams{Size: 1 << 20, BlockSize: 64 << 10})
	h := openHandle(t, e, vi.ID)
	h.WriteAt(pattern(1, 1<<20), 0)
	h.Close()
	s, _ := e.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID})
	waitSnapshot(t, e, s.ID)

	gate := make(chan struct{})
	var release sync.Once
	open := func() { release.Do(func() { close(gate) }) }
	defer open()
	hs.setList(func(prefix string) {
		if prefix == "segments/" {
			<-gate
		}
	})
	for _, c := range []struct {
		name string
		del  func() error
	}{
		{"DeleteSnapshot", func() error { return e.DeleteSnapshot(ctx, s.ID) }},
		{"DeleteVolume", func() error { return e.DeleteVolume(ctx, vi.ID) }},
	} {
		name, del := c.name, c.del
		done := make(chan error, 1)
		go func() { done <- del() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		case <-time.After(5 * time.Second):
			open()
			t.Fatalf("%s waits for the garbage collection it triggers", name)
		}
	}
	open()
	waitStoreEmpty(t, st)
}

// TestCreateVolumeRechecksManifest: host B stores its hold of a snapshot
// just as host A deletes the snapshot and collects: A's mark listed the
// roots before B's hold landed, so it swept the data. B must see that the
// manifest is gone after storing its hold, drop the hold and answer
// NotFound, rather than create a volume whose base is gone.
func TestCreateVolumeRechecksManifest(t *testing.T) {
	st := sharedDir(t)
	grace := 20 * time.Millisecond
	a := openSharedEngine(t, st, "111111111111", grace)
	hs := &hookStore{Store: st}
	b := openSharedEngine(t, hs, "111111111111", grace)
	vi, _ := a.CreateVolume(ctx, CreateVolumeParams{Size: 1 << 20, BlockSize: 64 << 10})
	h := openHandle(t, a, vi.ID)
	h.WriteAt(pattern(7, 1<<20), 0)
	h.Close()
	s, _ := a.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID})
	waitSnapshot(t, a, s.ID)
	// The volume's own hold would keep the data: delete the volume.
	if err := a.DeleteVolume(ctx, vi.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := b.SnapshotInfo(s.ID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(leaseMargin/10 + 4*grace)
	var once sync.Once
	hs.setPut(func(key string) error {
		if strings.HasPrefix(key, "holds/") {
			once.Do(func() {
				if err := a.DeleteSnapshot(ctx, s.ID); err != nil {
					t.Error(err)
				}
				if err := collectOnce(a); err != nil {
					t.Error(err)
				}
			})
		}
		return nil
	})
	_, err := b.CreateVolume(ctx, CreateVolumeParams{SnapshotID: s.ID})
	if !errors.Is(err, ErrSnapshotNotFound) {
		t.Fatalf("CreateVolume from a snapshot deleted and collected under it: %v, want ErrSnapshotNotFound", err)
	}
	var holds []string
	st.List(ctx, "holds/", func(o snapstore.ObjectInfo) error { holds = append(holds, o.Key); return nil })
	if len(holds) != 0 {
		t.Fatalf("holds left: %v", holds)
	}
}

// TestDeleteVolumeAsItsSnapshotCompletes: a snapshot shows completed
// before its flush has moved the volume's base to the snapshot's hold.
// A DeleteVolume in that moment must wait for the flush's tail, or the
// hold the flush stores outlives the volume and pins the snapshot's data
// in the shared store for ever.
func TestDeleteVolumeAsItsSnapshotCompletes(t *testing.T) {
	st := sharedDir(t)
	e := openSharedEngine(t, st, "111111111111", time.Hour)
	for i := range 20 {
		vi, err := e.CreateVolume(ctx, CreateVolumeParams{Size: 1 << 20, BlockSize: 64 << 10})
		if err != nil {
			t.Fatal(err)
		}
		h := openHandle(t, e, vi.ID)
		h.WriteAt(pattern(byte(i), 1<<20), 0)
		h.Close()
		s, err := e.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID})
		if err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(30 * time.Second); ; {
			si, err := e.SnapshotInfo(s.ID)
			if err != nil {
				t.Fatal(err)
			}
			if si.State == SnapshotCompleted {
				break
			}
			if si.State == SnapshotError || time.Now().After(deadline) {
				t.Fatalf("snapshot %s: %s %s", s.ID, si.State, si.StatusMessage)
			}
			runtime.Gosched()
		}
		if err := e.DeleteVolume(ctx, vi.ID); err != nil {
			t.Fatalf("trial %d: DeleteVolume: %v", i, err)
		}
		var holds []string
		st.List(ctx, "holds/"+vi.ID+"/", func(o snapstore.ObjectInfo) error { holds = append(holds, o.Key); return nil })
		if len(holds) != 0 {
			t.Fatalf("trial %d: holds of the deleted volume left: %v", i, holds)
		}
	}
}
