package cow

import (
	"bytes"
	"errors"
	"sync"
	"testing"
)

func TestModifyVolumeSizeGrowsOnline(t *testing.T) {
	dir := t.TempDir()
	eng := openTestEngine(t, dir)
	vi, err := eng.CreateVolume(ctx, CreateVolumeParams{Size: 1 << 20, BlockSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	var resized []string
	eng.OnVolumeResized(func(id string) { resized = append(resized, id) })
	h := openHandle(t, eng, vi.ID)
	old := pattern(1, 1<<20)
	if _, err := h.WriteAt(old, 0); err != nil {
		t.Fatal(err)
	}
	before, err := eng.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID})
	if err != nil {
		t.Fatal(err)
	}

	refused := []struct {
		name string
		size int64
		want error
	}{
		{"shrink", 512 << 10, ErrInvalidSize},
		{"same size", 1 << 20, ErrInvalidSize},
		{"not a block multiple", 2<<20 + 512, ErrInvalidSize},
		{"over 64 TiB", MaxVolumeSize + 4096, ErrInvalidSize},
	}
	for _, tt := range refused {
		if _, err := eng.ModifyVolumeSize(ctx, vi.ID, tt.size); !errors.Is(err, tt.want) {
			t.Fatalf("%s: ModifyVolumeSize(%d) = %v, want %v", tt.name, tt.size, err, tt.want)
		}
	}
	if _, err := eng.ModifyVolumeSize(ctx, "vol-0123456789abcdef0", 2<<20); !errors.Is(err, ErrVolumeNotFound) {
		t.Fatalf("unknown volume: %v", err)
	}
	if mods, _ := eng.VolumeModifications(ctx); len(mods) != 0 || h.Size() != 1<<20 {
		t.Fatalf("refused modifications left %v, size %d", mods, h.Size())
	}

	m, err := eng.ModifyVolumeSize(ctx, vi.ID, 3<<20)
	if err != nil {
		t.Fatal(err)
	}
	if m.State != ModificationModifying || m.OriginalSize != 1<<20 || m.TargetSize != 3<<20 || m.Progress != 0 {
		t.Fatalf("modification = %+v", m)
	}
	if len(resized) != 1 || resized[0] != vi.ID {
		t.Fatalf("resize hook calls: %v", resized)
	}
	if _, err := eng.ModifyVolumeSize(ctx, vi.ID, 4<<20); !errors.Is(err, ErrModificationInProgress) {
		t.Fatalf("second modification while modifying: %v", err)
	}
	if h.Size() != 3<<20 {
		t.Fatalf("size after grow = %d", h.Size())
	}
	// The new blocks read as zeros and take writes; the old ones are kept.
	tail := make([]byte, 2<<20)
	if _, err := h.ReadAt(tail, 1<<20); err != nil || !bytes.Equal(tail, make([]byte, 2<<20)) {
		t.Fatalf("grown blocks: %v, not zeros", err)
	}
	newData := pattern(2, 4096)
	if _, err := h.WriteAt(newData, 3<<20-4096); err != nil {
		t.Fatal(err)
	}
	done, err := eng.FinishVolumeModification(ctx, vi.ID)
	if err != nil {
		t.Fatal(err)
	}
	if done.State != ModificationCompleted || done.Progress != 100 || done.EndTime.Before(done.StartTime) {
		t.Fatalf("finished modification = %+v", done)
	}
	after, err := eng.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID})
	if err != nil {
		t.Fatal(err)
	}
	if before.VolumeSize != 1<<20 || after.VolumeSize != 3<<20 {
		t.Fatalf("snapshot sizes %d before and %d after the grow", before.VolumeSize, after.VolumeSize)
	}
	waitSnapshot(t, eng, after.ID)
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}

	// The size and the modification survive a restart.
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}
	eng = openTestEngine(t, dir)
	got, err := eng.VolumeInfo(vi.ID)
	if err != nil || got.Size != 3<<20 {
		t.Fatalf("after restart: %+v, %v", got, err)
	}
	mods, _ := eng.VolumeModifications(ctx)
	if len(mods) != 1 || mods[0] != done {
		t.Fatalf("modifications after restart = %+v, want %+v", mods, done)
	}
	h = openHandle(t, eng, vi.ID)
	buf := make([]byte, 1<<20)
	if _, err := h.ReadAt(buf, 0); err != nil || !bytes.Equal(buf, old) {
		t.Fatalf("old data after restart: %v", err)
	}
	if _, err := h.ReadAt(buf[:4096], 3<<20-4096); err != nil || !bytes.Equal(buf[:4096], newData) {
		t.Fatalf("data past the old end after restart: %v", err)
	}
	// A volume from the later snapshot has its size and its data.
	restored, err := eng.CreateVolume(ctx, CreateVolumeParams{SnapshotID: after.ID})
	if err != nil || restored.Size != 3<<20 {
		t.Fatalf("volume from the later snapshot: %+v, %v", restored, err)
	}
	rh := openHandle(t, eng, restored.ID)
	if _, err := rh.ReadAt(buf[:4096], 3<<20-4096); err != nil || !bytes.Equal(buf[:4096], newData) {
		t.Fatalf("restored data past the old end: %v", err)
	}
}

func TestUnfinishedModificationListed(t *testing.T) {
	dir := t.TempDir()
	eng := openTestEngine(t, dir)
	vi, err := eng.CreateVolume(ctx, CreateVolumeParams{Size: 1 << 20, BlockSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eng.ModifyVolumeSize(ctx, vi.ID, 2<<20); err != nil {
		t.Fatal(err)
	}
	eng.Close()
	eng = openTestEngine(t, dir)
	if got := eng.UnfinishedModifications(); len(got) != 1 || got[0] != vi.ID {
		t.Fatalf("unfinished after restart: %v", got)
	}
	if _, err := eng.FinishVolumeModification(ctx, vi.ID); err != nil {
		t.Fatal(err)
	}
	if got := eng.UnfinishedModifications(); len(got) != 0 {
		t.Fatalf("unfinished after finishing: %v", got)
	}
}

// TestModifyVolumeSizeUnderIO grows a volume while readers and writers use
// it: every write below the old end keeps working, and once the grow has
// returned, the new end takes writes (run with -race).
func TestModifyVolumeSizeUnderIO(t *testing.T) {
	eng := openTestEngine(t, t.TempDir())
	vi, err := eng.CreateVolume(ctx, CreateVolumeParams{Size: 1 << 20, BlockSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	h := openHandle(t, eng, vi.ID)
	stop := make(chan struct{})
	errs := make(chan error, 2)
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := pattern(byte(w+1), 4096)
			for i := 0; ; i++ {
				select {
				case <-stop:
					errs <- nil
					return
				default:
				}
				off := int64(i%256) * 4096
				if _, err := h.WriteAt(buf, off); err != nil {
					errs <- err
					return
				}
				if _, err := h.ReadAt(make([]byte, 4096), off); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for size := int64(2 << 20); size <= 8<<20; size += 2 << 20 {
		if _, err := eng.ModifyVolumeSize(ctx, vi.ID, size); err != nil {
			t.Fatal(err)
		}
		if _, err := eng.FinishVolumeModification(ctx, vi.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := h.WriteAt(pattern(9, 4096), size-4096); err != nil {
			t.Fatalf("write at the new end of %d bytes: %v", size, err)
		}
	}
	close(stop)
	wg.Wait()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if h.Size() != 8<<20 {
		t.Fatalf("size %d", h.Size())
	}
}
