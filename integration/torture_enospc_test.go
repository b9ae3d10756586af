package integration

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// smallFS is a small ext4 file system made for a test: an image file on the
// host's disk, attached to a loop device and mounted. Its ballast file takes
// space that the test gives back by deleting it.
type smallFS struct {
	Dir     string
	Ballast string
}

// makeSmallFS makes an ext4 file system of size bytes, mounted on a fresh
// directory, with a ballast file of ballast bytes in it.
func makeSmallFS(t *testing.T, size, ballast int64) *smallFS {
	t.Helper()
	img := filepath.Join(t.TempDir(), "fs.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	mustRun(t, "mkfs.ext4", "-q", "-F", "-m", "0", img)
	lo := attachLoop(t, img)
	m := mountDev(t, lo.Dev, t.TempDir())
	s := &smallFS{Dir: m.Dir, Ballast: filepath.Join(m.Dir, "ballast")}
	writeRandomFile(t, s.Ballast, 0xba11, ballast)
	return s
}

// A data dir that fills up: writes fail with ENOSPC or EIO to the writer,
// the daemon stays up and answers, what was fsynced before stays intact,
// and when space comes back, writes work again, through a restart too.
func TestTortureDataDirFull(t *testing.T) {
	requirePrereqs(t)
	const fsSize = 256 * mib
	fs := makeSmallFS(t, fsSize, 64*mib)
	dataDir := filepath.Join(fs.Dir, "data")
	d := startDaemon(t, withDataDir(dataDir))
	vol := d.createVolume(t, "512MiB")
	path := d.volumePath(vol.VolumeId)

	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := func(seed uint64) []byte {
		b := make([]byte, mib)
		io.ReadFull(randReader(seed, 0xd15c), b)
		return b
	}

	// acked: offsets (MiB) whose content an fsync confirmed.
	acked := map[int64]uint64{}
	var failedAt int64 = -1
	var failure error
	step(t, "write 1 MiB chunks with an fsync every 4 MiB until the data dir is full", func(t *testing.T) {
		var pending []int64
		for i := int64(0); i < 512; i++ {
			_, err := f.WriteAt(chunk(uint64(i)), i*mib)
			if err == nil && i%4 == 3 {
				err = f.Sync()
				if err == nil {
					for _, p := range append(pending, i) {
						acked[p] = uint64(p)
					}
					pending = nil
					continue
				}
			}
			if err != nil {
				failedAt, failure = i, err
				break
			}
			pending = append(pending, i)
		}
		if failure == nil {
			t.Fatalf("wrote 512 MiB into a data dir on a %d MiB file system without an error", fsSize/mib)
		}
		t.Logf("the writer saw %v at MiB %d; %d MiB acknowledged before", failure, failedAt, len(acked))
		if !errors.Is(failure, syscall.ENOSPC) && !errors.Is(failure, syscall.EIO) {
			t.Errorf("error %v, want ENOSPC or EIO", failure)
		}
		// Later writes keep failing cleanly, not hanging or crashing.
		for i := failedAt; i < failedAt+4; i++ {
			if _, err := f.WriteAt(chunk(uint64(i)), i*mib); err == nil {
				err = f.Sync()
				t.Logf("write at MiB %d with the disk full: fsync %v", i, err)
			}
		}
	})

	step(t, "the daemon is up, answers, and what was acknowledged reads back", func(t *testing.T) {
		if !d.running() {
			t.Fatal("the daemon exited when its data dir filled up")
		}
		d.describeVolume(t, vol.VolumeId)
		checkChunks(t, path, acked, chunk)
	})

	step(t, "free space: writes and fsync work again", func(t *testing.T) {
		if err := os.Remove(fs.Ballast); err != nil {
			t.Fatal(err)
		}
		syscall.Sync()
		deadline := time.Now().Add(30 * time.Second)
		for i := failedAt; i < failedAt+16; i++ {
			var err error
			for {
				if _, err = f.WriteAt(chunk(uint64(i)), i*mib); err == nil {
					err = f.Sync()
				}
				if err == nil || time.Now().After(deadline) {
					break
				}
				time.Sleep(200 * time.Millisecond) // the data file system frees the blocks lazily
			}
			if err != nil {
				t.Fatalf("write at MiB %d after space came back: %v", i, err)
			}
			acked[i] = uint64(i)
		}
		checkChunks(t, path, acked, chunk)
	})

	step(t, "fill it again, kill -9 with the disk full, restart on the full disk", func(t *testing.T) {
		var err error
		for i := failedAt + 16; i < 512 && err == nil; i++ {
			if _, err = f.WriteAt(chunk(uint64(i)), i*mib); err == nil && i%4 == 3 {
				if err = f.Sync(); err == nil {
					for j := i - 3; j <= i; j++ {
						acked[j] = uint64(j)
					}
				}
			}
		}
		t.Logf("full again: %v", err)
		f.Close()
		d.kill9(t)
		d.restart(t)
		checkChunks(t, path, acked, chunk)
	})

	step(t, "stop and restart: everything acknowledged is there", func(t *testing.T) {
		if err := d.stop(t); err != nil {
			t.Fatal(err)
		}
		d.restart(t)
		checkChunks(t, path, acked, chunk)
	})

	step(t, "something else fills the disk: the daemon starts anyway (its ballast released); freed, it writes again", func(t *testing.T) {
		if err := d.stop(t); err != nil {
			t.Fatal(err)
		}
		hog := filepath.Join(fs.Dir, "hog")
		fillDisk(t, hog)
		d.restart(t)
		if out := d.output(); !strings.Contains(out, "released the ballast") {
			t.Errorf("the daemon does not say it released its ballast:\n%s", d.logTail(10))
		}
		checkChunks(t, path, acked, chunk)
		if err := os.Remove(hog); err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		deadline := time.Now().Add(30 * time.Second)
		for {
			if _, err = f.WriteAt(chunk(0), 0); err == nil {
				err = f.Sync()
			}
			if err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond) // the guard rechecks free space every second
		}
		if err != nil {
			t.Fatalf("write after space came back: %v", err)
		}
		acked[0] = 0
		checkChunks(t, path, acked, chunk)
	})
}

// checkChunks fails the test unless every acknowledged MiB of file holds
// chunk(seed).
func checkChunks(t testing.TB, file string, acked map[int64]uint64, chunk func(uint64) []byte) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := make([]byte, mib)
	for off, seed := range acked {
		if _, err := f.ReadAt(got, off*mib); err != nil {
			t.Fatalf("read MiB %d: %v", off, err)
		}
		if !bytes.Equal(got, chunk(seed)) {
			t.Errorf("MiB %d differs from what was acknowledged", off)
		}
	}
}
