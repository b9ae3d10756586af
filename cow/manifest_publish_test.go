package cow

import (
	"bytes"
	"crypto/sha256"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cowvol/cowvol/cow/snapfmt"
)

// waitSnapshotState waits until snapshot id leaves pending.
func waitSnapshotState(t *testing.T, eng *Engine, id string) SnapshotInfo {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		si, err := eng.SnapshotInfo(id)
		if err != nil {
			t.Fatalf("snapshot %s: %v", id, err)
		}
		if si.State != SnapshotPending {
			return si
		}
		if time.Now().After(deadline) {
			t.Fatalf("snapshot %s still pending after 30s", id)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestPublishRefusesForeignManifest: flush and CopySnapshot follow one
// rule (manifestPublisher) for an object already stored under the
// snapshot's manifest key that is not an earlier attempt's manifest of
// this snapshot: a valid one that names another snapshot fails the
// snapshot with an error naming the key and what is wrong, before any pack
// is uploaded, and the flush never stores its manifest over it; one that
// does not decode (a torn put: no reader can have used it) is replaced.
// (Adopting an earlier attempt's own manifest: TestFailedAttemptDeletesItsPacks and
// TestRetriedFlushAdoptsStoredManifest.) The object is planted at the
// injection point of the flush's look-up, the store's Get of the key.
func TestPublishRefusesForeignManifest(t *testing.T) {
	other, err := snapfmt.EncodeManifest(nil, &snapfmt.Manifest{SnapshotID: "snap-0aaaaaaaaaaaaaaaa", VolumeID: "vol-0aaaaaaaaaaaaaaaa", VolumeSize: 1 << 20, BlockSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	damaged := []byte(`{"version":2,"chec`)
	tests := []struct {
		name    string
		copy    bool
		plant   []byte // the object under the key; nil: none
		wantErr string // "": completes
	}{
		{"flush, another snapshot's manifest", false, other, "names snapshot snap-0aaaaaaaaaaaaaaaa"},
		{"copy, another snapshot's manifest", true, other, "names snapshot snap-0aaaaaaaaaaaaaaaa"},
		{"flush, a damaged manifest", false, damaged, ""},
		{"copy, a damaged manifest", true, damaged, ""},
		{"flush, none", false, nil, ""},
		{"copy, none", true, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs := &hookStore{Store: sharedDir(t)}
			eng, err := Open(Options{DataDir: filepath.Join(t.TempDir(), "data"), SyncInterval: time.Hour, SnapshotStore: hs, Keys: testKeyring(t), FlushDeadline: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { eng.Close() })
			vi, err := eng.CreateVolume(ctx, CreateVolumeParams{Size: 1 << 20, BlockSize: 4096})
			if err != nil {
				t.Fatal(err)
			}
			h := openHandle(t, eng, vi.ID)
			if _, err := h.WriteAt(pattern(3, 1<<20), 0); err != nil {
				t.Fatal(err)
			}
			src, err := eng.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID})
			if err != nil {
				t.Fatal(err)
			}
			waitSnapshot(t, eng, src.ID)

			var mu sync.Mutex
			var target string // the manifest key the flush looked up
			var puts, packs int
			armed := true
			hs.setGet(func(key string) {
				mu.Lock()
				defer mu.Unlock()
				if !armed || !strings.HasPrefix(key, snapfmt.SnapshotPrefix) || key == snapfmt.ManifestKey(src.ID) {
					return
				}
				if _, ok := snapfmt.ParseManifestKey(key); !ok {
					return
				}
				armed, target = false, key
				if tt.plant != nil {
					if err := hs.Store.Put(ctx, key, tt.plant); err != nil {
						t.Errorf("plant: %v", err)
					}
				}
			})
			hs.setPut(func(key string) error {
				mu.Lock()
				defer mu.Unlock()
				switch {
				case armed:
				case key == target:
					puts++
				case strings.HasPrefix(key, snapfmt.PackPrefix):
					packs++
				}
				return nil
			})
			var id string
			if tt.copy {
				// Into another lineage: the copy uploads packs.
				cp, err := eng.CopySnapshot(ctx, CopySnapshotParams{SourceSnapshotID: src.ID, Encrypted: true})
				if err != nil {
					t.Fatal(err)
				}
				id = cp.ID
			} else {
				if _, err := h.WriteAt(pattern(4, 1<<20), 0); err != nil {
					t.Fatal(err)
				}
				s, err := eng.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID})
				if err != nil {
					t.Fatal(err)
				}
				id = s.ID
			}
			si := waitSnapshotState(t, eng, id)
			mu.Lock()
			defer mu.Unlock()
			if target != snapfmt.ManifestKey(id) {
				t.Fatalf("the flush looked up %q, want %q", target, snapfmt.ManifestKey(id))
			}
			if tt.wantErr == "" {
				if si.State != SnapshotCompleted || puts != 1 || packs == 0 {
					t.Fatalf("state %s (%s), %d manifest puts, %d packs; want completed, 1, some", si.State, si.StatusMessage, puts, packs)
				}
				return
			}
			if si.State != SnapshotError || !strings.Contains(si.StatusMessage, tt.wantErr) || !strings.Contains(si.StatusMessage, target) {
				t.Fatalf("state %s (%q), want error naming %s and %q", si.State, si.StatusMessage, target, tt.wantErr)
			}
			if puts != 0 || packs != 0 {
				t.Fatalf("the flush stored its manifest over the one it found (%d puts) or uploaded %d packs first", puts, packs)
			}
			// The failed snapshot's clean-up (done once the engine has
			// stopped) leaves the manifest it could not adopt: not its own.
			mu.Unlock()
			eng.Close()
			mu.Lock()
			got, err := hs.Store.Get(ctx, target)
			if err != nil || string(got) != string(tt.plant) {
				t.Fatalf("after the failure, %s holds %q (%v); want the foreign manifest left as it was", target, got, err)
			}
		})
	}
}

// TestDirectSnapshotRefusesForeignManifest: a snapshot written through the
// EBS direct APIs publishes by the same rule as flushes and copies: a valid
// manifest of another snapshot stored under its key fails
// CompleteSnapshot, and is left as it was.
func TestDirectSnapshotRefusesForeignManifest(t *testing.T) {
	hs := &hookStore{Store: sharedDir(t)}
	eng, err := Open(Options{DataDir: filepath.Join(t.TempDir(), "data"), SyncInterval: time.Hour, SnapshotStore: hs, FlushDeadline: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	si, err := eng.StartSnapshot(ctx, StartSnapshotParams{VolumeSize: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	data := pattern(7, DirectBlockSize)
	if err := eng.PutSnapshotBlock(ctx, si.ID, 3, data, sha256.Sum256(data)); err != nil {
		t.Fatal(err)
	}
	other, err := snapfmt.EncodeManifest(nil, &snapfmt.Manifest{SnapshotID: "snap-0aaaaaaaaaaaaaaaa", VolumeID: "vol-0aaaaaaaaaaaaaaaa", VolumeSize: 1 << 30, BlockSize: DirectBlockSize})
	if err != nil {
		t.Fatal(err)
	}
	key := snapfmt.ManifestKey(si.ID)
	if err := hs.Store.Put(ctx, key, other); err != nil {
		t.Fatal(err)
	}
	_, err = eng.CompleteSnapshot(ctx, si.ID, func([]WrittenBlock) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "names snapshot snap-0aaaaaaaaaaaaaaaa") {
		t.Fatalf("CompleteSnapshot over another snapshot's manifest: %v; want an error naming it", err)
	}
	got, err := hs.Store.Get(ctx, key)
	if err != nil || !bytes.Equal(got, other) {
		t.Fatalf("%s holds %q (%v) after the failure; want the foreign manifest left as it was", key, got, err)
	}
}
