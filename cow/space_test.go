package cow

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeDisk is a data dir's file system whose free space the test sets: its
// budget, less what the snapshot store under the data dir holds, plus the
// ballast's size while the ballast file is gone.
type fakeDisk struct {
	dir     string
	budget  atomic.Int64
	ballast int64
}

func (d *fakeDisk) free(string) (int64, error) {
	free := d.budget.Load()
	filepath.WalkDir(filepath.Join(d.dir, "snapshots"), func(_ string, de fs.DirEntry, err error) error {
		if err == nil && !de.IsDir() {
			if fi, err := de.Info(); err == nil {
				free -= fi.Size()
			}
		}
		return nil
	})
	if _, err := os.Stat(filepath.Join(d.dir, ballastName)); err != nil {
		free += d.ballast
	}
	return free, nil
}

// TestSnapshotStoreKeepsTheReserve: the default snapshot store, on the data
// dir's disk, never takes the metadata reserve: a flush that would is
// refused with ErrNoSpace ("the data dir's disk is full"), retried, and ends
// in error with no pack left; once there is room, the next one completes.
func TestSnapshotStoreKeepsTheReserve(t *testing.T) {
	const size, reserve = 24 << 20, 1 << 20
	dir := t.TempDir()
	disk := &fakeDisk{dir: dir}
	disk.budget.Store(1 << 30)
	eng, err := Open(Options{DataDir: dir, SyncInterval: time.Hour, MetadataReserve: reserve, freeSpace: disk.free,
		FlushDeadline: time.Second, FlushRetryBase: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	vi, _ := eng.CreateVolume(ctx, CreateVolumeParams{Size: size, BlockSize: 64 << 10})
	h := openHandle(t, eng, vi.ID)
	want := randomBytes(3, size)
	if _, err := h.WriteAt(want, 0); err != nil {
		t.Fatal(err)
	}

	// Room for one 8 MiB pack above the reserve, not for two.
	disk.budget.Store(reserve + 10<<20)
	s1, _ := eng.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID})
	var retrying string
	for deadline := time.Now().Add(10 * time.Second); retrying == "" && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		si, _ := eng.SnapshotInfo(s1.ID)
		if si.State == SnapshotPending {
			retrying = si.StatusMessage
		}
	}
	if !strings.Contains(retrying, "retrying") || !strings.Contains(retrying, "the data dir's disk is full") {
		t.Errorf("a pending snapshot's statusMessage while its flush fails: %q", retrying)
	}
	si := waitSettled(t, eng, s1.ID)
	if si.State != SnapshotError || !strings.Contains(si.StatusMessage, "the data dir's disk is full") {
		t.Fatalf("snapshot %s: %s %q, want error saying the disk is full", s1.ID, si.State, si.StatusMessage)
	}
	st, _ := eng.store(StoreRegional)
	if packs := storeKeys(t, st, "packs/"); len(packs) != 0 {
		t.Errorf("packs left by the failed attempts: %v", packs)
	}
	if got := readVolume(t, eng, vi.ID, size); !bytes.Equal(got, want) {
		t.Fatalf("the volume differs at %d after its snapshot failed", firstDiff(got, want))
	}

	disk.budget.Store(1 << 30)
	s2, _ := eng.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID})
	waitSnapshot(t, eng, s2.ID)
	if si, _ := eng.SnapshotInfo(s2.ID); si.StatusMessage != "" {
		t.Errorf("a completed snapshot's statusMessage: %q", si.StatusMessage)
	}
	got := make([]byte, size)
	if _, err := eng.ReadSnapshot(ctx, s2.ID, got, 0); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("snapshot once there is room: %v, differs at %d", err, firstDiff(got, want))
	}
}

// TestOpenOnFullDisk: on a disk something else filled, the engine opens by
// releasing its ballast; it reads, refuses new blocks (in-place rewrites
// work), deletes volumes, and puts the ballast back once there is room.
// Without a ballast to release, it refuses to open, saying what to do.
func TestOpenOnFullDisk(t *testing.T) {
	dir := t.TempDir()
	disk := &fakeDisk{dir: dir, ballast: DefaultMetadataReserve}
	disk.budget.Store(1 << 30)
	open := func() (*Engine, error) {
		return Open(Options{DataDir: dir, SyncInterval: time.Hour, freeSpace: disk.free})
	}
	eng, err := open()
	if err != nil {
		t.Fatal(err)
	}
	ballast := filepath.Join(dir, ballastName)
	if fi, err := os.Stat(ballast); err != nil || fi.Size() != DefaultMetadataReserve || diskBytes(t, ballast) < DefaultMetadataReserve {
		t.Fatalf("no allocated ballast after the first open: %v", err)
	}
	vi, _ := eng.CreateVolume(ctx, CreateVolumeParams{Size: 1 << 20, BlockSize: 64 << 10})
	want := randomBytes(4, 256<<10)
	h, _ := eng.OpenVolume(vi.ID)
	h.WriteAt(want, 0)
	h.Close()
	other, _ := eng.CreateVolume(ctx, CreateVolumeParams{Size: 1 << 20, BlockSize: 64 << 10})
	eng.Close()

	disk.budget.Store(0) // something else took every byte
	eng, err = open()
	if err != nil {
		t.Fatalf("open on a full disk: %v", err)
	}
	defer eng.Close()
	if _, err := os.Stat(ballast); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the ballast is still there: %v", err)
	}
	h = openHandle(t, eng, vi.ID)
	got := make([]byte, len(want))
	if _, err := h.ReadAt(got, 0); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read on a full disk: %v", err)
	}
	if _, err := h.WriteAt(want[:4096], 0); err != nil {
		t.Errorf("an in-place rewrite on a full disk: %v", err)
	}
	if _, err := h.WriteAt(want[:4096], 512<<10); !errors.Is(err, ErrNoSpace) {
		t.Errorf("a new block on a full disk: %v, want ErrNoSpace", err)
	}
	if err := eng.DeleteVolume(ctx, other.ID); err != nil {
		t.Errorf("delete a volume on a full disk: %v", err)
	}

	disk.budget.Store(1 << 30) // space freed
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(ballast); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the ballast was not put back once there was room")
		}
	}
	if _, err := h.WriteAt(want[:4096], 512<<10); err != nil {
		t.Errorf("a new block once there is room: %v", err)
	}
	h.Close()
	eng.Close()

	// No ballast to release: a clear refusal.
	os.Remove(ballast)
	disk.ballast = 0
	disk.budget.Store(0)
	if _, err := open(); !errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), "free some space") {
		t.Fatalf("open on a full disk without a ballast: %v", err)
	}
}
