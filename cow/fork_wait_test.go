package cow

import (
	"bytes"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestForkWaitsAlone: while volume A's CreateSnapshot waits for A's dirty
// data (A's sync round held at its injection point), a write to A, another
// volume's CreateSnapshot, DescribeSnapshots and DescribeVolumes complete;
// A's CreateSnapshot returns once the round goes on, and its snapshot
// holds the write completed before the call.
func TestForkWaitsAlone(t *testing.T) {
	eng := openTestEngine(t, t.TempDir())
	var hold atomic.Pointer[string] // the volume whose next round is held
	entered, release := make(chan struct{}), make(chan struct{})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(unblock)
	eng.hooks.inSyncRound = func(volID string) {
		if id := hold.Load(); id != nil && *id == volID && hold.CompareAndSwap(id, nil) {
			close(entered)
			<-release
		}
	}
	const size = 1 << 20
	va, _ := eng.CreateVolume(ctx, CreateVolumeParams{Size: size})
	vb, _ := eng.CreateVolume(ctx, CreateVolumeParams{Size: size})
	ha := openHandle(t, eng, va.ID)
	defer ha.Close()
	before := pattern(1, size/2)
	if _, err := ha.WriteAt(before, 0); err != nil {
		t.Fatal(err)
	}

	hold.Store(&va.ID)
	type result struct {
		si  SnapshotInfo
		err error
	}
	forkA := make(chan result, 1)
	go func() {
		si, err := eng.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: va.ID})
		forkA <- result{si, err}
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("A's CreateSnapshot never reached A's sync round")
	}
	// meanwhile runs step with A's round held; step must complete.
	meanwhile := func(what string, step func() error) {
		t.Helper()
		done := make(chan error, 1)
		go func() { done <- step() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("%s while A's fork waits on A's data: %v", what, err)
			}
		case <-time.After(10 * time.Second):
			unblock()
			t.Fatalf("%s blocked behind A's fork waiting on A's data", what)
		}
	}
	var snapB SnapshotInfo
	meanwhile("CreateSnapshot of B", func() (err error) {
		snapB, err = eng.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vb.ID})
		return err
	})
	meanwhile("DescribeSnapshots", func() error {
		snaps, err := eng.DescribeSnapshots(ctx)
		if err == nil && (len(snaps) != 1 || snaps[0].ID != snapB.ID) {
			t.Errorf("DescribeSnapshots: %+v, want B's snapshot alone", snaps)
		}
		return err
	})
	meanwhile("DescribeVolumes", func() error {
		vols, err := eng.DescribeVolumes(ctx)
		if err == nil && len(vols) != 2 {
			t.Errorf("DescribeVolumes: %d volumes, want 2", len(vols))
		}
		return err
	})
	meanwhile("a write to A", func() error {
		_, err := ha.WriteAt(pattern(2, 4096), size-4096)
		return err
	})
	select {
	case r := <-forkA:
		t.Fatalf("A's CreateSnapshot returned (%+v, %v) before A's data was durable", r.si, r.err)
	default:
	}

	unblock()
	var r result
	select {
	case r = <-forkA:
	case <-time.After(10 * time.Second):
		t.Fatal("A's CreateSnapshot did not return once A's round went on")
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	waitSnapshot(t, eng, r.si.ID)
	rv, err := eng.CreateVolume(ctx, CreateVolumeParams{SnapshotID: r.si.ID})
	if err != nil {
		t.Fatal(err)
	}
	if got := readVolume(t, eng, rv.ID, len(before)); !bytes.Equal(got, before) {
		t.Error("A's snapshot lacks the write completed before the call")
	}
}

// TestDeleteVolumeDuringFork: DeleteVolume of a volume whose
// CreateSnapshot waits on its data (the round held) waits for that fork,
// then refuses (the volume has a pending snapshot); the snapshot completes.
func TestDeleteVolumeDuringFork(t *testing.T) {
	eng := openTestEngine(t, t.TempDir())
	var hold atomic.Bool
	entered, release := make(chan struct{}), make(chan struct{})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(unblock)
	eng.hooks.inSyncRound = func(string) {
		if hold.CompareAndSwap(true, false) {
			close(entered)
			<-release
		}
	}
	deleting := make(chan struct{})
	eng.hooks.deleteWaitsForTurn = func() { close(deleting) }
	va, _ := eng.CreateVolume(ctx, CreateVolumeParams{Size: 1 << 20})
	h := openHandle(t, eng, va.ID)
	want := pattern(3, 1<<20)
	if _, err := h.WriteAt(want, 0); err != nil {
		t.Fatal(err)
	}
	h.Close()

	hold.Store(true)
	fork := make(chan error, 1)
	var snap SnapshotInfo
	go func() {
		var err error
		snap, err = eng.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: va.ID})
		fork <- err
	}()
	<-entered
	deleted := make(chan error, 1)
	go func() { deleted <- eng.DeleteVolume(ctx, va.ID) }()
	select {
	case <-deleting: // about to take the turn the fork holds
	case err := <-deleted:
		unblock()
		t.Fatalf("DeleteVolume returned %v before reaching the volume's snapshot turn", err)
	}
	unblock()
	if err := <-fork; err != nil {
		t.Fatal(err)
	}
	if err := <-deleted; !errors.Is(err, ErrIncorrectState) {
		t.Fatalf("DeleteVolume during the fork: %v, want ErrIncorrectState (a pending snapshot)", err)
	}
	waitSnapshot(t, eng, snap.ID)
	rv, err := eng.CreateVolume(ctx, CreateVolumeParams{SnapshotID: snap.ID})
	if err != nil {
		t.Fatal(err)
	}
	if got := readVolume(t, eng, rv.ID, len(want)); !bytes.Equal(got, want) {
		t.Error("the snapshot does not hold the volume's data")
	}
}
