package cow

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/cowvol/cowvol/cow/snapfmt"
	"github.com/cowvol/cowvol/cow/snapstore"
)

// TestOutpostLocalStore: on a daemon that is an Outpost, CreateSnapshot
// with its ARN stores the snapshot in the local store and reports the
// ARN; without it, in the regional store.
func TestOutpostLocalStore(t *testing.T) {
	dir := t.TempDir()
	regional, _ := snapstore.OpenDir(filepath.Join(dir, "regional"))
	local, _ := snapstore.OpenDir(filepath.Join(dir, "local"))
	const arn = "arn:aws:outposts:us-east-1:123456789012:outpost/op-0123456789abcdef0"
	eng, err := Open(Options{DataDir: filepath.Join(dir, "data"), SyncInterval: time.Hour,
		SnapshotStore: regional, LocalSnapshotStore: local, OutpostArn: arn})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	vi, _ := eng.CreateVolume(ctx, CreateVolumeParams{Size: 1 << 20, BlockSize: 4096})
	h := openHandle(t, eng, vi.ID)
	h.WriteAt(pattern(1, 1<<20), 0)

	onOutpost, err := eng.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID, OutpostArn: arn})
	if err != nil || onOutpost.OutpostArn != arn {
		t.Fatalf("snapshot on the Outpost: %+v, %v", onOutpost, err)
	}
	inRegion, err := eng.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID})
	if err != nil || inRegion.OutpostArn != "" {
		t.Fatalf("snapshot in the region: %+v, %v", inRegion, err)
	}
	waitSnapshot(t, eng, onOutpost.ID)
	waitSnapshot(t, eng, inRegion.ID)
	for _, c := range []struct {
		st       snapstore.Store
		has, not string
	}{{local, onOutpost.ID, inRegion.ID}, {regional, inRegion.ID, onOutpost.ID}} {
		if ok, _ := c.st.Exists(ctx, snapfmt.ManifestKey(c.has)); !ok {
			t.Errorf("%s lacks the manifest of %s", c.st, c.has)
		}
		if ok, _ := c.st.Exists(ctx, snapfmt.ManifestKey(c.not)); ok {
			t.Errorf("%s holds the manifest of %s", c.st, c.not)
		}
	}
	// The regional snapshot built on the Outpost one: its chunks were
	// copied over, and it restores whole.
	rv, err := eng.CreateVolume(ctx, CreateVolumeParams{SnapshotID: inRegion.ID})
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 1<<20)
	if _, err := openHandle(t, eng, rv.ID).ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if want := pattern(1, 1<<20); string(got) != string(want) {
		t.Fatalf("volume from the regional snapshot differs at byte %d", firstDiff(got, want))
	}
}
