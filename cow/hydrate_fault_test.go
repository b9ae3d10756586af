package cow

import (
	"bytes"
	"errors"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cowvol/cowvol/cow/snapfmt"
	"github.com/cowvol/cowvol/cow/snapstore"
)

// syncBuffer is a bytes.Buffer safe for a logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitUntil polls cond until it holds, failing the test after 20 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// faultEnv is an engine on a directory store (at root) with a completed
// snapshot of a volume of random, incompressible blocks.
type faultEnv struct {
	eng  *Engine
	st   snapstore.Store
	root string
	snap string
	data []byte
	log  *syncBuffer
}

const faultBlock = 64 << 10

func newFaultEnv(t *testing.T, size int) *faultEnv {
	t.Helper()
	env := &faultEnv{root: filepath.Join(t.TempDir(), "store"), log: &syncBuffer{}}
	st, err := snapstore.OpenDir(env.root)
	if err != nil {
		t.Fatal(err)
	}
	env.st = st
	env.eng, err = Open(Options{DataDir: t.TempDir(), SyncInterval: time.Hour, SnapshotStore: st,
		HydrateFaultRetry: 5 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(env.log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.eng.Close() })
	vi, err := env.eng.CreateVolume(ctx, CreateVolumeParams{Size: int64(size), BlockSize: faultBlock})
	if err != nil {
		t.Fatal(err)
	}
	env.data = make([]byte, size)
	rng := rand.NewChaCha8([32]byte{13})
	rng.Read(env.data)
	h := openHandle(t, env.eng, vi.ID)
	if _, err := h.WriteAt(env.data, 0); err != nil {
		t.Fatal(err)
	}
	h.Close()
	s, err := env.eng.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID})
	if err != nil {
		t.Fatal(err)
	}
	waitSnapshot(t, env.eng, s.ID)
	env.snap = s.ID
	return env
}

// chunkOf returns where the snapshot keeps block blk: the pack file and
// the chunk's offset and length in it.
func (env *faultEnv) chunkOf(t *testing.T, blk uint64) (file string, loc snapfmt.Loc) {
	t.Helper()
	m, err := env.eng.reader.loadManifest(ctx, env.st, snapfmt.ManifestKey(env.snap))
	if err != nil {
		t.Fatal(err)
	}
	i, ok := searchSegments(m.Segments, blk>>snapfmt.SegmentShift)
	if !ok {
		t.Fatalf("block %d is in no segment", blk)
	}
	seg, err := env.eng.reader.sharedSegment(ctx, env.st, m.Segments[i].Key, nil)
	if err != nil {
		t.Fatal(err)
	}
	loc, ok = seg.Lookup(uint32(blk & (1<<snapfmt.SegmentShift - 1)))
	if !ok || !loc.InPack() {
		t.Fatalf("block %d has no chunk in a pack", blk)
	}
	return filepath.Join(env.root, filepath.FromSlash(snapfmt.PackKey(loc.Pack))), loc
}

// packOf returns the key of the pack that holds block blk's chunk.
func (env *faultEnv) packOf(t *testing.T, blk uint64) string {
	_, loc := env.chunkOf(t, blk)
	return snapfmt.PackKey(loc.Pack)
}

// flip inverts the byte in the middle of block blk's chunk in its pack
// file; flipping it again repairs it.
func (env *faultEnv) flip(t *testing.T, blk uint64) {
	t.Helper()
	file, loc := env.chunkOf(t, blk)
	f, err := os.OpenFile(file, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	off := int64(loc.Off + loc.N/2)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// TestRestoreFromDamagedSnapshot: a volume restored from a snapshot whose
// pack is damaged (a byte flipped in a chunk, or the pack missing) is
// usable: reads of the damaged blocks fail with ErrImpaired (and the
// store's error), the other blocks read right and are all hydrated, and
// the volume is impaired, naming the snapshot and the pack, logged once.
// A whole-block write over a bad block, or the store repaired and found by
// the hydrator's retries, makes the volume ok and its hydration complete.
func TestRestoreFromDamagedSnapshot(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int
		// damage damages the snapshot and returns the blocks that
		// became unreadable, the object at fault, the repair and the
		// error they fail with.
		damage  func(t *testing.T, env *faultEnv) (bad []uint64, key string, repair func(), want error)
		written int  // how many of the bad blocks are then written whole
		repair  bool // then the store is repaired
	}{
		{
			name: "corrupt chunks, written over", size: 1 << 20, written: 2,
			damage: func(t *testing.T, env *faultEnv) ([]uint64, string, func(), error) {
				env.flip(t, 3)
				env.flip(t, 9)
				return []uint64{3, 9}, env.packOf(t, 3), nil, ErrCorrupt
			},
		},
		{
			name: "corrupt chunks, one written over, the store repaired", size: 1 << 20, written: 1, repair: true,
			damage: func(t *testing.T, env *faultEnv) ([]uint64, string, func(), error) {
				env.flip(t, 3)
				env.flip(t, 9)
				return []uint64{3, 9}, env.packOf(t, 3), func() { env.flip(t, 9) }, ErrCorrupt
			},
		},
		{
			name: "missing pack, the store repaired", size: 9 << 20, repair: true,
			damage: func(t *testing.T, env *faultEnv) ([]uint64, string, func(), error) {
				file, loc := env.chunkOf(t, 0)
				var bad []uint64
				for blk := range uint64(9 << 20 / faultBlock) {
					if _, l := env.chunkOf(t, blk); l.Pack == loc.Pack {
						bad = append(bad, blk)
					}
				}
				if len(bad) == 9<<20/faultBlock {
					t.Fatalf("every block is in pack %s: want another pack too", snapfmt.PackKey(loc.Pack))
				}
				hidden := file + ".hidden"
				if err := os.Rename(file, hidden); err != nil {
					t.Fatal(err)
				}
				return bad, snapfmt.PackKey(loc.Pack), func() {
					if err := os.Rename(hidden, file); err != nil {
						t.Fatal(err)
					}
				}, snapstore.ErrNotFound
			},
		},
		{
			name: "corrupt segment, the store repaired", size: 1 << 20, repair: true,
			damage: func(t *testing.T, env *faultEnv) ([]uint64, string, func(), error) {
				m, err := env.eng.reader.loadManifest(ctx, env.st, snapfmt.ManifestKey(env.snap))
				if err != nil {
					t.Fatal(err)
				}
				key := m.Segments[0].Key
				file := filepath.Join(env.root, filepath.FromSlash(key))
				b, err := os.ReadFile(file)
				if err != nil {
					t.Fatal(err)
				}
				flip := func() {
					b[len(b)/2] ^= 0xff
					if err := os.WriteFile(file, b, 0o600); err != nil {
						t.Fatal(err)
					}
				}
				flip()
				var bad []uint64
				for blk := range uint64(1 << 20 / faultBlock) {
					bad = append(bad, blk)
				}
				return bad, key, flip, ErrCorrupt
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newFaultEnv(t, tc.size)
			bad, key, repair, wantErr := tc.damage(t, env)
			freshReader(env.eng)
			rv, err := env.eng.CreateVolume(ctx, CreateVolumeParams{SnapshotID: env.snap})
			if err != nil {
				t.Fatal(err)
			}
			v, _ := env.eng.lookup(rv.ID)
			isBad := map[uint64]bool{}
			for _, b := range bad {
				isBad[b] = true
			}

			// The hydrator skips the bad blocks and hydrates the rest.
			// (It counts a bad block when it passes it: the last bad
			// blocks may come after the last good one.)
			waitUntil(t, "the volume impaired, the good blocks hydrated and the bad ones counted", func() bool {
				for blk := range v.blockCount() {
					if !isBad[blk] && !v.rangeMapped(blk, blk+1) {
						return false
					}
				}
				vi, _ := env.eng.VolumeInfo(rv.ID)
				if vi.Status != VolumeStatusImpaired || len(vi.Faults) != 1 {
					return false
				}
				f := vi.Faults[0]
				return f.Blocks+int(f.EndBlock-f.FirstBlock) >= len(bad)
			})
			vi, _ := env.eng.VolumeInfo(rv.ID)
			if vi.Status != VolumeStatusImpaired || vi.FaultCount != 1 || len(vi.Faults) != 1 {
				t.Fatalf("status %q, %d faults %+v; want impaired by one object", vi.Status, vi.FaultCount, vi.Faults)
			}
			if vi.State != VolumeAvailable || !vi.Hydrating {
				t.Errorf("state %s, hydrating %v; want available, hydrating", vi.State, vi.Hydrating)
			}
			f := vi.Faults[0]
			if needed := f.Blocks + int(f.EndBlock-f.FirstBlock); f.Key != key || f.SnapshotID != env.snap || needed != len(bad) || !errors.Is(f.Err, wantErr) {
				t.Errorf("fault %+v; want %s of %s needed by %d blocks, failing with %v", f, key, env.snap, len(bad), wantErr)
			}
			if r := f.Reason(); !strings.Contains(r, env.snap) || !strings.Contains(r, key) {
				t.Errorf("reason %q names neither the snapshot nor the object", r)
			}

			// Reads: the bad blocks fail (several times), the others
			// are right.
			h := openHandle(t, env.eng, rv.ID)
			defer h.Close()
			got := make([]byte, faultBlock)
			for blk := range v.blockCount() {
				for range 3 {
					_, err := h.ReadAt(got, int64(blk)*faultBlock)
					switch {
					case isBad[blk] && (!errors.Is(err, ErrImpaired) || !errors.Is(err, wantErr)):
						t.Fatalf("read of bad block %d: %v; want ErrImpaired and %v", blk, err, wantErr)
					case !isBad[blk] && err != nil:
						t.Fatalf("read of block %d: %v", blk, err)
					case !isBad[blk] && !bytes.Equal(got, env.data[blk*faultBlock:][:faultBlock]):
						t.Fatalf("block %d reads wrong data", blk)
					}
				}
			}

			// Whole-block writes over bad blocks: they read back, and
			// no longer count.
			want := bytes.Clone(env.data)
			for i, blk := range bad[:tc.written] {
				p := bytes.Repeat([]byte{byte(i + 1)}, faultBlock)
				if _, err := h.WriteAt(p, int64(blk)*faultBlock); err != nil {
					t.Fatalf("write over bad block %d: %v", blk, err)
				}
				copy(want[blk*faultBlock:], p)
			}
			if tc.repair {
				if vi, _ := env.eng.VolumeInfo(rv.ID); vi.Status != VolumeStatusImpaired || vi.Faults[0].Blocks+int(vi.Faults[0].EndBlock-vi.Faults[0].FirstBlock) != len(bad)-tc.written {
					t.Fatalf("after %d writes: status %s, faults %+v; want impaired by %d blocks", tc.written, vi.Status, vi.Faults, len(bad)-tc.written)
				}
				repair()
			}
			waitUntil(t, "the volume ok and hydrated", func() bool {
				vi, _ := env.eng.VolumeInfo(rv.ID)
				return vi.Status == VolumeStatusOK && !vi.Hydrating
			})
			all := make([]byte, len(want))
			if _, err := h.ReadAt(all, 0); err != nil || !bytes.Equal(all, want) {
				t.Fatalf("after recovery the volume reads wrong (err %v)", err)
			}

			// The log: impaired once, naming the pack once; recovered
			// once.
			logs := env.log.String()
			for what, n := range map[string]int{"volume impaired": 1, "volume recovered": 1, key: 1, "another object": 0} {
				lines := 0
				for l := range strings.Lines(logs) {
					if strings.Contains(l, what) {
						lines++
					}
				}
				if lines != n {
					t.Errorf("%d lines of the log have %q, want %d:\n%s", lines, what, n, logs)
				}
			}
		})
	}
}
