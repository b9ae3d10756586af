package cow

import (
	"bytes"
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
	"time"
)

// dataFilesState is what recovery must not change on a refused start:
// every data file's content and its allocated space (a punched hole keeps
// the size). (The metadata store's files may change: a store that passed
// its checks was opened and closed, which rewrites them, same records.)
func dataFilesState(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(filepath.Join(dir, "volumes"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		out[p] = fmt.Sprintf("%d %x", diskBytes(t, p), sum)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameState(a, b map[string]string) bool {
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

// killedCopy copies a running engine's data dir as a kill would leave it:
// the files as they are (the page cache is the disk).
func killedCopy(t *testing.T, dir string) string {
	t.Helper()
	to := filepath.Join(t.TempDir(), "data")
	if out, err := exec.Command("cp", "-a", "--sparse=always", dir, to).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	return to
}

// writtenVolume creates a volume and writes n blocks of distinct content,
// syncing after each, on an engine it leaves open.
func writtenVolume(t *testing.T, eng *Engine, n int) (string, []byte) {
	t.Helper()
	vi, err := eng.CreateVolume(ctx, CreateVolumeParams{Size: 64 << 20, BlockSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	h := openHandle(t, eng, vi.ID)
	data := make([]byte, n*(64<<10))
	rng := rand.New(rand.NewPCG(7, 7))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	for i := 0; i < n; i++ {
		off := int64(i) * 64 << 10
		if _, err := h.WriteAt(data[off:off+64<<10], off); err != nil {
			t.Fatal(err)
		}
		if err := h.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	return vi.ID, data
}

func openErr(dir string, accept bool) (*Engine, error) {
	return Open(Options{DataDir: dir, SyncInterval: time.Hour, AcceptMetadataLoss: accept})
}

// TestRecoverNeverDestroysOnAGuess: whatever the metadata store has lost
// or the data files hold that no record explains, a start either refuses
// (ErrMetadataDamaged, no file changed) or, with the loss accepted,
// starts and keeps what it cannot place in lost+found.
func TestRecoverNeverDestroysOnAGuess(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, dir, volID string)
		// lost: what lost+found holds after an accepted start.
		lost []string
	}{
		{"a data file of no volume", func(t *testing.T, dir, volID string) {
			b, _ := os.ReadFile(filepath.Join(dir, "volumes", volID+".data"))
			os.WriteFile(filepath.Join(dir, "volumes", "vol-00000000000000001.data"), b, 0o600)
		}, []string{"vol-00000000000000001.data"}},
		{"a data file cut short", func(t *testing.T, dir, volID string) {
			os.Truncate(filepath.Join(dir, "volumes", volID+".data"), 64<<10)
		}, nil},
		{"a bit flipped in the metadata log", func(t *testing.T, dir, volID string) {
			mem, _ := filepath.Glob(filepath.Join(dir, "meta", "*.mem"))
			f, err := os.OpenFile(mem[len(mem)-1], os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			b := []byte{0}
			f.ReadAt(b, 600)
			b[0] ^= 0x10
			f.WriteAt(b, 600)
		}, []string{"meta", volIDPlaceholder + ".slots", volIDPlaceholder + ".slots.txt"}},
		{"the MANIFEST deleted", func(t *testing.T, dir, volID string) {
			os.Remove(filepath.Join(dir, "meta", "MANIFEST"))
		}, []string{"meta"}}, // the log still has every record
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eng := openTestEngine(t, t.TempDir())
			volID, _ := writtenVolume(t, eng, 16)
			dir := killedCopy(t, eng.dir)
			tt.damage(t, dir, volID)
			before := dataFilesState(t, dir)
			_, err := openErr(dir, false)
			if !errors.Is(err, ErrMetadataDamaged) {
				t.Fatalf("start: %v, want ErrMetadataDamaged", err)
			}
			t.Logf("refused: %v", err)
			if !sameState(before, dataFilesState(t, dir)) {
				t.Fatal("a refused start changed a data file")
			}
			e2, err := openErr(dir, true)
			if err != nil {
				t.Fatalf("start accepting the loss: %v", err)
			}
			e2.Close()
			lost, _ := filepath.Glob(filepath.Join(dir, "lost+found", "*", "*"))
			var names []string
			for _, p := range lost {
				names = append(names, filepath.Base(p))
			}
			for _, want := range tt.lost {
				want = strings.ReplaceAll(want, volIDPlaceholder, volID)
				if !contains(names, want) {
					t.Errorf("lost+found holds %v, want %s", names, want)
				}
			}
			e3, err := openErr(dir, false)
			if err != nil {
				t.Fatalf("the start after the accepted one: %v", err)
			}
			e3.Close()
		})
	}
}

const volIDPlaceholder = "<vol>"

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestAcceptedLossKeepsLostBlocks: blocks whose mappings a damaged
// metadata log lost are in lost+found, byte for byte.
func TestAcceptedLossKeepsLostBlocks(t *testing.T) {
	eng := openTestEngine(t, t.TempDir())
	volID, data := writtenVolume(t, eng, 16)
	dir := killedCopy(t, eng.dir)
	mem, _ := filepath.Glob(filepath.Join(dir, "meta", "*.mem"))
	b, err := os.ReadFile(mem[len(mem)-1])
	if err != nil {
		t.Fatal(err)
	}
	b[600] ^= 0x10 // early in the log: most mappings are past it
	if err := os.WriteFile(mem[len(mem)-1], b, 0o600); err != nil {
		t.Fatal(err)
	}
	e2, err := openErr(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	kept, _ := filepath.Glob(filepath.Join(dir, "lost+found", "*", volID+".slots"))
	if len(kept) != 1 {
		t.Fatalf("lost+found slots: %v", kept)
	}
	slots, err := os.ReadFile(kept[0])
	if err != nil {
		t.Fatal(err)
	}
	h := openHandle(t, e2, volID)
	found := 0
	for i := 0; i < 16; i++ {
		blk := data[i*64<<10 : (i+1)*64<<10]
		got := make([]byte, len(blk))
		h.ReadAt(got, int64(i)*64<<10)
		if bytes.Equal(got, blk) {
			continue // its mapping survived
		}
		if !bytes.Contains(slots, blk) {
			t.Fatalf("block %d is neither in the volume nor in lost+found", i)
		}
		found++
	}
	if found == 0 {
		t.Fatal("the damage lost no mapping: the test proves nothing")
	}
	t.Logf("%d of 16 blocks recovered from lost+found", found)
}
