package cow

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/cowvol/cowvol/kms"
)

var (
	modelSeed  = flag.Uint64("model.seed", 0, "replay the model test with this seed (0: random)")
	modelSteps = flag.Int("model.steps", 400, "operations per model-test run")
)

// reference is the model a volume is checked against: a plain byte slice.
type reference struct{ data []byte }

func (r *reference) write(p []byte, off int64) { copy(r.data[off:], p) }
func (r *reference) punch(off, n int64)        { clear(r.data[off : off+n]) }

// TestModelRandomOps runs random writes, discards, syncs, reads and engine
// restarts against the reference model; every read must match it byte for
// byte. The seed is logged; -model.seed replays it.
// Encrypted volumes run the same model: sealed sectors, partial sectors,
// redirects of sealed blocks and restarts must all read back as written.
func TestModelRandomOps(t *testing.T) {
	forEachModelCase(t, func(t *testing.T, seed uint64, bs int, encrypted bool) {
		runModel(t, seed, bs, *modelSteps, encrypted)
	})
}

// forEachModelCase runs run as a subtest for plaintext and encrypted
// volumes at 4 KiB and 64 KiB blocks, each with its seed: -model.seed, or
// a random one, logged with the command line that replays it.
func forEachModelCase(t *testing.T, run func(t *testing.T, seed uint64, bs int, encrypted bool)) {
	for _, encrypted := range []bool{false, true} {
		for _, bs := range []int{4 << 10, 64 << 10} {
			name := fmt.Sprintf("block=%dK", bs>>10)
			if encrypted {
				name = "encrypted/" + name
			}
			t.Run(name, func(t *testing.T) {
				seed := modelSeedOrRandom()
				t.Logf("seed %d (replay with -run %s -model.seed=%d)", seed, t.Name(), seed)
				run(t, seed, bs, encrypted)
			})
		}
	}
}

// modelSeedOrRandom is -model.seed if given, else a random seed.
func modelSeedOrRandom() uint64 {
	if *modelSeed != 0 {
		return *modelSeed
	}
	return rand.Uint64()
}

func runModel(t *testing.T, seed uint64, blockSize, steps int, encrypted bool) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	dir := t.TempDir()
	var keys KeyManager
	if encrypted {
		keys = testKeyring(t)
	}
	openTestEngine := func(t *testing.T, dir string) *Engine { return openKeyedEngine(t, dir, keys) }
	eng := openTestEngine(t, dir)
	const size = 4 << 20
	vi, err := eng.CreateVolume(context.Background(), CreateVolumeParams{Size: size, BlockSize: blockSize, Encrypted: encrypted})
	if err != nil {
		t.Fatal(err)
	}
	h, err := eng.OpenVolume(vi.ID)
	if err != nil {
		t.Fatal(err)
	}
	ref := &reference{data: make([]byte, size)}
	// Offsets cluster around block edges, where the bugs live.
	pick := func(maxLen int) (int64, int64) {
		var off int64
		if rng.IntN(2) == 0 {
			off = int64(rng.IntN(size/blockSize)*blockSize + rng.IntN(3) - 1)
		} else {
			off = rng.Int64N(size)
		}
		off = max(0, min(off, size-1))
		n := int64(1 + rng.IntN(maxLen))
		if rng.IntN(3) == 0 {
			n = int64(blockSize * (1 + rng.IntN(3)))
		}
		return off, min(n, size-off)
	}
	for step := range steps {
		switch op := rng.IntN(100); {
		case op < 45:
			off, n := pick(3 * blockSize)
			p := make([]byte, n)
			for i := range p {
				p[i] = byte(rng.IntN(255) + 1)
			}
			if _, err := h.WriteAt(p, off); err != nil {
				t.Fatalf("step %d: write %d+%d: %v", step, off, n, err)
			}
			ref.write(p, off)
		case op < 60:
			off, n := pick(4 * blockSize)
			if err := h.Punch(off, n); err != nil {
				t.Fatalf("step %d: punch %d+%d: %v", step, off, n, err)
			}
			ref.punch(off, n)
		case op < 65:
			if err := h.Sync(); err != nil {
				t.Fatalf("step %d: sync: %v", step, err)
			}
		case op < 68:
			// Restart the engine: what it synced at Close must come back.
			h.Close()
			if err := eng.Close(); err != nil {
				t.Fatalf("step %d: close: %v", step, err)
			}
			eng = openTestEngine(t, dir)
			if h, err = eng.OpenVolume(vi.ID); err != nil {
				t.Fatalf("step %d: reopen: %v", step, err)
			}
		default:
			off, n := pick(4 * blockSize)
			got := make([]byte, n)
			if _, err := h.ReadAt(got, off); err != nil {
				t.Fatalf("step %d: read %d+%d: %v", step, off, n, err)
			}
			if want := ref.data[off : off+n]; !bytes.Equal(got, want) {
				t.Fatalf("step %d: read %d+%d differs from the model at byte %d", step, off, n, firstDiff(got, want))
			}
		}
	}
	got := make([]byte, size)
	if _, err := h.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, ref.data) {
		t.Fatalf("final volume differs from the model at byte %d", firstDiff(got, ref.data))
	}
	// Thin provisioning: the engine holds exactly the blocks with data.
	info, _ := eng.VolumeInfo(vi.ID)
	if max := int64(countNonZeroBlocks(ref.data, blockSize) * blockSize); info.AllocatedBytes < max {
		t.Fatalf("allocated %d bytes, but %d bytes of blocks hold data", info.AllocatedBytes, max)
	}
	h.Close()
}

func firstDiff(a, b []byte) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

func countNonZeroBlocks(data []byte, bs int) int {
	n := 0
	for off := 0; off < len(data); off += bs {
		for _, c := range data[off : off+bs] {
			if c != 0 {
				n++
				break
			}
		}
	}
	return n
}

func openTestEngine(t *testing.T, dir string) *Engine { return openKeyedEngine(t, dir, nil) }

// openKeyedEngine opens an engine whose key manager is keys (nil: none).
func openKeyedEngine(t *testing.T, dir string, keys KeyManager) *Engine {
	t.Helper()
	return openKeyedGatedEngine(t, dir, keys, nil)
}

// openKeyedGatedEngine is openKeyedEngine with the map loads held by gate
// (nil: none).
func openKeyedGatedEngine(t *testing.T, dir string, keys KeyManager, gate *loadGate) *Engine {
	t.Helper()
	// No grace period: a single daemon's garbage goes at once.
	opts := Options{DataDir: dir, SyncInterval: time.Hour, GCGrace: time.Nanosecond, Keys: keys}
	if gate != nil {
		opts.afterLoadPage = gate.hook
	}
	eng, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if gate != nil {
			gate.open()
		}
		eng.Close()
	})
	return eng
}

// testKeyring is a real local keyring in a temporary directory.
func testKeyring(t testing.TB) *kms.Local {
	t.Helper()
	k, err := kms.OpenLocal(filepath.Join(t.TempDir(), "keyring"), "us-east-1", "111122223333")
	if err != nil {
		t.Fatal(err)
	}
	return k
}
