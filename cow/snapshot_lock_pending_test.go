package cow

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/cowvol/cowvol/cow/snapfmt"
)

// TestLockOfPendingSnapshot: as EC2's, a lock made while its snapshot is
// pending is in force at once (the snapshot cannot be deleted), but its
// duration starts only when the snapshot completes; the lock of a
// snapshot whose creation fails is cancelled.
func TestLockOfPendingSnapshot(t *testing.T) {
	hs := &hookStore{Store: sharedDir(t)}
	eng, err := Open(Options{DataDir: t.TempDir(), SyncInterval: time.Hour, SnapshotStore: hs, FlushDeadline: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	vi, _ := eng.CreateVolume(ctx, CreateVolumeParams{Size: 1 << 20, BlockSize: 64 << 10})
	h := openHandle(t, eng, vi.ID)
	h.WriteAt(pattern(4, 1<<20), 0)
	h.Close()

	// The first snapshot's manifest waits for the test: the snapshot
	// stays pending until then. The second's is refused: it fails.
	var held, failing string
	var mu sync.Mutex
	reached, release := make(chan struct{}), make(chan struct{})
	hs.setPut(func(key string) error {
		mu.Lock()
		h, f := held, failing
		mu.Unlock()
		switch key {
		case snapfmt.ManifestKey(h):
			close(reached)
			<-release
		case snapfmt.ManifestKey(f):
			return errInjected
		}
		return nil
	})
	s, err := eng.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	held = s.ID
	mu.Unlock()
	<-reached

	l, err := eng.LockSnapshot(ctx, s.ID, LockRequest{Mode: LockCompliance, LockDuration: intp(3)})
	if err != nil {
		t.Fatal(err)
	}
	if !l.DurationStart.IsZero() || !l.ExpiresOn.IsZero() || l.State(time.Now().Add(1000*day)) != LockStateCompliance {
		t.Fatalf("lock of a pending snapshot: %+v; want no start, no expiry, in force", l)
	}
	// DeleteSnapshot itself would wait for the held flush (it takes e.gc
	// exclusively); its lock check, called here, is what it runs then.
	ps, err := eng.lookupSnapshot(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.refuseLockedDelete(ctx, ps); !errors.Is(err, ErrSnapshotLocked) {
		t.Fatalf("DeleteSnapshot's check of a locked pending snapshot: %v, want ErrSnapshotLocked", err)
	}
	close(release)
	si := waitSnapshotState(t, eng, s.ID)
	if si.State != SnapshotCompleted {
		t.Fatalf("snapshot %s is %s", s.ID, si.State)
	}
	locks, err := eng.DescribeLockedSnapshots(ctx, []string{s.ID})
	if err != nil || len(locks) != 1 {
		t.Fatalf("DescribeLockedSnapshots: %+v, %v", locks, err)
	}
	if got := locks[0]; !got.DurationStart.Equal(si.CompletionTime) || !got.ExpiresOn.Equal(si.CompletionTime.Add(3*day)) {
		t.Fatalf("after completion at %s the lock starts %s and expires %s; want the completion and 3 days later",
			si.CompletionTime, got.DurationStart, got.ExpiresOn)
	}

	f, err := eng.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID, Description: "fails"})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	failing = f.ID
	mu.Unlock()
	if _, err := eng.LockSnapshot(ctx, f.ID, LockRequest{Mode: LockCompliance, LockDuration: intp(3)}); err != nil {
		t.Fatal(err)
	}
	if si := waitSnapshotState(t, eng, f.ID); si.State != SnapshotError {
		t.Fatalf("snapshot %s is %s, want error", f.ID, si.State)
	}
	if locks, err := eng.DescribeLockedSnapshots(ctx, []string{f.ID}); err != nil || len(locks) != 0 {
		t.Fatalf("the lock of a failed snapshot is still reported: %+v, %v", locks, err)
	}
	if err := eng.DeleteSnapshot(ctx, f.ID); err != nil {
		t.Fatalf("DeleteSnapshot of a failed snapshot whose lock was cancelled: %v", err)
	}
	if ok, _ := hs.Exists(ctx, lockKey(f.ID)); ok {
		t.Fatalf("the cancelled lock of %s is left in the store", f.ID)
	}
}
