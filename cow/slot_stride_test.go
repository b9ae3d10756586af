package cow

import (
	"bytes"
	"cmp"
	"math/rand/v2"
	"os"
	"slices"
	"testing"

	"github.com/cowvol/cowvol/meta"
)

func TestSlotStride(t *testing.T) {
	enc := &meta.Encryption{KMSKeyARN: "k"}
	for _, tt := range []struct {
		name      string
		r         meta.VolumeRecord
		new, open int64
	}{
		{"plaintext", meta.VolumeRecord{BlockSize: 64 << 10}, 0, 64 << 10},
		{"encrypted 64 KiB: seals padded to a page", meta.VolumeRecord{BlockSize: 64 << 10, Encryption: enc}, 69632, 65920},
		{"encrypted 1 MiB", meta.VolumeRecord{BlockSize: 1 << 20, Encryption: enc}, 1<<20 + 8192, 1<<20 + 256*sealSize},
		{"encrypted 4 KiB: packed (a page of padding would double it)", meta.VolumeRecord{BlockSize: 4096, Encryption: enc}, 0, 4096 + sealSize},
		{"recorded padded stride", meta.VolumeRecord{BlockSize: 64 << 10, Encryption: enc, SlotStride: 69632}, 0, 69632},
		{"recorded stride too short: packed", meta.VolumeRecord{BlockSize: 64 << 10, Encryption: enc, SlotStride: 4096}, 0, 65920},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.r.SlotStride == 0 {
				if got := newSlotStride(tt.r); got != tt.new {
					t.Errorf("newSlotStride = %d, want %d", got, tt.new)
				}
			}
			if got := slotStride(tt.r); got != tt.open {
				t.Errorf("slotStride = %d, want %d", got, tt.open)
			}
		})
	}
}

// TestEncryptedSlotLayouts: a new encrypted volume's slots start on page
// boundaries, and a volume whose record names no stride (created before
// the seals were padded) keeps its packed slots; both read back what was
// written, across restarts.
func TestEncryptedSlotLayouts(t *testing.T) {
	for _, packed := range []bool{false, true} {
		t.Run(map[bool]string{false: "padded", true: "packed"}[packed], func(t *testing.T) {
			env := newKeyedEnv(t)
			vi, err := env.eng.CreateVolume(ctx, CreateVolumeParams{Size: 1 << 20, Encrypted: true})
			if err != nil {
				t.Fatal(err)
			}
			want := int64(69632)
			if packed {
				v, _ := env.eng.lookup(vi.ID)
				if err := v.updateRecord(func(r *meta.VolumeRecord) { r.SlotStride = 0 }, nil); err != nil {
					t.Fatal(err)
				}
				env.restart(t)
				want = 65920
			}
			data := randomBlocks(9, 1<<20)
			writeAll(t, env.eng, vi.ID, data, 0)
			writeAll(t, env.eng, vi.ID, data[:5000], 70000) // a redirect of a partial block
			copy(data[70000:], data[:5000])
			env.restart(t)
			v, _ := env.eng.lookup(vi.ID)
			if v.stride != want {
				t.Fatalf("stride %d, want %d", v.stride, want)
			}
			if !bytes.Equal(readAll(t, env.eng, vi.ID, 1<<20), data) {
				t.Fatal("the volume reads back other data")
			}
			// Whole blocks rewritten (the padding is written with
			// them): it holds zeros.
			writeAll(t, env.eng, vi.ID, data[:256<<10], 512<<10)
			copy(data[512<<10:], data[:256<<10])
			if !bytes.Equal(readAll(t, env.eng, vi.ID, 1<<20), data) {
				t.Fatal("after whole blocks rewritten, the volume reads back other data")
			}
			checkPaddingZero(t, env.eng, v)
		})
	}
}

// TestSlotAllocatorReuse: slots handed back in any order, in any number of
// rounds, come out lowest first, each once.
func TestSlotAllocatorReuse(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, rounds := range [][]int{{0}, {1}, {5, 0, 3}, {100, 1, 1, 1, 50}, {7, 7, 7, 7}} {
		var a slotAllocator
		var all []uint64
		perm := rng.Perm(400)
		for _, n := range rounds {
			var batch []uint64
			for range n {
				batch = append(batch, uint64(perm[len(all)]))
				all = append(all, uint64(perm[len(all)]))
			}
			a.reuse(batch)
		}
		slices.SortFunc(all, func(x, y uint64) int { return cmp.Compare(x, y) })
		var got []uint64
		for range len(all) {
			got = append(got, a.alloc())
		}
		if !slices.Equal(got, all) {
			t.Fatalf("rounds %v: allocations %v, want %v", rounds, got, all)
		}
	}
}

// checkPaddingZero fails unless the padding of every mapped slot of v
// (between its seals and the next slot) reads as zeros.
func checkPaddingZero(t *testing.T, eng *Engine, v *volume) {
	t.Helper()
	f, err := os.Open(eng.dataPath(v.id))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	used := v.blockSize + v.sectors()*sealSize
	pad := make([]byte, v.stride-used)
	v.mapMu.Lock()
	defer v.mapMu.Unlock()
	for blk := uint64(0); blk < uint64(v.sizeNow()/v.blockSize); blk++ {
		e := v.live.get(blk)
		if !e.hasData() || len(pad) == 0 {
			continue
		}
		if _, err := f.ReadAt(pad, v.slotOffset(e.slot)+used); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(pad, make([]byte, len(pad))) {
			t.Fatalf("block %d: its slot's padding holds data", blk)
		}
	}
}

// TestSlotAllocatorReuseInterleaved: allocations between rounds of freed
// slots always take the lowest free one.
func TestSlotAllocatorReuseInterleaved(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var a slotAllocator
	a.next = 1 << 20 // never-used slots are far above the freed ones
	free := map[uint64]bool{}
	perm := rng.Perm(2000)
	for round := 0; len(perm) > 0; round++ {
		n := min(len(perm), rng.IntN(40))
		var batch []uint64
		for _, p := range perm[:n] {
			batch = append(batch, uint64(p))
			free[uint64(p)] = true
		}
		perm = perm[n:]
		a.reuse(batch)
		for range rng.IntN(30) {
			if len(free) == 0 {
				break
			}
			want := uint64(1 << 62)
			for s := range free {
				want = min(want, s)
			}
			if got := a.alloc(); got != want {
				t.Fatalf("round %d: allocated %d, want the lowest free %d", round, got, want)
			}
			delete(free, want)
		}
	}
}
