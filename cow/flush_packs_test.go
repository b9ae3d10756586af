package cow

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cowvol/cowvol/cow/snapstore"
)

// randomBytes is n bytes of seeded random (incompressible) data.
func randomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, 0x9ac4))
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// storeKeys lists the keys under prefix in st.
func storeKeys(t *testing.T, st snapstore.Store, prefix string) []string {
	t.Helper()
	var keys []string
	if err := st.List(ctx, prefix, func(o snapstore.ObjectInfo) error { keys = append(keys, o.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	return keys
}

// waitSettled waits until snapshot id is no longer pending.
func waitSettled(t *testing.T, eng *Engine, id string) SnapshotInfo {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		si, err := eng.SnapshotInfo(id)
		if err != nil {
			t.Fatal(err)
		}
		if si.State != SnapshotPending {
			return si
		}
		if time.Now().After(deadline) {
			t.Fatalf("snapshot %s still pending: %s", id, si.StatusMessage)
		}
	}
}

// TestFailedAttemptDeletesItsPacks: a flush attempt that fails before it
// sends its manifest deletes the packs it stored, and only those: the
// packs of the base it deduplicated against stay, and so do the packs of an
// attempt whose manifest was sent (the retry adopts it).
func TestFailedAttemptDeletesItsPacks(t *testing.T) {
	const size, bs = 24 << 20, 64 << 10
	tests := []struct {
		name string
		// fail decides whether the flush's put of key fails; n counts
		// the puts of keys with the same prefix so far.
		fail      func(key string, n int64) bool
		wantState SnapshotState
	}{
		{"segment put fails", func(key string, n int64) bool { return strings.HasPrefix(key, "segments/") }, SnapshotError},
		{"second pack put fails", func(key string, n int64) bool { return strings.HasPrefix(key, "packs/") && n >= 1 }, SnapshotError},
		{"hold put fails once, after the manifest", func(key string, n int64) bool { return strings.HasPrefix(key, "holds/") && n == 0 }, SnapshotCompleted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := sharedDir(t)
			hs := &hookStore{Store: st}
			eng, err := Open(Options{DataDir: t.TempDir(), SyncInterval: time.Hour, SnapshotStore: hs,
				FlushDeadline: time.Second, FlushRetryBase: 10 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer eng.Close()
			vi, _ := eng.CreateVolume(ctx, CreateVolumeParams{Size: size, BlockSize: bs})
			h := openHandle(t, eng, vi.ID)
			base := randomBytes(1, size)
			h.WriteAt(base, 0)
			s1, _ := eng.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID})
			waitSnapshot(t, eng, s1.ID)
			basePacks := storeKeys(t, st, "packs/")

			// Every block rewritten: one in four with its old content
			// (deduplicated against the base), the rest with new data
			// (18 MiB: three new packs).
			now := slices.Clone(base)
			fresh := randomBytes(2, size)
			for off := 0; off < size; off += bs {
				if off/bs%4 != 0 {
					copy(now[off:off+bs], fresh[off:off+bs])
				}
			}
			h.WriteAt(now, 0)
			var counts [3]atomic.Int64
			hs.setPut(func(key string) error {
				i := slices.IndexFunc([]string{"segments/", "packs/", "holds/"}, func(p string) bool { return strings.HasPrefix(key, p) })
				if i >= 0 && tt.fail(key, counts[i].Add(1)-1) {
					return errInjected
				}
				return nil
			})
			s2, _ := eng.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID})
			si := waitSettled(t, eng, s2.ID)
			hs.setPut(nil)
			if si.State != tt.wantState {
				t.Fatalf("snapshot %s: %s (%s), want %s", s2.ID, si.State, si.StatusMessage, tt.wantState)
			}
			packs := storeKeys(t, st, "packs/")
			if tt.wantState == SnapshotError {
				if !slices.Equal(packs, basePacks) {
					t.Errorf("packs after the failed snapshot: %d %v, want the base's %d %v", len(packs), packs, len(basePacks), basePacks)
				}
			}
			got := make([]byte, size)
			if _, err := eng.ReadSnapshot(ctx, s1.ID, got, 0); err != nil || !bytes.Equal(got, base) {
				t.Fatalf("the base snapshot after the failure: %v, differs at %d", err, firstDiff(got, base))
			}
			// The next snapshot (or the adopted one) holds the content.
			last := s2.ID
			if tt.wantState == SnapshotError {
				s3, _ := eng.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID})
				waitSnapshot(t, eng, s3.ID)
				last = s3.ID
			}
			if _, err := eng.ReadSnapshot(ctx, last, got, 0); err != nil || !bytes.Equal(got, now) {
				t.Fatalf("snapshot %s: %v, differs at %d", last, err, firstDiff(got, now))
			}
		})
	}
}
