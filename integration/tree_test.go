package integration

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"testing"
)

// randReader returns a deterministic pseudo-random byte stream for (seed, n).
func randReader(seed, n uint64) io.Reader {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[0:], seed)
	binary.LittleEndian.PutUint64(s[8:], n)
	binary.LittleEndian.PutUint64(s[16:], 0x636f77766f6c) // "cowvol"
	return rand.NewChaCha8(s)
}

// writeTree writes nFiles files of deterministic pseudo-random content (sizes
// 0..maxSize, most not block-aligned) in nested directories under dir, syncs
// each one, and returns relative path -> hex SHA-256.
func writeTree(t testing.TB, dir string, seed uint64, nFiles int, maxSize int64) map[string]string {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	want := make(map[string]string, nFiles)
	for i := 0; i < nFiles; i++ {
		rel := filepath.Join(fmt.Sprintf("d%02d", i%7), fmt.Sprintf("e%02d", i%13), fmt.Sprintf("f%04d.bin", i))
		size := rng.Int64N(maxSize + 1)
		if i%10 == 0 {
			size = 0
		}
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		if _, err := io.CopyN(io.MultiWriter(f, h), randReader(seed, uint64(i)), size); err != nil {
			f.Close()
			t.Fatalf("writing %s: %v", p, err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			t.Fatalf("fsync %s: %v", p, err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		want[rel] = hex.EncodeToString(h.Sum(nil))
	}
	return want
}

// checkTree fails the test unless the regular files under dir (lost+found
// aside) are exactly want, content included.
func checkTree(t testing.TB, dir string, want map[string]string) {
	t.Helper()
	got := make(map[string]string)
	err := filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if de.IsDir() && de.Name() == "lost+found" && filepath.Dir(p) == filepath.Clean(dir) {
			return filepath.SkipDir
		}
		if !de.Type().IsRegular() {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return fmt.Errorf("reading %s: %w", p, err)
		}
		got[rel] = hex.EncodeToString(h.Sum(nil))
		return nil
	})
	if err != nil {
		t.Fatalf("walking %s: %v", dir, err)
	}
	var bad []string
	for rel, sum := range want {
		switch g, ok := got[rel]; {
		case !ok:
			bad = append(bad, "missing "+rel)
		case g != sum:
			bad = append(bad, "content differs "+rel)
		}
	}
	for rel := range got {
		if _, ok := want[rel]; !ok {
			bad = append(bad, "unexpected "+rel)
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		n := len(bad)
		if n > 20 {
			bad = bad[:20]
		}
		t.Fatalf("tree under %s differs in %d of %d files: %v", dir, n, len(want), bad)
	}
}

// writeRandomFile creates (or truncates) path and fills it with size bytes of
// deterministic pseudo-random data in 1 MiB writes, then fsyncs it, like
// `dd if=/dev/urandom of=PATH bs=1M conv=fsync`.
func writeRandomFile(t testing.TB, path string, seed uint64, size int64) {
	t.Helper()
	writeRandom(t, path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, seed, size)
}

// fillVolume writes size bytes of pseudo-random data at the start of an
// existing file without truncating it (a volume file has a fixed size) and
// fsyncs it.
func fillVolume(t testing.TB, path string, seed uint64, size int64) {
	t.Helper()
	writeRandom(t, path, os.O_WRONLY, seed, size)
}

func writeRandom(t testing.TB, path string, flag int, seed uint64, size int64) {
	t.Helper()
	f, err := os.OpenFile(path, flag, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	src := randReader(seed, 0xf11e)
	for off := int64(0); off < size; off += int64(len(buf)) {
		n := min(int64(len(buf)), size-off)
		io.ReadFull(src, buf[:n])
		if _, err := f.Write(buf[:n]); err != nil {
			t.Fatalf("writing %s at %d: %v", path, off, err)
		}
	}
	if err := f.Sync(); err != nil {
		t.Fatalf("fsync %s: %v", path, err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close %s: %v", path, err)
	}
}
