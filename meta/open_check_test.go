package meta

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const testVol = "vol-0123456789abcdef0"

// storeImage is a metadata directory and its witness, as a daemon leaves
// them: after a kill (the page cache is the disk) or a clean close.
type storeImage struct {
	dir string // the Badger directory; its witness is witnessPath(dir)
}

// makeImage writes n live-map records to a new store in batches of batch,
// syncing each, and leaves it killed (the files as they are, the store
// still open) or closed.
func makeImage(t *testing.T, n, batch int, closed bool) storeImage {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, "meta")
	s, err := Open(Options{Dir: dir, bootID: "boot-A"})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i += batch {
		var b Batch
		for j := i; j < min(i+batch, n); j++ {
			b.PutLive(testVol, uint64(j), Extent{Slot: uint64(j), Gen: 1})
		}
		if err := s.Apply(&b); err != nil {
			t.Fatal(err)
		}
		if err := s.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if closed {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		return storeImage{dir: dir}
	}
	// A kill: the files as they are now. The witness catches up first,
	// as it does within a fraction of a millisecond of each sync.
	if err := s.witness.write(s.seq); err != nil {
		t.Fatal(err)
	}
	img := storeImage{dir: dir}.copy(t)
	s.Close()
	return img
}

// copy copies the image to a new directory.
func (im storeImage) copy(t *testing.T) storeImage {
	t.Helper()
	to := filepath.Join(t.TempDir(), "meta")
	for _, p := range [][2]string{{im.dir, to}, {witnessPath(im.dir), witnessPath(to)}} {
		if out, err := exec.Command("cp", "-a", p[0], p[1]).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v: %s", err, out)
		}
	}
	return storeImage{dir: to}
}

// files returns a digest of every file of the image and its witness.
func (im storeImage) files(t *testing.T) map[string][32]byte {
	t.Helper()
	out := map[string][32]byte{}
	for _, p := range append(glob(t, im.dir, "*"), witnessPath(im.dir)) {
		b, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		out[p] = sha256.Sum256(b)
	}
	return out
}

func glob(t *testing.T, dir, pattern string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, pattern))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// liveCount opens the image and counts testVol's live records.
func liveCount(t *testing.T, dir, boot string) (int, error) {
	t.Helper()
	s, err := Open(Options{Dir: dir, bootID: boot})
	if err != nil {
		return 0, err
	}
	defer s.Close()
	n := 0
	err = s.LiveExtents(testVol, func(blk uint64, e Extent) error {
		if e.Slot != blk {
			return fmt.Errorf("block %d maps to slot %d", blk, e.Slot)
		}
		n++
		return nil
	})
	return n, err
}

func flipBit(t *testing.T, path string, off int64, bit uint) {
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
	b[0] ^= 1 << bit
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// logDataEnd is the end of the non-zero part of a log.
func logDataEnd(t *testing.T, path string) int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	end := len(b)
	for end > 0 && b[end-1] == 0 {
		end--
	}
	return int64(end)
}

const imageRecords = 8000

// TestOpenRefusesDamagedStore damages a store the ways a failing disk or
// a careless hand does, and opens it: each time the open either refuses
// with ErrDamaged, changing no file, or opens with every record.
func TestOpenRefusesDamagedStore(t *testing.T) {
	tests := []struct {
		name   string
		closed bool   // damage a cleanly closed store (tables) or a killed one (logs)
		boot   string // the boot of the open; boot-A is the writer's
		damage func(t *testing.T, im storeImage)
		refuse bool
	}{
		{name: "intact after a kill", boot: "boot-A", damage: func(*testing.T, storeImage) {}},
		{name: "intact after a close", closed: true, boot: "boot-A", damage: func(*testing.T, storeImage) {}},
		{name: "intact after a kill, another boot", boot: "boot-B", damage: func(*testing.T, storeImage) {}},
		{name: "log bit flipped at 10%", boot: "boot-A", refuse: true, damage: flipLogAt(0.10)},
		{name: "log bit flipped at 50%", boot: "boot-A", refuse: true, damage: flipLogAt(0.50)},
		{name: "log bit flipped at 90%", boot: "boot-A", refuse: true, damage: flipLogAt(0.90)},
		{name: "log bit flipped at 50%, another boot", boot: "boot-B", refuse: true, damage: flipLogAt(0.50)},
		{name: "log bit flipped past its end", boot: "boot-A", damage: func(t *testing.T, im storeImage) {
			mem := onlyFile(t, im.dir, "*.mem")
			flipBit(t, mem, logDataEnd(t, mem)+4096, 3)
		}},
		{name: "MANIFEST deleted", closed: true, boot: "boot-A", refuse: true, damage: func(t *testing.T, im storeImage) {
			os.Remove(filepath.Join(im.dir, "MANIFEST"))
		}},
		{name: "MANIFEST deleted after a kill", boot: "boot-A", refuse: true, damage: func(t *testing.T, im storeImage) {
			os.Remove(filepath.Join(im.dir, "MANIFEST"))
		}},
		{name: "MANIFEST emptied", closed: true, boot: "boot-A", refuse: true, damage: truncateFile("MANIFEST", 0)},
		{name: "MANIFEST cut to its header", closed: true, boot: "boot-A", refuse: true, damage: truncateFile("MANIFEST", 8)},
		{name: "MANIFEST cut by a byte", closed: true, boot: "boot-A", refuse: true, damage: truncateBy("MANIFEST", 1)},
		{name: "table truncated", closed: true, boot: "boot-A", refuse: true, damage: func(t *testing.T, im storeImage) {
			sst := glob(t, im.dir, "*.sst")[0]
			fi, _ := os.Stat(sst)
			os.Truncate(sst, fi.Size()/2)
		}},
		{name: "table bit flipped", closed: true, boot: "boot-A", refuse: true, damage: func(t *testing.T, im storeImage) {
			sst := glob(t, im.dir, "*.sst")[0]
			flipBit(t, sst, 1000, 5)
		}},
		{name: "table deleted", closed: true, boot: "boot-A", refuse: true, damage: func(t *testing.T, im storeImage) {
			os.Remove(glob(t, im.dir, "*.sst")[0])
		}},
		{name: "witness deleted", boot: "boot-A", refuse: true, damage: func(t *testing.T, im storeImage) {
			os.Remove(witnessPath(im.dir))
		}},
		{name: "witness both slots damaged", boot: "boot-A", refuse: true, damage: func(t *testing.T, im storeImage) {
			flipBit(t, witnessPath(im.dir), 20, 0)
			flipBit(t, witnessPath(im.dir), witnessSlotSize+20, 0)
		}},
		{name: "witness one slot damaged", boot: "boot-A", damage: func(t *testing.T, im storeImage) {
			w, _ := readWitness(witnessPath(im.dir))
			flipBit(t, witnessPath(im.dir), int64(w.seq%2)*witnessSlotSize+20, 0)
		}},
		{name: "store restored from an older copy", closed: true, boot: "boot-A", refuse: true, damage: func(t *testing.T, im storeImage) {
			st, _ := readWitness(witnessPath(im.dir))
			st.seq += 5
			if err := createWitness(witnessPath(im.dir), st); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "store replaced by another", closed: true, boot: "boot-A", refuse: true, damage: func(t *testing.T, im storeImage) {
			st, _ := readWitness(witnessPath(im.dir))
			st.id[0] ^= 1
			if err := createWitness(witnessPath(im.dir), st); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "store emptied", closed: true, boot: "boot-A", refuse: true, damage: func(t *testing.T, im storeImage) {
			ents, _ := os.ReadDir(im.dir)
			for _, de := range ents {
				os.Remove(filepath.Join(im.dir, de.Name()))
			}
		}},
	}
	images := map[bool]storeImage{
		false: makeImage(t, imageRecords, 500, false),
		true:  makeImage(t, imageRecords, 500, true),
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			im := images[tt.closed].copy(t)
			tt.damage(t, im)
			before := im.files(t)
			n, err := liveCount(t, im.dir, tt.boot)
			switch {
			case tt.refuse && err == nil:
				t.Fatalf("opened with %d of %d records", n, imageRecords)
			case tt.refuse && !errors.Is(err, ErrDamaged):
				t.Fatalf("refused with %v, want ErrDamaged", err)
			case tt.refuse:
				t.Logf("refused: %v", err)
				if after := im.files(t); !sameFiles(before, after) {
					t.Fatalf("a refused open changed the files")
				}
			case err != nil:
				t.Fatalf("open: %v", err)
			case n != imageRecords:
				t.Fatalf("%d of %d records", n, imageRecords)
			}
		})
	}
}

func sameFiles(a, b map[string][32]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func onlyFile(t *testing.T, dir, pattern string) string {
	t.Helper()
	m := glob(t, dir, pattern)
	if len(m) != 1 {
		t.Fatalf("%s in %s: %v, want one", pattern, dir, m)
	}
	return m[0]
}

func flipLogAt(frac float64) func(*testing.T, storeImage) {
	return func(t *testing.T, im storeImage) {
		mem := onlyFile(t, im.dir, "*.mem")
		end := logDataEnd(t, mem)
		flipBit(t, mem, walHeaderSize+int64(frac*float64(end-walHeaderSize)), 2)
	}
}

func truncateFile(name string, size int64) func(*testing.T, storeImage) {
	return func(t *testing.T, im storeImage) {
		if err := os.Truncate(filepath.Join(im.dir, name), size); err != nil {
			t.Fatal(err)
		}
	}
}

func truncateBy(name string, n int64) func(*testing.T, storeImage) {
	return func(t *testing.T, im storeImage) {
		p := filepath.Join(im.dir, name)
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, fi.Size()-n); err != nil {
			t.Fatal(err)
		}
	}
}

// TestOpenRefusesRandomLogFlips flips one bit at random offsets of a
// killed store's log: every open refuses, or opens with every record.
func TestOpenRefusesRandomLogFlips(t *testing.T) {
	im := makeImage(t, imageRecords, 500, false)
	mem := onlyFile(t, im.dir, "*.mem")
	end := logDataEnd(t, mem)
	rng := rand.New(rand.NewPCG(1, 2))
	refused := 0
	const trials = 12
	for i := range trials {
		work := im.copy(t).dir
		off := walHeaderSize + rng.Int64N(end-walHeaderSize)
		flipBit(t, filepath.Join(work, filepath.Base(mem)), off, uint(rng.IntN(8)))
		n, err := liveCount(t, work, "boot-A")
		switch {
		case errors.Is(err, ErrDamaged):
			refused++
		case err != nil:
			t.Fatalf("trial %d (offset %d): %v", i, off, err)
		case n != imageRecords:
			t.Fatalf("trial %d (offset %d): opened with %d of %d records", i, off, n, imageRecords)
		}
	}
	t.Logf("%d of %d flips refused, the rest opened whole", refused, trials)
}

// TestOpenAcceptsDamageWhenAsked: AcceptDamage opens what is there and
// keeps the files as found; the next open is clean.
func TestOpenAcceptsDamageWhenAsked(t *testing.T) {
	im := makeImage(t, imageRecords, 500, false)
	flipLogAt(0.5)(t, im)
	kept := filepath.Join(t.TempDir(), "kept")
	s, err := Open(Options{Dir: im.dir, bootID: "boot-A", AcceptDamage: true, DamagedCopy: kept})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if m := glob(t, kept, "*.mem"); len(m) != 1 {
		t.Fatalf("kept %v, want the damaged log", m)
	}
	n, err := liveCount(t, im.dir, "boot-A")
	if err != nil {
		t.Fatalf("the open after accepting: %v", err)
	}
	if n >= imageRecords || n == 0 {
		t.Fatalf("%d records after accepting a log cut in the middle", n)
	}
}

// TestTornTailAfterPowerCut: after a reboot (another boot ID) the part of
// a log past the last sync may hold anything a power cut left; that is not
// damage.
func TestTornTailAfterPowerCut(t *testing.T) {
	im := makeImage(t, imageRecords, 500, false)
	mem := onlyFile(t, im.dir, "*.mem")
	end := logDataEnd(t, mem)
	f, err := os.OpenFile(mem, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	junk := []byte(strings.Repeat("torn page ", 400))
	if _, err := f.WriteAt(junk, end+100); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if n, err := liveCount(t, im.dir, "boot-B"); err != nil || n != imageRecords {
		t.Fatalf("after a power cut: %d records, %v", n, err)
	}
}
