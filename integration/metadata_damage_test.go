package integration

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A failing disk or a careless hand damages the metadata store while the
// daemon is down. Every start then either refuses, saying what it found
// and changing no data file, or serves every fsynced byte exactly; never
// zeros, never another block's data, never a punched or deleted data file.
func TestDamagedMetadataNeverLosesDataSilently(t *testing.T) {
	requirePrereqs(t)
	d := startDaemon(t)
	vol := d.createVolume(t, "64MiB")
	data := make([]byte, 16<<20)
	rng := rand.New(rand.NewPCG(13, 13))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	step(t, "write 16 MiB to the volume file, fsync after every MiB", func(t *testing.T) {
		f, err := os.OpenFile(d.volumePath(vol.VolumeId), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for off := 0; off < len(data); off += 1 << 20 {
			if _, err := f.WriteAt(data[off:off+1<<20], int64(off)); err != nil {
				t.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
		}
	})
	d.kill9(t)
	killed := copyDataDir(t, d.DataDir)
	d.restart(t)
	if err := d.stop(t); err != nil {
		t.Fatalf("stop: %v", err)
	}
	stopped := copyDataDir(t, d.DataDir)

	logFlip := func(frac float64) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			mem := globOne(t, filepath.Join(dir, "meta", "*.mem"))
			b, err := os.ReadFile(mem)
			if err != nil {
				t.Fatal(err)
			}
			end := len(bytes.TrimRight(b, "\x00"))
			b[20+int(frac*float64(end-20))] ^= 0x08
			if err := os.WriteFile(mem, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	cases := []struct {
		name   string
		from   string // the data dir as the kill or the clean stop left it
		damage func(t *testing.T, dir string)
	}{
		{"a bit flipped at 10% of the metadata log", killed, logFlip(0.1)},
		{"a bit flipped at 40% of the metadata log", killed, logFlip(0.4)},
		{"a bit flipped at 70% of the metadata log", killed, logFlip(0.7)},
		{"a bit flipped at 99% of the metadata log", killed, logFlip(0.99)},
		{"meta/MANIFEST deleted after the kill", killed, removeFile("meta", "MANIFEST")},
		{"meta/MANIFEST deleted after a clean stop", stopped, removeFile("meta", "MANIFEST")},
		{"meta/MANIFEST cut short", stopped, func(t *testing.T, dir string) {
			p := filepath.Join(dir, "meta", "MANIFEST")
			fi, _ := os.Stat(p)
			os.Truncate(p, fi.Size()-3)
		}},
		{"a table cut in half", stopped, func(t *testing.T, dir string) {
			p := globOne(t, filepath.Join(dir, "meta", "*.sst"))
			fi, _ := os.Stat(p)
			os.Truncate(p, fi.Size()/2)
		}},
		{"the metadata store put back from an older copy", stopped, func(t *testing.T, dir string) {
			// The store the kill left (same identity, an older
			// sequence) under the witness of the clean stop.
			os.RemoveAll(filepath.Join(dir, "meta"))
			if out, err := exec.Command("cp", "-a", filepath.Join(killed, "meta"), filepath.Join(dir, "meta")).CombinedOutput(); err != nil {
				t.Fatalf("cp: %v: %s", err, out)
			}
		}},
	}
	for _, c := range cases {
		step(t, c.name, func(t *testing.T) {
			dir := copyDataDir(t, c.from)
			c.damage(t, dir)
			before := dataFilesState(t, dir)
			d2 := newDaemon(t, withDataDir(dir), withKeyring(d.Keyring))
			d2.start(t)
			if !startsOrRefuses(t, d2) {
				msg := d2.output()
				for _, want := range []string{"damaged", "--accept-metadata-loss", "Nothing was changed"} {
					if !strings.Contains(msg, want) {
						t.Errorf("the refusal does not say %q:\n%s", want, msg)
					}
				}
				if after := dataFilesState(t, dir); after != before {
					t.Fatalf("a refused start changed the data files:\nbefore %s\nafter  %s", before, after)
				}
				return
			}
			got, err := os.ReadFile(d2.volumePath(vol.VolumeId))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got[:len(data)], data) {
				t.Fatalf("the daemon started and the volume reads differently at byte %d", firstDifference(got, data))
			}
		})
	}

	step(t, "--accept-metadata-loss starts on a damaged store and keeps what it cannot place", func(t *testing.T) {
		dir := copyDataDir(t, killed)
		logFlip(0.1)(t, dir)
		d2 := newDaemon(t, withDataDir(dir), withKeyring(d.Keyring), withDaemonArgs("--accept-metadata-loss"))
		d2.start(t)
		d2.waitReady(t)
		kept, _ := filepath.Glob(filepath.Join(dir, "lost+found", "*", vol.VolumeId+".slots"))
		if len(kept) != 1 {
			t.Fatalf("lost+found: %v, want the volume's unplaced slots", kept)
		}
		slots, err := os.ReadFile(kept[0])
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(d2.volumePath(vol.VolumeId))
		if err != nil {
			t.Fatal(err)
		}
		for off := 0; off < len(data); off += 64 << 10 {
			blk := data[off : off+64<<10]
			if !bytes.Equal(got[off:off+64<<10], blk) && !bytes.Contains(slots, blk) {
				t.Fatalf("block at %d is neither in the volume nor in lost+found", off)
			}
		}
		if err := d2.stop(t); err != nil {
			t.Fatal(err)
		}
		d2.restart(t) // the next start, without the flag, is a normal one
	})
}

// startsOrRefuses waits for a daemon just started to serve (true) or to
// exit non-zero (false).
func startsOrRefuses(t *testing.T, d *daemon) bool {
	t.Helper()
	deadline := time.Now().Add(readyTimeout)
	for time.Now().Before(deadline) {
		if err, exited := d.waitExit(100 * time.Millisecond); exited {
			if err == nil {
				t.Fatal("the daemon exited 0 at start")
			}
			t.Logf("refused: %s", lastLines(d.output(), 2))
			return false
		}
		if r := run(10*time.Second, d.environ(), cowvolBin, "--socket", d.Socket, "describe-volumes"); r.Code == 0 {
			return true
		}
	}
	t.Fatalf("the daemon neither served nor exited within %v", readyTimeout)
	return false
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// copyDataDir copies a stopped daemon's data dir, holes and all.
func copyDataDir(t *testing.T, dir string) string {
	t.Helper()
	to := filepath.Join(t.TempDir(), "data")
	if out, err := exec.Command("cp", "-a", "--sparse=always", dir, to).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	return to
}

// dataFilesState describes every volume data file: its content and the
// space it takes (a punched hole changes the second, not the size).
func dataFilesState(t *testing.T, dir string) string {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join(dir, "volumes", "*.data"))
	var b strings.Builder
	for _, p := range paths {
		content, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s %d blocks %x; ", filepath.Base(p), st.Blocks, sha256.Sum256(content))
	}
	return b.String()
}

func globOne(t *testing.T, pattern string) string {
	t.Helper()
	m, _ := filepath.Glob(pattern)
	if len(m) == 0 {
		t.Fatalf("nothing matches %s", pattern)
	}
	return m[len(m)-1]
}

func removeFile(elem ...string) func(t *testing.T, dir string) {
	return func(t *testing.T, dir string) {
		if err := os.Remove(filepath.Join(append([]string{dir}, elem...)...)); err != nil {
			t.Fatal(err)
		}
	}
}

func firstDifference(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
