package cow

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cowvol/cowvol/cow/snapfmt"
	"github.com/cowvol/cowvol/cow/snapstore"
)

// TestDecodeManifestValidatesSegments: segment refs out of order,
// repeated, past the volume's end or with a key that is no segment key
// make a manifest corrupt (readers binary-search them).
func TestDecodeManifestValidatesSegments(t *testing.T) {
	key := snapfmt.SegmentKey([32]byte{1})
	base := func(refs ...snapfmt.SegmentRef) []byte {
		b, err := snapfmt.EncodeManifest(nil, &snapfmt.Manifest{SnapshotID: "snap-00000000000000001", VolumeSize: 3 << 32, BlockSize: 64 << 10, Segments: refs})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// 3 << 32 bytes of 64 KiB blocks: 196608 blocks, segments 0..2.
	if _, err := snapfmt.DecodeManifest(base(snapfmt.SegmentRef{Index: 0, Key: key, Blocks: 1}, snapfmt.SegmentRef{Index: 2, Key: key, Blocks: 1})); err != nil {
		t.Fatalf("a valid manifest: %v", err)
	}
	for name, refs := range map[string][]snapfmt.SegmentRef{
		"unsorted":     {{Index: 2, Key: key, Blocks: 1}, {Index: 0, Key: key, Blocks: 1}},
		"repeated":     {{Index: 1, Key: key, Blocks: 1}, {Index: 1, Key: key, Blocks: 1}},
		"out of range": {{Index: 3, Key: key, Blocks: 1}},
		"bad key":      {{Index: 0, Key: "packs/00/00", Blocks: 1}},
	} {
		if _, err := snapfmt.DecodeManifest(base(refs...)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
}

// oneSnapshot returns an engine on a directory store with one completed
// snapshot of a 1 MiB volume, and the snapshot's content.
func oneSnapshot(t *testing.T, seed byte) (*Engine, snapstore.Store, string, []byte) {
	t.Helper()
	st := sharedDir(t)
	e := openSharedEngine(t, st, "111111111111", time.Hour)
	vi, _ := e.CreateVolume(ctx, CreateVolumeParams{Size: 1 << 20, BlockSize: 64 << 10})
	h := openHandle(t, e, vi.ID)
	data := pattern(seed, 1<<20)
	h.WriteAt(data, 0)
	h.Close()
	s, _ := e.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID})
	waitSnapshot(t, e, s.ID)
	return e, st, s.ID, data
}

// TestSegmentCheckedAgainstKey: a segment object whose content is not the
// one its key names (here: another valid segment, so it decodes) is
// corrupt, not a map to other data.
func TestSegmentCheckedAgainstKey(t *testing.T) {
	e, st, id, _ := oneSnapshot(t, 1)
	_, st2, _, _ := oneSnapshot(t, 2)
	var seg1, seg2 string
	st.List(ctx, "segments/", func(o snapstore.ObjectInfo) error { seg1 = o.Key; return nil })
	st2.List(ctx, "segments/", func(o snapstore.ObjectInfo) error { seg2 = o.Key; return nil })
	other, err := st2.Get(ctx, seg2)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, seg1, other); err != nil {
		t.Fatal(err)
	}
	freshReader(e)
	got := make([]byte, 1<<20)
	if _, err := e.ReadSnapshot(ctx, id, got, 0); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("read through a segment that is not its key's: %v, want ErrCorrupt", err)
	}
}

// TestPackCacheRefetchesCorruptWindow: a cached pack window damaged in
// memory is dropped and fetched again; the read succeeds.
func TestPackCacheRefetchesCorruptWindow(t *testing.T) {
	e, _, id, data := oneSnapshot(t, 3)
	got := make([]byte, 1<<20)
	if _, err := e.ReadSnapshot(ctx, id, got, 0); err != nil {
		t.Fatal(err)
	}
	e.reader.packs.mu.Lock()
	n := 0
	for _, v := range e.reader.packs.windows.lru.Values() {
		w := v.val
		for i := range w {
			w[i] ^= 0xff
		}
		n++
	}
	e.reader.packs.mu.Unlock()
	if n == 0 {
		t.Fatal("no window cached")
	}
	if _, err := e.ReadSnapshot(ctx, id, got, 0); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read after the cached window was damaged: %v", err)
	}
}

// TestCopyChunksVerifies: a flush that copies a base's chunks from
// another store (here from the Outpost's to the region's) verifies each
// chunk before storing it again; a damaged one fails the snapshot instead
// of getting a second, trusted copy.
func TestCopyChunksVerifies(t *testing.T) {
	dir := t.TempDir()
	regional, _ := snapstore.OpenDir(filepath.Join(dir, "regional"))
	local, _ := snapstore.OpenDir(filepath.Join(dir, "local"))
	const arn = "arn:aws:outposts:us-east-1:123456789012:outpost/op-0123456789abcdef0"
	eng, err := Open(Options{DataDir: filepath.Join(dir, "data"), SyncInterval: time.Hour,
		SnapshotStore: regional, LocalSnapshotStore: local, OutpostArn: arn, FlushDeadline: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	vi, _ := eng.CreateVolume(ctx, CreateVolumeParams{Size: 1 << 20, BlockSize: 64 << 10})
	h := openHandle(t, eng, vi.ID)
	h.WriteAt(pattern(1, 1<<20), 0)
	h.Close()
	op, _ := eng.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID, OutpostArn: arn})
	waitSnapshot(t, eng, op.ID)
	// Damage every chunk of the Outpost's pack, keeping its index.
	var pk string
	local.List(ctx, "packs/", func(o snapstore.ObjectInfo) error { pk = o.Key; return nil })
	b, err := local.Get(ctx, pk)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(b)/2; i++ {
		b[i] ^= 0x55
	}
	if err := local.Put(ctx, pk, b); err != nil {
		t.Fatal(err)
	}
	freshReader(eng)
	// The regional snapshot builds on the Outpost one: nothing changed,
	// so every chunk is copied.
	s, _ := eng.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID})
	var si SnapshotInfo
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if si, _ = eng.SnapshotInfo(s.ID); si.State != SnapshotPending {
			break
		}
	}
	if si.State != SnapshotError || !strings.Contains(si.StatusMessage, "corrupt") {
		t.Fatalf("snapshot copying damaged chunks: %s (%s), want error", si.State, si.StatusMessage)
	}
}
