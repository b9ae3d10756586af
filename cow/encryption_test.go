package cow

import (
	"bytes"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cowvol/cowvol/cow/snapstore"
	"github.com/cowvol/cowvol/kms"
)

// keyedEnv is an engine with a real local keyring and a directory store
// of its own.
type keyedEnv struct {
	dir, storeDir string
	keys          *kms.Local
	hooks         *hookStore // around the directory store
	eng           *Engine
	direct        bool // Options.DirectIO
}

func newKeyedEnv(t *testing.T) *keyedEnv {
	t.Helper()
	env := &keyedEnv{dir: t.TempDir(), storeDir: t.TempDir(), keys: testKeyring(t)}
	env.eng = env.open(t)
	return env
}

func (env *keyedEnv) open(t *testing.T) *Engine {
	t.Helper()
	st, err := snapstore.OpenDir(env.storeDir)
	if err != nil {
		t.Fatal(err)
	}
	env.hooks = &hookStore{Store: st}
	eng, err := Open(Options{DataDir: env.dir, SnapshotStore: env.hooks, Keys: env.keys, GCGrace: 1, FlushRetryBase: 10 * time.Millisecond, DirectIO: env.direct})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	return eng
}

// restart closes the engine and opens a new one on the same data dir,
// store and keyring: no cache survives.
func (env *keyedEnv) restart(t *testing.T) {
	t.Helper()
	if err := env.eng.Close(); err != nil {
		t.Fatal(err)
	}
	env.eng = env.open(t)
}

// randomBlocks is n bytes no compressor shrinks.
func randomBlocks(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, seed+1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func writeAll(t *testing.T, eng *Engine, id string, p []byte, off int64) {
	t.Helper()
	h := openHandle(t, eng, id)
	if _, err := h.WriteAt(p, off); err != nil {
		t.Fatal(err)
	}
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
	h.Close()
}

func readAll(t *testing.T, eng *Engine, id string, n int) []byte {
	t.Helper()
	h := openHandle(t, eng, id)
	defer h.Close()
	got := make([]byte, n)
	if _, err := h.ReadAt(got, 0); err != nil {
		t.Fatalf("read %s: %v", id, err)
	}
	return got
}

// filesContaining lists the files under dirs that contain any of needles.
func filesContaining(t *testing.T, needles [][]byte, dirs ...string) []string {
	t.Helper()
	var found []string
	for _, dir := range dirs {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, n := range needles {
				if bytes.Contains(b, n) {
					found = append(found, path)
					break
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return found
}

// TestNoPlaintextAtRest: what is written to an encrypted volume appears
// nowhere at rest, in the data dir (data files, Badger) or the snapshot
// store, before and after a snapshot and a restore. The same search on a
// plaintext volume finds it, so the search can fail.
func TestNoPlaintextAtRest(t *testing.T) {
	for _, encrypted := range []bool{false, true} {
		t.Run(map[bool]string{false: "plaintext finds it", true: "encrypted"}[encrypted], func(t *testing.T) {
			env := newKeyedEnv(t)
			const size = 4 << 20
			vi, err := env.eng.CreateVolume(ctx, CreateVolumeParams{Size: size, Encrypted: encrypted})
			if err != nil {
				t.Fatal(err)
			}
			data := randomBlocks(7, size)
			writeAll(t, env.eng, vi.ID, data, 0)
			snapshotAndWait(t, env.eng, vi.ID)
			snaps, _ := env.eng.DescribeSnapshots(ctx)
			rv, err := env.eng.CreateVolume(ctx, CreateVolumeParams{SnapshotID: snaps[0].ID})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(readAll(t, env.eng, rv.ID, size), data) {
				t.Fatal("the restored volume differs")
			}
			env.restart(t) // Badger's memtable to its files
			var needles [][]byte
			for off := 0; off < size; off += 256 << 10 {
				needles = append(needles, data[off+100:off+132])
			}
			found := filesContaining(t, needles, env.dir, env.storeDir)
			switch {
			case encrypted && len(found) > 0:
				t.Fatalf("plaintext of an encrypted volume found at rest in %v", found)
			case !encrypted && len(found) < 2:
				t.Fatalf("plaintext volume: the search found the data only in %v (want the data file and the store)", found)
			}
		})
	}
}

// flipByte inverts one byte of the file at path.
func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// TestEncryptedVolumeDetectsTampering: a byte flipped in an encrypted
// volume's data file, in a sector or in its seal, makes the read fail with
// ErrDataAuth naming the volume, never return altered data; the other
// blocks still read.
func TestEncryptedVolumeDetectsTampering(t *testing.T) {
	const bs = 64 << 10
	for _, tt := range []struct {
		name string
		off  int64 // within block 3's slot
	}{
		{"a sector", 5000},
		{"a seal", bs + 3*sealSize + 10},
		{"a seal's nonce counter", bs + 2*sealSize},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env := newKeyedEnv(t)
			vi, err := env.eng.CreateVolume(ctx, CreateVolumeParams{Size: 1 << 20, Encrypted: true})
			if err != nil {
				t.Fatal(err)
			}
			data := randomBlocks(3, 1<<20)
			writeAll(t, env.eng, vi.ID, data, 0)
			env.restart(t)
			v, _ := env.eng.lookup(vi.ID)
			if err := v.ensurePage(3); err != nil { // the map may still be loading
				t.Fatal(err)
			}
			v.mapMu.Lock()
			slot := v.live.get(3).slot
			v.mapMu.Unlock()
			flipByte(t, env.eng.dataPath(vi.ID), v.slotOffset(slot)+tt.off)

			h := openHandle(t, env.eng, vi.ID)
			got := make([]byte, bs)
			_, err = h.ReadAt(got, 3*bs)
			if !errors.Is(err, ErrDataAuth) || !strings.Contains(err.Error(), vi.ID) {
				t.Fatalf("read of the altered block: %v, want ErrDataAuth naming %s", err, vi.ID)
			}
			if _, err := h.ReadAt(got, 4*bs); err != nil || !bytes.Equal(got, data[4*bs:5*bs]) {
				t.Fatalf("read of an intact block: %v", err)
			}
		})
	}
}

// TestEncryptedSnapshotDetectsTampering: a byte flipped in a stored chunk,
// in a segment or in the manifest of an encrypted snapshot makes reading
// and restoring it fail with an error naming the snapshot.
func TestEncryptedSnapshotDetectsTampering(t *testing.T) {
	for _, tt := range []struct {
		name   string
		prefix string // the kind of object altered
		off    func(b []byte) int
	}{
		{"a chunk", "packs/", func(b []byte) int { return 40 }},
		{"a segment", "segments/", func(b []byte) int { return len(b) - 20 }},
		{"the manifest's description", "snapshots/", func(b []byte) int { return bytes.Index(b, []byte(`"before"`)) + 2 }},
		{"the manifest's sealed part", "snapshots/", func(b []byte) int { return bytes.Index(b, []byte(`"sealed":"`)) + 20 }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env := newKeyedEnv(t)
			vi, err := env.eng.CreateVolume(ctx, CreateVolumeParams{Size: 1 << 20, Encrypted: true})
			if err != nil {
				t.Fatal(err)
			}
			writeAll(t, env.eng, vi.ID, randomBlocks(5, 1<<20), 0)
			si, err := env.eng.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID, Description: "before"})
			if err != nil {
				t.Fatal(err)
			}
			waitSnapshot(t, env.eng, si.ID)
			env.restart(t)
			var target string
			filepath.WalkDir(env.storeDir, func(path string, d fs.DirEntry, err error) error {
				rel, _ := filepath.Rel(env.storeDir, path)
				if err == nil && !d.IsDir() && strings.HasPrefix(rel, tt.prefix) && target == "" {
					target = path
				}
				return err
			})
			b, err := os.ReadFile(target)
			if err != nil {
				t.Fatalf("no %s object: %v", tt.prefix, err)
			}
			flipByte(t, target, int64(tt.off(b)))

			buf := make([]byte, 1<<20)
			_, err = env.eng.ReadSnapshot(ctx, si.ID, buf, 0)
			if err == nil || !strings.Contains(err.Error(), si.ID) {
				t.Fatalf("read of the altered snapshot: %v, want an error naming %s", err, si.ID)
			}
			// A restore fails too: at once, or when its blocks are read.
			rv, err := env.eng.CreateVolume(ctx, CreateVolumeParams{SnapshotID: si.ID})
			if err == nil {
				h := openHandle(t, env.eng, rv.ID)
				_, err = h.ReadAt(buf, 0)
			}
			if err == nil || !strings.Contains(err.Error(), si.ID) {
				t.Fatalf("restore of the altered snapshot: %v, want an error naming %s", err, si.ID)
			}
		})
	}
}

// TestEncryptionInheritance: the lineage rules of EC2. A snapshot of an
// encrypted volume is encrypted under the volume's data key; a volume from
// it too; an encrypted volume from a plaintext snapshot gets a new data key
// and its snapshots are encrypted and read back right; bad key parameters
// are refused and change nothing.
func TestEncryptionInheritance(t *testing.T) {
	env := newKeyedEnv(t)
	eng := env.eng
	const size = 2 << 20
	data := randomBlocks(11, size)
	other, err := env.keys.CreateKey("another key", "alias/other")
	if err != nil {
		t.Fatal(err)
	}

	enc, err := eng.CreateVolume(ctx, CreateVolumeParams{Size: size, Encrypted: true})
	if err != nil {
		t.Fatal(err)
	}
	def, err := env.keys.DescribeKey(kms.DefaultAlias)
	if err != nil || !enc.Encrypted || enc.KMSKeyARN != def.ARN || enc.DataKeyID == "" {
		t.Fatalf("encrypted volume with no key named: %+v (default key %+v, %v)", enc, def, err)
	}
	writeAll(t, eng, enc.ID, data, 0)
	encSnap := snapshotInfo(t, eng, enc.ID)
	if !encSnap.Encrypted || encSnap.KMSKeyARN != enc.KMSKeyARN || encSnap.DataKeyID != enc.DataKeyID {
		t.Fatalf("snapshot of an encrypted volume: %+v, want the volume's key and lineage %s", encSnap, enc.DataKeyID)
	}
	child, err := eng.CreateVolume(ctx, CreateVolumeParams{SnapshotID: encSnap.ID})
	if err != nil {
		t.Fatal(err)
	}
	if !child.Encrypted || child.DataKeyID != enc.DataKeyID {
		t.Fatalf("volume from an encrypted snapshot: %+v, want lineage %s", child, enc.DataKeyID)
	}
	if !bytes.Equal(readAll(t, eng, child.ID, size), data) {
		t.Fatal("volume from an encrypted snapshot differs")
	}

	plain, err := eng.CreateVolume(ctx, CreateVolumeParams{Size: size})
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, eng, plain.ID, data, 0)
	plainSnap := snapshotInfo(t, eng, plain.ID)
	up, err := eng.CreateVolume(ctx, CreateVolumeParams{SnapshotID: plainSnap.ID, Encrypted: true, KMSKeyID: "alias/other"})
	if err != nil {
		t.Fatal(err)
	}
	if !up.Encrypted || up.KMSKeyARN != other.ARN || up.DataKeyID == enc.DataKeyID {
		t.Fatalf("encrypted volume from a plaintext snapshot: %+v, want a new lineage under %s", up, other.ARN)
	}
	// Its first snapshot recodes the plaintext base: every block, also
	// those never read or written, comes back under the new key.
	writeAll(t, eng, up.ID, data[:4096], size-4096)
	upSnap := snapshotInfo(t, eng, up.ID)
	env.restart(t)
	eng = env.eng
	want := bytes.Clone(data)
	copy(want[size-4096:], data[:4096])
	got := make([]byte, size)
	if _, err := eng.ReadSnapshot(ctx, upSnap.ID, got, 0); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("first snapshot of an encrypted volume from a plaintext snapshot: %v, equal %v", err, bytes.Equal(got, want))
	}
	if upSnap.DataKeyID != up.DataKeyID {
		t.Fatalf("its snapshot has lineage %s, want %s", upSnap.DataKeyID, up.DataKeyID)
	}

	for _, tt := range []struct {
		name string
		p    CreateVolumeParams
		want error
	}{
		{"KmsKeyId without Encrypted", CreateVolumeParams{Size: size, KMSKeyID: "alias/other"}, ErrParameterDependency},
		{"a key that does not exist", CreateVolumeParams{Size: size, Encrypted: true, KMSKeyID: "alias/nope"}, kms.ErrKeyNotFound},
		{"a malformed key ID", CreateVolumeParams{Size: size, Encrypted: true, KMSKeyID: "not a key"}, kms.ErrInvalidKeyID},
		{"another key for an encrypted snapshot", CreateVolumeParams{SnapshotID: encSnap.ID, KMSKeyID: "alias/other"}, ErrInvalidParameter},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := eng.DescribeVolumes(ctx)
			if _, err := eng.CreateVolume(ctx, tt.p); !errors.Is(err, tt.want) {
				t.Fatalf("CreateVolume(%+v) = %v, want %v", tt.p, err, tt.want)
			}
			if after, _ := eng.DescribeVolumes(ctx); len(after) != len(before) {
				t.Fatal("a refused CreateVolume made a volume")
			}
		})
	}
}

// snapshotInfo snapshots volume id, waits for it, and describes it.
func snapshotInfo(t *testing.T, eng *Engine, id string) SnapshotInfo {
	t.Helper()
	si, err := eng.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: id})
	if err != nil {
		t.Fatal(err)
	}
	waitSnapshot(t, eng, si.ID)
	if si, err = eng.SnapshotInfo(si.ID); err != nil {
		t.Fatal(err)
	}
	return si
}

// TestDisabledKeyMakesDataUnreadable: once its KMS key is disabled, an
// encrypted volume reads and writes nothing and its snapshot can be neither
// read nor restored, each with an error naming the key; enabled again, all
// of it works as before.
func TestDisabledKeyMakesDataUnreadable(t *testing.T) {
	env := newKeyedEnv(t)
	eng := env.eng
	key, err := env.keys.CreateKey("to disable", "alias/revocable")
	if err != nil {
		t.Fatal(err)
	}
	vi, err := eng.CreateVolume(ctx, CreateVolumeParams{Size: 1 << 20, Encrypted: true, KMSKeyID: "alias/revocable"})
	if err != nil {
		t.Fatal(err)
	}
	data := randomBlocks(13, 1<<20)
	writeAll(t, eng, vi.ID, data, 0)
	si := snapshotInfo(t, eng, vi.ID)
	h := openHandle(t, eng, vi.ID) // open across the change, as a loop device holds it

	if _, err := env.keys.SetEnabled(key.ARN, false); err != nil {
		t.Fatal(err)
	}
	eng.KeysChanged()
	buf := make([]byte, 1<<20)
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, kms.ErrKeyDisabled) || !strings.Contains(err.Error(), key.ARN) {
			t.Errorf("%s with the key disabled: %v, want kms.ErrKeyDisabled naming %s", what, err, key.ARN)
		}
	}
	_, err = h.ReadAt(buf, 0)
	check("read", err)
	_, err = h.WriteAt(buf[:4096], 0)
	check("write", err)
	_, err = eng.ReadSnapshot(ctx, si.ID, buf, 0)
	check("read the snapshot", err)
	_, err = eng.CreateVolume(ctx, CreateVolumeParams{SnapshotID: si.ID})
	check("restore the snapshot", err)
	_, err = eng.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID})
	if err != nil {
		t.Fatalf("CreateSnapshot is a metadata fork and needs no key: %v", err)
	}

	if _, err := env.keys.SetEnabled(key.ARN, true); err != nil {
		t.Fatal(err)
	}
	eng.KeysChanged()
	if _, err := h.ReadAt(buf, 0); err != nil || !bytes.Equal(buf, data) {
		t.Fatalf("read with the key enabled again: %v", err)
	}
	if _, err := eng.ReadSnapshot(ctx, si.ID, buf, 0); err != nil || !bytes.Equal(buf, data) {
		t.Fatalf("read the snapshot with the key enabled again: %v", err)
	}
}

// TestCopySnapshot: copies read as their source, with the lineage EC2
// gives them; a plaintext copy in one store shares the source's segments;
// the source can be deleted while a copy is pending.
func TestCopySnapshot(t *testing.T) {
	env := newKeyedEnv(t)
	eng := env.eng
	const size = 2 << 20
	data := randomBlocks(17, size)
	other, _ := env.keys.CreateKey("", "alias/copies")
	plain, _ := eng.CreateVolume(ctx, CreateVolumeParams{Size: size})
	writeAll(t, eng, plain.ID, data, 0)
	plainSnap := snapshotInfo(t, eng, plain.ID)
	enc, _ := eng.CreateVolume(ctx, CreateVolumeParams{Size: size, Encrypted: true})
	writeAll(t, eng, enc.ID, data, 0)
	encSnap := snapshotInfo(t, eng, enc.ID)

	for _, tt := range []struct {
		name      string
		p         CopySnapshotParams
		encrypted bool
		key       string // the copy's KMS key ARN
	}{
		{"plaintext", CopySnapshotParams{SourceSnapshotID: plainSnap.ID, Description: "copy"}, false, ""},
		{"plaintext to encrypted", CopySnapshotParams{SourceSnapshotID: plainSnap.ID, Encrypted: true}, true, encSnap.KMSKeyARN},
		{"encrypted, same key", CopySnapshotParams{SourceSnapshotID: encSnap.ID}, true, encSnap.KMSKeyARN},
		{"encrypted to another key", CopySnapshotParams{SourceSnapshotID: encSnap.ID, Encrypted: true, KMSKeyID: "alias/copies"}, true, other.ARN},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cp, err := eng.CopySnapshot(ctx, tt.p)
			if err != nil {
				t.Fatal(err)
			}
			waitSnapshot(t, eng, cp.ID)
			cp, _ = eng.SnapshotInfo(cp.ID)
			if cp.VolumeID != CopyVolumeID || cp.Encrypted != tt.encrypted || cp.KMSKeyARN != tt.key || cp.VolumeSize != size {
				t.Fatalf("copy: %+v", cp)
			}
			if tt.encrypted && (cp.DataKeyID == encSnap.DataKeyID || cp.DataKeyID == "") {
				t.Fatalf("an encrypted copy has lineage %q; want one of its own", cp.DataKeyID)
			}
			got := make([]byte, size)
			if _, err := eng.ReadSnapshot(ctx, cp.ID, got, 0); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("read the copy: %v", err)
			}
			rv, err := eng.CreateVolume(ctx, CreateVolumeParams{SnapshotID: cp.ID})
			if err != nil || rv.Encrypted != tt.encrypted {
				t.Fatalf("restore the copy: %+v %v", rv, err)
			}
			if !bytes.Equal(readAll(t, eng, rv.ID, size), data) {
				t.Fatal("a volume from the copy differs")
			}
		})
	}

	// The source deleted and collected while the copy is pending: the
	// copy's hold keeps its data, and the copy completes. (Its flush fails
	// to take its lease until then, so the deletion runs between attempts.)
	src := snapshotInfo(t, eng, plain.ID)
	tried := make(chan struct{}, 100)
	env.hooks.setPut(func(key string) error {
		if strings.HasPrefix(key, "leases/") {
			tried <- struct{}{}
			return errors.New("injected: lease refused")
		}
		return nil
	})
	cp, err := eng.CopySnapshot(ctx, CopySnapshotParams{SourceSnapshotID: src.ID, Encrypted: true})
	if err != nil {
		t.Fatal(err)
	}
	<-tried
	if err := eng.DeleteSnapshot(ctx, src.ID); err != nil {
		t.Fatal(err)
	}
	if err := collectOnce(eng); err != nil {
		t.Fatal(err)
	}
	env.hooks.setPut(nil)
	waitSnapshot(t, eng, cp.ID)
	got := make([]byte, size)
	if _, err := eng.ReadSnapshot(ctx, cp.ID, got, 0); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read a copy whose source was deleted: %v", err)
	}

	for _, tt := range []struct {
		name string
		p    CopySnapshotParams
		want error
	}{
		{"no such snapshot", CopySnapshotParams{SourceSnapshotID: "snap-00000000000000000"}, ErrSnapshotNotFound},
		{"KmsKeyId without Encrypted", CopySnapshotParams{SourceSnapshotID: plainSnap.ID, KMSKeyID: "alias/copies"}, ErrParameterDependency},
		{"a disabled key", CopySnapshotParams{SourceSnapshotID: plainSnap.ID, Encrypted: true, KMSKeyID: "alias/disabled"}, kms.ErrKeyDisabled},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.want == kms.ErrKeyDisabled {
				k, _ := env.keys.CreateKey("", "alias/disabled")
				env.keys.SetEnabled(k.ARN, false)
			}
			before, _ := eng.DescribeSnapshots(ctx)
			if _, err := eng.CopySnapshot(ctx, tt.p); !errors.Is(err, tt.want) {
				t.Fatalf("CopySnapshot(%+v) = %v, want %v", tt.p, err, tt.want)
			}
			if after, _ := eng.DescribeSnapshots(ctx); len(after) != len(before) {
				t.Fatal("a refused CopySnapshot made a snapshot")
			}
		})
	}
}

// TestChunksDedupeWithinALineageOnly: equal blocks in one lineage are one
// chunk; the same blocks in another lineage share nothing with it.
func TestChunksDedupeWithinALineageOnly(t *testing.T) {
	env := newKeyedEnv(t)
	eng := env.eng
	const size = 1 << 20
	data := randomBlocks(19, size)
	packs := func() map[string]bool {
		m := map[string]bool{}
		filepath.WalkDir(filepath.Join(env.storeDir, "packs"), func(path string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				m[filepath.Base(path)] = true
			}
			return nil
		})
		return m
	}
	a, _ := eng.CreateVolume(ctx, CreateVolumeParams{Size: size, Encrypted: true})
	writeAll(t, eng, a.ID, data, 0)
	sa := snapshotInfo(t, eng, a.ID)
	afterA := len(packs())
	// The same lineage: a volume from a's snapshot, rewritten with the
	// same content, snapshots without a new chunk.
	b, _ := eng.CreateVolume(ctx, CreateVolumeParams{SnapshotID: sa.ID})
	writeAll(t, eng, b.ID, data, 0)
	snapshotInfo(t, eng, b.ID)
	if n := len(packs()); n != afterA {
		t.Fatalf("a snapshot of the same content in the same lineage stored %d new packs", n-afterA)
	}
	// Another lineage with the same content: its own chunks.
	c, _ := eng.CreateVolume(ctx, CreateVolumeParams{Size: size, Encrypted: true})
	writeAll(t, eng, c.ID, data, 0)
	snapshotInfo(t, eng, c.ID)
	if n := len(packs()); n <= afterA {
		t.Fatal("a snapshot in another lineage stored no chunk of its own")
	}
}
