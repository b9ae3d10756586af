package cow

import (
	"bytes"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cowvol/cowvol/cow/snapfmt"
	"github.com/cowvol/cowvol/cow/snapstore"
)

// A damaged manifest or hold fails every read of it, loudly: reading the
// snapshot, restoring a volume from it, the next flush of a volume whose
// base it is, the catalogue, and garbage collection, whose mark stops
// before it deletes anything. These tests damage the objects in a real
// directory store, one byte at a time.

// manifestDamage is one change to a stored manifest: the byte skip bytes
// into the first occurrence of at is changed by to.
type manifestDamage struct {
	name string
	at   string
	skip int
	to   func(byte) byte
}

// set returns a change to c (most rows are one bit flipped).
func set(c byte) func(byte) byte { return func(byte) byte { return c } }

// nextHex changes a hex digit to the next one: still a hex digit.
func nextHex(c byte) byte { return "0123456789abcdef"[(strings.IndexByte("0123456789abcdef", c)+1)%16] }

// apply returns b damaged; the test fails if b has no such place.
func (d manifestDamage) apply(t *testing.T, b []byte) []byte {
	t.Helper()
	i := bytes.Index(b, []byte(d.at))
	if i < 0 || i+d.skip >= len(b) {
		t.Fatalf("%s: no %q in the stored manifest %s", d.name, d.at, b)
	}
	out := slices.Clone(b)
	out[i+d.skip] = d.to(out[i+d.skip])
	if bytes.Equal(out, b) {
		t.Fatalf("%s: changes nothing", d.name)
	}
	return out
}

// plaintextDamage: one change to each field that says where data is, what
// it is, and to the format's own fields. The first is the reproduction:
// segment 0 becomes segment 1, whose blocks are 4 GiB further on.
var plaintextDamage = []manifestDamage{
	{"segment index 0 to 1", `"i":0,`, 4, set('1')},
	{"a hex digit of a segment key", `"key":"segments/`, len(`"key":"segments/xx/`) + 10, nextHex},
	{"a segment's block count", `"n":16}`, 5, set('7')},
	{"volumeSize", `"volumeSize":8`, len(`"volumeSize":`), set('9')},
	{"blockSize", `"blockSize":65536`, len(`"blockSize":65536`) - 1, set('7')},
	{"the segments key", `"segments":[`, len(`"segments"`) - 2, set('r')},
	{"version 2 to 3", `"version":2,`, len(`"version":`), set('3')},
	{"a checksum digit", `"checksum":"`, len(`"checksum":"`) + 10, nextHex},
}

// damagedFixture is a volume with one completed snapshot on engine a, and
// a volume restored from it on engine b (background stopped: it never
// hydrates, every read goes through its hold), on one directory store.
type damagedFixture struct {
	st       snapstore.Store
	a, b     *Engine
	vol      string // on a; its base is holds/<vol>/<snap>
	snap     string
	restored string // on b
	data     []byte // the first MiB of vol and snap; the rest is zeros
	objects  []string
}

// An 8 GiB volume, so that segment index 1 exists.
const damagedVolumeSize = 8 << 30

func newDamagedFixture(t *testing.T) *damagedFixture {
	t.Helper()
	f := &damagedFixture{st: sharedDir(t), data: pattern(7, 1<<20)}
	var err error
	f.a, err = Open(Options{DataDir: filepath.Join(t.TempDir(), "a"), SyncInterval: time.Hour, SnapshotStore: f.st,
		AccountID: "111111111111", GCGrace: time.Nanosecond, FlushDeadline: 200 * time.Millisecond, FlushRetryBase: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.a.Close() })
	f.b = openSharedEngine(t, f.st, "111111111111", time.Nanosecond)
	f.b.StopBackground()

	vi, err := f.a.CreateVolume(ctx, CreateVolumeParams{Size: damagedVolumeSize, BlockSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	f.vol = vi.ID
	writeAll(t, f.a, f.vol, f.data, 0)
	si, err := f.a.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: f.vol})
	if err != nil {
		t.Fatal(err)
	}
	waitSnapshot(t, f.a, si.ID)
	f.snap = si.ID
	rv, err := f.b.CreateVolume(ctx, CreateVolumeParams{SnapshotID: f.snap})
	if err != nil {
		t.Fatal(err)
	}
	f.restored = rv.ID
	f.objects = f.dataObjects(t)
	return f
}

// dataObjects lists the store's segments, packs and chunks.
func (f *damagedFixture) dataObjects(t *testing.T) []string {
	t.Helper()
	var keys []string
	for _, prefix := range []string{"segments/", "packs/", "chunks/"} {
		err := f.st.List(ctx, prefix, func(o snapstore.ObjectInfo) error { keys = append(keys, o.Key); return nil })
		if err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

// damage replaces the object under key with d applied to it, and empties
// both engines' caches.
func (f *damagedFixture) damage(t *testing.T, key string, d manifestDamage) {
	t.Helper()
	b, err := f.st.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.st.Put(ctx, key, d.apply(t, b)); err != nil {
		t.Fatal(err)
	}
	freshReader(f.a)
	freshReader(f.b)
}

// wantCorrupt fails t unless err is ErrCorrupt and names key and the store.
func wantCorrupt(t *testing.T, what string, err error, key string, st snapstore.Store) {
	t.Helper()
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), st.String()) {
		t.Errorf("%s: %v, want ErrCorrupt naming %s in %s", what, err, key, st)
	}
}

// checkCollectionRefused: a collection round fails naming key and
// deletes nothing (the grace period is 1 ns: whatever the mark missed
// would go).
func (f *damagedFixture) checkCollectionRefused(t *testing.T, e *Engine, key string) {
	t.Helper()
	time.Sleep(10 * time.Millisecond) // past the grace period by any clock
	wantCorrupt(t, "garbage collection", collectOnce(e), key, f.st)
	left := f.dataObjects(t)
	for _, k := range f.objects {
		if !slices.Contains(left, k) {
			t.Errorf("garbage collection deleted %s", k)
		}
	}
}

// TestDamagedManifestFailsReads: the snapshot's manifest damaged, reading
// the snapshot (at its first block and 4 GiB on), restoring a volume, the
// catalogue and a collection all fail naming the manifest, and no hold is
// left of the refused restore.
func TestDamagedManifestFailsReads(t *testing.T) {
	for _, d := range plaintextDamage {
		t.Run(d.name, func(t *testing.T) {
			f := newDamagedFixture(t)
			key := snapfmt.ManifestKey(f.snap)
			f.damage(t, key, d)
			buf := make([]byte, 64<<10)
			for _, off := range []int64{0, 4 << 30} {
				n, err := f.a.ReadSnapshot(ctx, f.snap, buf, off)
				wantCorrupt(t, "read of the snapshot", err, key, f.st)
				if n != 0 {
					t.Errorf("read of the snapshot at %d returned %d bytes", off, n)
				}
			}
			var holds []string
			f.st.List(ctx, "holds/", func(o snapstore.ObjectInfo) error { holds = append(holds, o.Key); return nil })
			_, err := f.a.CreateVolume(ctx, CreateVolumeParams{SnapshotID: f.snap})
			wantCorrupt(t, "restore", err, key, f.st)
			var after []string
			f.st.List(ctx, "holds/", func(o snapstore.ObjectInfo) error { after = append(after, o.Key); return nil })
			if !slices.Equal(holds, after) {
				t.Errorf("holds after the refused restore: %v, want %v", after, holds)
			}
			_, err = f.b.catalog.fetch(ctx, StoreRegional, f.st, f.snap)
			wantCorrupt(t, "catalogue", err, key, f.st)
			f.checkCollectionRefused(t, f.a, key)
		})
	}
}

// TestDamagedHoldFailsFlushAndRestore: a volume's base hold damaged, its
// next snapshot fails (naming the hold) instead of completing without the
// base's data; a restored volume whose hold is damaged fails its reads;
// a collection fails naming the hold and deletes nothing.
func TestDamagedHoldFailsFlushAndRestore(t *testing.T) {
	for _, d := range plaintextDamage {
		t.Run(d.name, func(t *testing.T) {
			f := newDamagedFixture(t)
			base := snapfmt.HoldKey(f.vol, f.snap)
			f.damage(t, base, d)
			// One block changes; the rest of the next snapshot is the
			// base's.
			writeAll(t, f.a, f.vol, pattern(8, 64<<10), 2<<20)
			si, err := f.a.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: f.vol})
			if err != nil {
				t.Fatal(err)
			}
			var info SnapshotInfo
			for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
				if info, _ = f.a.SnapshotInfo(si.ID); info.State != SnapshotPending {
					break
				}
			}
			if info.State != SnapshotError || !strings.Contains(info.StatusMessage, base) || !strings.Contains(info.StatusMessage, "corrupt") {
				got := make([]byte, len(f.data))
				f.a.ReadSnapshot(ctx, si.ID, got, 0)
				t.Errorf("snapshot on a damaged base: %s (%q), want error naming %s; its first MiB equal to the volume's: %v",
					info.State, info.StatusMessage, base, bytes.Equal(got, f.data))
			}
			if ok, _ := f.st.Exists(ctx, snapfmt.ManifestKey(si.ID)); ok {
				t.Errorf("the failed snapshot's manifest is in the store")
			}
			f.checkCollectionRefused(t, f.a, base)

			hold := snapfmt.HoldKey(f.restored, f.snap)
			f.damage(t, hold, d)
			h := openHandle(t, f.b, f.restored)
			defer h.Close()
			buf := make([]byte, 64<<10)
			n, err := h.ReadAt(buf, 0)
			wantCorrupt(t, "read of the restored volume", err, hold, f.st)
			if n != 0 {
				t.Errorf("read of the restored volume returned %d bytes", n)
			}
		})
	}
}

// encryptedDamage: changes to an encrypted manifest's clear part, which
// collectors read without the key. A reference damaged, or the refs key
// (the list then reads as empty), would have a collector delete the
// snapshot's data.
var encryptedDamage = []manifestDamage{
	{"a hex digit of a reference", `"refs":["segments/`, len(`"refs":["segments/xx/`) + 10, nextHex},
	{"the refs key", `"refs":[`, len(`"refs"`) - 2, set('r')},
	{"the description", `"description":"before"`, len(`"description":"`), set('c')},
	{"a checksum digit", `"checksum":"`, len(`"checksum":"`) + 63, nextHex},
}

// TestDamagedEncryptedManifestFailsCollection: an encrypted snapshot's
// manifest damaged in its clear part, a collection fails naming it and
// deletes nothing, and so do a read and a restore.
func TestDamagedEncryptedManifestFailsCollection(t *testing.T) {
	for _, d := range encryptedDamage {
		t.Run(d.name, func(t *testing.T) {
			env := newKeyedEnv(t)
			st := env.hooks.Store
			vi, err := env.eng.CreateVolume(ctx, CreateVolumeParams{Size: 1 << 20, Encrypted: true})
			if err != nil {
				t.Fatal(err)
			}
			writeAll(t, env.eng, vi.ID, randomBlocks(3, 1<<20), 0)
			si, err := env.eng.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID, Description: "before"})
			if err != nil {
				t.Fatal(err)
			}
			waitSnapshot(t, env.eng, si.ID)
			// Only the manifest holds the data: no volume, no hold.
			if err := env.eng.DeleteVolume(ctx, vi.ID); err != nil {
				t.Fatal(err)
			}
			f := &damagedFixture{st: st, a: env.eng, b: env.eng}
			f.objects = f.dataObjects(t)
			key := snapfmt.ManifestKey(si.ID)
			f.damage(t, key, d)
			f.checkCollectionRefused(t, env.eng, key)
			buf := make([]byte, 64<<10)
			_, err = env.eng.ReadSnapshot(ctx, si.ID, buf, 0)
			wantCorrupt(t, "read of the snapshot", err, key, st)
			_, err = env.eng.CreateVolume(ctx, CreateVolumeParams{SnapshotID: si.ID})
			wantCorrupt(t, "restore", err, key, st)
		})
	}
}
