package integration

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Crash trials (`make torture`; a short run in `make test`): a writer does
// random O_DIRECT writes and fdatasyncs through a loop device on a volume,
// or files with fsync in ext4 on one, and records what was acknowledged; the
// daemon is SIGKILLed at a random moment, restarted on its own (stale socket,
// dead FUSE mount, the loop device still attached to the dead file, as
// systemd would find them), and every acknowledged write must read back
// exactly. One kind of trial also has a snapshot flush in flight at the kill:
// after the restart it completes and holds exactly the volume's content at
// its call.
//
//	COWVOL_TORTURE_TRIALS=N   trials to run (default 5)
//	COWVOL_TORTURE_SEED=S     run the one trial of seed S (replay)
//
// A trial's kind and every random choice in it come from its seed; the kill
// lands wherever the daemon is at that moment, so a replay repeats the
// workload and the timing of the kill, not the daemon's exact state.

const (
	tortureVolSize  = 128 * mib
	torturePage     = 4096 // the unit the writer versions
	tortureWriters  = 4
	tortureMaxPages = 32 // a write covers 1..32 pages: within and across 64 KiB blocks
)

// trialKind is what a crash trial exercises.
type trialKind int

const (
	trialRaw      trialKind = iota // random O_DIRECT writes + fdatasync on the loop device
	trialSnapshot                  // the same, with a snapshot flush in flight at the kill
	trialExt4                      // files + fsync in ext4; e2fsck after journal replay
	// The raw and snapshot trials on an encrypted volume: a crash must
	// never separate a sealed sector from its seal (a read would fail).
	trialEncryptedRaw
	trialEncryptedSnapshot
	trialKinds
)

func (k trialKind) String() string {
	return [...]string{"raw", "snapshot", "ext4", "encrypted-raw", "encrypted-snapshot"}[k]
}

func TestTortureCrashTrials(t *testing.T) {
	requirePrereqs(t)
	var seeds []uint64
	if s := os.Getenv("COWVOL_TORTURE_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("COWVOL_TORTURE_SEED=%q: %v", s, err)
		}
		seeds = []uint64{seed}
	} else {
		n := 5
		if s := os.Getenv("COWVOL_TORTURE_TRIALS"); s != "" {
			var err error
			if n, err = strconv.Atoi(s); err != nil || n < 1 {
				t.Fatalf("COWVOL_TORTURE_TRIALS=%q: want a positive number", s)
			}
		}
		base := uint64(time.Now().UnixNano()) % 1_000_000_000 * 1000
		for i := range n {
			seeds = append(seeds, base+uint64(i))
		}
		t.Logf("torture: %d trials, seeds %d..%d (replay one: COWVOL_TORTURE_SEED=<seed>)", n, seeds[0], seeds[len(seeds)-1])
	}
	var failed []uint64
	start := time.Now()
	for _, seed := range seeds {
		kind := trialKind(seed % uint64(trialKinds))
		ok := t.Run(fmt.Sprintf("seed=%d/%s", seed, kind), func(t *testing.T) {
			t.Logf("torture trial seed %d (%s); replay: COWVOL_TORTURE_SEED=%d make torture", seed, kind, seed)
			switch kind {
			case trialRaw, trialSnapshot, trialEncryptedRaw, trialEncryptedSnapshot:
				rawCrashTrial(t, seed, kind == trialSnapshot || kind == trialEncryptedSnapshot,
					kind == trialEncryptedRaw || kind == trialEncryptedSnapshot)
			case trialExt4:
				ext4CrashTrial(t, seed)
			}
		})
		if !ok {
			failed = append(failed, seed)
		}
	}
	t.Logf("torture: %d trials in %v, %d failed %v", len(seeds), time.Since(start).Round(time.Second), len(failed), failed)
}

// pageContent fills p (one page) with the content of version ver of page
// pg: a header naming both, a CRC of the rest, then pseudo-random bytes.
// Version 0 is the never-written page: all zeros.
func pageContent(p []byte, pg, ver uint64) {
	if ver == 0 {
		clear(p)
		return
	}
	binary.LittleEndian.PutUint64(p[0:], pg)
	binary.LittleEndian.PutUint64(p[8:], ver)
	io.ReadFull(randReader(pg, ver), p[16:len(p)-4])
	binary.LittleEndian.PutUint32(p[len(p)-4:], crc32.ChecksumIEEE(p[:len(p)-4]))
}

// pageVersion decodes which version of page pg p holds, and whether p is
// exactly that version's content.
func pageVersion(p []byte, pg uint64) (ver uint64, ok bool) {
	if bytes.Count(p, []byte{0}) == len(p) {
		return 0, true
	}
	if binary.LittleEndian.Uint64(p[0:]) != pg {
		return 0, false
	}
	ver = binary.LittleEndian.Uint64(p[8:])
	want := make([]byte, len(p))
	pageContent(want, pg, ver)
	return ver, bytes.Equal(p, want)
}

// pageModel is what a page may read as after a crash: its acknowledged
// version, or any version written after it that no fdatasync covered.
type pageModel struct {
	acked   uint64   // 0: never acknowledged (zeros allowed)
	pending []uint64 // versions written (or attempted) since
	last    uint64   // the newest version whose write returned success
}

// rawWriters is the writer of a raw trial: tortureWriters goroutines, each
// on its own stripe of pages and its own O_DIRECT descriptor of the loop
// device, writing and fdatasyncing at random until an error (the kill).
type rawWriters struct {
	dev   string
	pages uint64
	ver   atomic.Uint64 // the last version handed out, unique across writers

	// gate is held shared by every write; the snapshot step takes it
	// exclusively so that no write is in flight at the call.
	gate sync.RWMutex

	mu    sync.Mutex // guards model
	model map[uint64]*pageModel

	writes, syncs atomic.Int64
	errs          []error // one per writer, its first error (the kill)
}

func newRawWriters(dev string, size int64) *rawWriters {
	return &rawWriters{dev: dev, pages: uint64(size / torturePage), model: make(map[uint64]*pageModel)}
}

// run runs the writers until each fails, then returns.
func (w *rawWriters) run(seed uint64) {
	var wg sync.WaitGroup
	w.errs = make([]error, tortureWriters)
	for i := range tortureWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.errs[i] = w.writer(rand.New(rand.NewPCG(seed, uint64(i))), uint64(i))
		}()
	}
	wg.Wait()
}

// alignedBuf returns n bytes aligned for O_DIRECT.
func alignedBuf(n int) []byte {
	b := make([]byte, n+torturePage)
	off := torturePage - int(uintptr(unsafe.Pointer(unsafe.SliceData(b)))%torturePage)
	if off == torturePage {
		off = 0
	}
	return b[off : off+n]
}

func (w *rawWriters) writer(rng *rand.Rand, idx uint64) error {
	f, err := os.OpenFile(w.dev, os.O_RDWR|unix.O_DIRECT, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	stripe := w.pages / tortureWriters
	first := idx * stripe
	buf := alignedBuf(tortureMaxPages * torturePage)
	// written: versions written by this writer since its last fdatasync;
	// a successful fdatasync acknowledges them.
	written := make(map[uint64]uint64)
	for {
		n := uint64(1 + rng.IntN(tortureMaxPages))
		if rng.IntN(4) == 0 {
			n = 1
		}
		pg := first + rng.Uint64N(stripe-n+1)
		w.gate.RLock()
		vers := make([]uint64, n)
		w.mu.Lock()
		for i := range n {
			vers[i] = w.ver.Add(1)
			m := w.model[pg+i]
			if m == nil {
				m = &pageModel{}
				w.model[pg+i] = m
			}
			m.pending = append(m.pending, vers[i])
		}
		w.mu.Unlock()
		for i := range n {
			pageContent(buf[i*torturePage:(i+1)*torturePage], pg+i, vers[i])
		}
		_, err := unix.Pwrite(int(f.Fd()), buf[:n*torturePage], int64(pg*torturePage))
		if err == nil {
			w.mu.Lock()
			for i := range n {
				w.model[pg+i].last = vers[i]
				written[pg+i] = vers[i]
			}
			w.mu.Unlock()
			w.writes.Add(1)
		}
		w.gate.RUnlock()
		if err != nil {
			return fmt.Errorf("pwrite %s pages %d+%d: %w", w.dev, pg, n, err)
		}
		if rng.IntN(3) == 0 {
			if err := unix.Fdatasync(int(f.Fd())); err != nil {
				return fmt.Errorf("fdatasync %s: %w", w.dev, err)
			}
			w.syncs.Add(1)
			w.mu.Lock()
			for p, v := range written {
				m := w.model[p]
				m.acked = v
				// Versions before the acknowledged one can no
				// longer come back; later ones (none: this
				// writer owns the page) could.
				for len(m.pending) > 0 && m.pending[0] <= v {
					m.pending = m.pending[1:]
				}
			}
			w.mu.Unlock()
			clear(written)
		}
	}
}

// freeze waits until no write is in flight, blocks new ones, and returns
// the volume's content as the writers left it (page -> version).
func (w *rawWriters) freeze() (content map[uint64]uint64, thaw func()) {
	w.gate.Lock()
	w.mu.Lock()
	content = make(map[uint64]uint64, len(w.model))
	for p, m := range w.model {
		if m.last != 0 {
			content[p] = m.last
		}
	}
	w.mu.Unlock()
	return content, w.gate.Unlock
}

// check reads file (the volume or its new loop device) and fails the test
// for every page that is neither its acknowledged version nor a later one
// written after it, nor zeros where nothing was acknowledged.
func (w *rawWriters) check(t testing.TB, file string) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, mib)
	var bad, ackedPages, newer int
	for off := int64(0); off < int64(w.pages*torturePage); off += int64(len(buf)) {
		if _, err := f.ReadAt(buf, off); err != nil {
			t.Fatalf("reading %s at %d: %v", file, off, err)
		}
		for i := 0; i < len(buf); i += torturePage {
			pg := uint64(off+int64(i)) / torturePage
			ver, ok := pageVersion(buf[i:i+torturePage], pg)
			m := w.model[pg]
			if m == nil {
				m = &pageModel{}
			}
			allowed := ver == m.acked
			for _, v := range m.pending {
				allowed = allowed || v == ver
			}
			if !ok || !allowed {
				bad++
				if bad <= 10 {
					t.Errorf("page %d reads as version %d (intact %v); acknowledged %d, written since %v", pg, ver, ok, m.acked, m.pending)
				}
				continue
			}
			if m.acked != 0 {
				ackedPages++
			}
			if ver != m.acked {
				newer++
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%d pages of %s wrong after the crash", bad, file)
	}
	t.Logf("all %d pages as allowed: %d with an acknowledged version, %d hold a newer unacknowledged one", w.pages, ackedPages, newer)
}

// checkExact fails the test unless file holds exactly content (page ->
// version; absent pages zeros).
func checkExact(t testing.TB, file string, pages uint64, content map[uint64]uint64) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, mib)
	want := make([]byte, torturePage)
	bad := 0
	for off := int64(0); off < int64(pages*torturePage); off += int64(len(buf)) {
		if _, err := f.ReadAt(buf, off); err != nil {
			t.Fatalf("reading %s at %d: %v", file, off, err)
		}
		for i := 0; i < len(buf); i += torturePage {
			pg := uint64(off+int64(i)) / torturePage
			pageContent(want, pg, content[pg])
			if !bytes.Equal(buf[i:i+torturePage], want) {
				bad++
				if bad <= 10 {
					got, ok := pageVersion(buf[i:i+torturePage], pg)
					t.Errorf("page %d: version %d (intact %v), want %d", pg, got, ok, content[pg])
				}
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%d pages of %s differ from the content at the snapshot's call", bad, file)
	}
}

// rawCrashTrial: random writes through the loop device, kill -9, restart,
// check. With snapshot, a snapshot is taken (writes paused at the call) and
// the daemon killed while its flush is likely in flight. Encrypted runs it
// on an encrypted volume.
func rawCrashTrial(t *testing.T, seed uint64, withSnapshot, encrypted bool) {
	rng := rand.New(rand.NewPCG(seed, 0x7e57))
	d := startDaemon(t)
	var vol volume
	args := []string{"create-volume", "--size", fmt.Sprintf("%dMiB", tortureVolSize/mib)}
	if encrypted {
		args = append(args, "--encrypted")
	}
	d.mustJSON(t, d.mustCLI(t, args...), &vol)
	if vol.Encrypted != encrypted {
		t.Fatalf("create-volume %v: %+v", args, vol)
	}
	lo := attachLoop(t, d.volumePath(vol.VolumeId))
	w := newRawWriters(lo.Dev, tortureVolSize)
	done := make(chan struct{})
	go func() { defer close(done); w.run(seed) }()

	var snapID string
	var atCall map[uint64]uint64
	if withSnapshot {
		time.Sleep(time.Duration(300+rng.IntN(1500)) * time.Millisecond)
		var thaw func()
		atCall, thaw = w.freeze()
		snapID = d.createSnapshot(t, vol.VolumeId).SnapshotId
		thaw()
		// Kill once the flush is past a random point, so the kill lands
		// mid-flush (unless the flush outruns the polling).
		target := 1 + rng.IntN(90)
		var at snapshot
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
			at = d.describeSnapshots(t, "--snapshot-ids", snapID)[0]
			p, _ := strconv.Atoi(strings.TrimSuffix(at.Progress, "%"))
			if at.State != "pending" || p >= target {
				break
			}
		}
		t.Logf("snapshot %s of %d written pages; kill -9 at %s %s (target %d%%)", snapID, len(atCall), at.State, at.Progress, target)
	} else {
		time.Sleep(time.Duration(200+rng.IntN(2500)) * time.Millisecond)
	}
	d.kill9(t)
	select {
	case <-done:
	case <-time.After(cmdTimeout):
		t.Fatal("the writers did not see an error within 2 minutes of the kill")
	}
	t.Logf("writers: %d writes, %d fdatasyncs, then %v", w.writes.Load(), w.syncs.Load(), errors.Join(w.errs...))

	// As systemd would: restart at once, the loop device still attached
	// to the dead mount's file; the daemon clears the mount by itself.
	d.restart(t)
	lo.detach(t)
	w.check(t, d.volumePath(vol.VolumeId))
	lo2 := attachLoop(t, d.volumePath(vol.VolumeId))
	w.check(t, lo2.Dev)

	if withSnapshot {
		s := d.describeSnapshots(t, "--snapshot-ids", snapID)
		if len(s) != 1 {
			t.Fatalf("snapshot %s after the restart: %+v", snapID, s)
		}
		t.Logf("snapshot %s after the restart: %s %s", snapID, s[0].State, s[0].Progress)
		d.waitSnapshotCompleted(t, snapID)
		checkExact(t, d.snapshotPath(snapID), w.pages, atCall)
		var rv volume
		d.mustJSON(t, d.mustCLI(t, "create-volume", "--snapshot-id", snapID), &rv)
		checkExact(t, d.volumePath(rv.VolumeId), w.pages, atCall)
	}
}

// ext4CrashTrial: ext4 on the volume, a writer creating files with fsync
// (and fsync of their directory), kill -9; after the restart the journal
// replays on mount, every acknowledged file is there whole, and e2fsck
// finds the file system clean.
func ext4CrashTrial(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0xe4))
	d := startDaemon(t)
	vol := d.createVolume(t, "512MiB")
	lo := attachLoop(t, d.volumePath(vol.VolumeId))
	mkfsExt4(t, lo.Dev)
	m := mountDev(t, lo.Dev, t.TempDir())

	acked := make(map[string]string) // relative path -> SHA-256 of its content
	var ackMu sync.Mutex
	done := make(chan error, 1)
	go func() {
		wrng := rand.New(rand.NewPCG(seed, 0xf5))
		var batch map[string]string
		for i := 0; ; i++ {
			dir := filepath.Join(m.Dir, fmt.Sprintf("d%02d", i%8))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				done <- err
				return
			}
			rel := filepath.Join(filepath.Base(dir), fmt.Sprintf("f%06d", i))
			size := wrng.Int64N(256 * kib)
			sum, err := writeSynced(filepath.Join(m.Dir, rel), seed, uint64(i), size)
			if err != nil {
				done <- err
				return
			}
			if batch == nil {
				batch = make(map[string]string)
			}
			batch[rel] = sum
			if wrng.IntN(4) == 0 { // fsync the directories: the batch's names are durable
				for j := range 8 {
					if err := fsyncPath(filepath.Join(m.Dir, fmt.Sprintf("d%02d", j))); err != nil && !errors.Is(err, os.ErrNotExist) {
						done <- err
						return
					}
				}
				ackMu.Lock()
				for k, v := range batch {
					acked[k] = v
				}
				ackMu.Unlock()
				batch = nil
			}
		}
	}()
	time.Sleep(time.Duration(500+rng.IntN(2500)) * time.Millisecond)
	d.kill9(t)
	select {
	case err := <-done:
		t.Logf("writer stopped: %v", err)
	case <-time.After(cmdTimeout):
		t.Fatal("the writer did not see an error within 2 minutes of the kill")
	}
	m.unmount(t) // the file system has seen I/O errors; unmount it as it is
	d.restart(t)
	lo.detach(t)

	ackMu.Lock()
	defer ackMu.Unlock()
	lo2 := attachLoop(t, d.volumePath(vol.VolumeId))
	m2 := mountDev(t, lo2.Dev, t.TempDir()) // replays the journal
	for rel, sum := range acked {
		if _, err := os.Stat(filepath.Join(m2.Dir, rel)); err != nil {
			t.Errorf("acknowledged file %s: %v", rel, err)
			continue
		}
		if got := fileSHA256(t, filepath.Join(m2.Dir, rel)); got != sum {
			t.Errorf("acknowledged file %s: sha256 %s, want %s", rel, got, sum)
		}
	}
	m2.unmount(t)
	e2fsckClean(t, lo2.Dev)
	t.Logf("%d acknowledged files intact; e2fsck -fn clean after journal replay", len(acked))
}

// writeSynced writes size bytes of randReader(seed, n) to a new file, fsyncs
// and closes it, and returns the content's hex SHA-256.
func writeSynced(path string, seed, n uint64, size int64) (string, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), randReader(seed, n), size); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func fsyncPath(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
