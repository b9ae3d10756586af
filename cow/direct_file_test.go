package cow

import (
	"bytes"
	"path/filepath"
	"testing"
)

// TestDirectFile: whole-page I/O goes direct, the rest through the page
// cache, and each sees what the other wrote; past the end reads as zeros;
// a punched range reads as zeros.
func TestDirectFile(t *testing.T) {
	var pool bufferPool
	f, err := openDirectFile(filepath.Join(t.TempDir(), "data"), true, &pool)
	if err != nil {
		t.Fatalf("open with O_DIRECT: %v", err)
	}
	defer f.Close()
	model := make([]byte, 64<<10)
	steps := []struct {
		name  string
		off   int64
		n     int
		punch bool
	}{
		{"whole pages", 0, 3 * pageSize, false},
		{"part of a page over them", 100, 1000, false},
		{"across a page boundary", pageSize - 10, 20, false},
		{"whole pages over buffered data", 0, 2 * pageSize, false},
		{"one page further on", 10 * pageSize, pageSize, false},
		{"a seal-sized write", 12*pageSize + 7, sealSize, false},
		{"a punched page", pageSize, pageSize, true},
	}
	for i, s := range steps {
		if s.punch {
			if err := f.Punch(s.off, int64(s.n)); err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
			clear(model[s.off : s.off+int64(s.n)])
		} else {
			p := randomBlocks(uint64(i+1), s.n)
			if _, err := f.WriteAt(p, s.off); err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
			copy(model[s.off:], p)
		}
		for _, r := range []struct{ off, n int64 }{{0, int64(len(model))}, {0, pageSize}, {50, 5000}, {pageSize, 2 * pageSize}} {
			got := make([]byte, r.n)
			if _, err := f.ReadAt(got, r.off); err != nil {
				t.Fatalf("after %s: read %d+%d: %v", s.name, r.off, r.n, err)
			}
			if !bytes.Equal(got, model[r.off:r.off+r.n]) {
				t.Fatalf("after %s: read %d+%d differs from what was written", s.name, r.off, r.n)
			}
		}
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

// TestDirectIOVolume: a volume over direct data files, plaintext and
// encrypted, reads back what was written, whole and partial blocks, after a
// snapshot's redirects and across a restart.
func TestDirectIOVolume(t *testing.T) {
	for _, encrypted := range []bool{false, true} {
		t.Run(map[bool]string{false: "plaintext", true: "encrypted"}[encrypted], func(t *testing.T) {
			env := newKeyedEnv(t)
			env.direct = true
			env.restart(t)
			vi, err := env.eng.CreateVolume(ctx, CreateVolumeParams{Size: 1 << 20, Encrypted: encrypted})
			if err != nil {
				t.Fatal(err)
			}
			data := randomBlocks(11, 1<<20)
			writeAll(t, env.eng, vi.ID, data, 0)
			snapshotAndWait(t, env.eng, vi.ID)
			for _, w := range []struct{ off, n int }{{70000, 5000}, {4096, 8192}, {200 << 10, 64 << 10}, {3, 1}} {
				p := randomBlocks(uint64(w.off), w.n)
				writeAll(t, env.eng, vi.ID, p, int64(w.off))
				copy(data[w.off:], p)
			}
			if !bytes.Equal(readAll(t, env.eng, vi.ID, 1<<20), data) {
				t.Fatal("the volume reads back other data")
			}
			env.restart(t)
			if !bytes.Equal(readAll(t, env.eng, vi.ID, 1<<20), data) {
				t.Fatal("after a restart, the volume reads back other data")
			}
		})
	}
}
