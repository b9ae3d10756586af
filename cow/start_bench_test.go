package cow

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestBigStart measures a start of the engine on a data dir with more than
// two million mapped blocks (COWVOL_BIG=1; COWVOL_BIG_DIR keeps the data
// set between runs, COWVOL_BIG_TRIALS sets the rounds): after a clean
// Close, and after a kill -9 of a process that had just written, unsynced,
// through its map journal. Each start runs in a child process (this test
// binary again), so that its RSS is the engine's alone and the kill is a
// real SIGKILL. It logs, per start: Open's duration, the time from the
// start of Open to the first read and write served, to the end of the map
// load, the phases the engine logs and the RSS.
func TestBigStart(t *testing.T) {
	if os.Getenv("COWVOL_BIG") == "" {
		t.Skip("COWVOL_BIG=1 runs the start measurement on a data set of 2 million mapped blocks (about 10 GiB)")
	}
	dir := os.Getenv("COWVOL_BIG_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	journal := dir + ".journal"
	if _, err := os.Stat(filepath.Join(dir, bigMarker)); err != nil {
		buildBigDataSet(t, dir, journal)
	}
	trials, _ := strconv.Atoi(os.Getenv("COWVOL_BIG_TRIALS"))
	for i := range max(trials, 1) {
		clean := runBigChild(t, "clean", dir, journal, false)
		runBigChild(t, "dirty", dir, journal, true)
		killed := runBigChild(t, "clean", dir, journal, false)
		t.Logf("trial %d, after a clean close: %s", i, clean)
		t.Logf("trial %d, after kill -9:      %s", i, killed)
	}
}

const (
	bigMarker    = "big-data-set"
	bigSize      = 12 << 30
	bigBlock     = 4 << 10
	bigFirst     = 2 << 20 // blocks written in order before the snapshot
	bigRandom    = 500_000 // random block writes after it
	bigKillWrite = 50_000  // random block writes, unsynced, before a kill
)

// buildBigDataSet writes, through the engine: 2 Mi blocks in order, a
// snapshot (completed: its change set stays for the blocks still live),
// then 500 000 random blocks, 4 KiB each.
func buildBigDataSet(t *testing.T, dir, journal string) {
	start := time.Now()
	eng, err := Open(Options{DataDir: dir, JournalDir: journal, GCGrace: time.Nanosecond, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	vi, err := eng.CreateVolume(ctx, CreateVolumeParams{Size: bigSize, BlockSize: bigBlock})
	if err != nil {
		t.Fatal(err)
	}
	h, err := eng.OpenVolume(vi.ID)
	if err != nil {
		t.Fatal(err)
	}
	// One content for every block: the snapshot's flush dedupes it to a
	// chunk (the flush is not what is measured).
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i%251 + 1)
	}
	for off := int64(0); off < bigFirst*bigBlock; off += int64(len(buf)) {
		if _, err := h.WriteAt(buf, off); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("wrote %d blocks in order: %v", bigFirst, time.Since(start))
	si, err := eng.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID})
	if err != nil {
		t.Fatal(err)
	}
	waitSnapshotFor(t, eng, si.ID, 20*time.Minute)
	t.Logf("snapshot completed: %v", time.Since(start))
	rng := rand.New(rand.NewPCG(1, 2))
	for range bigRandom {
		if _, err := h.WriteAt(buf[:bigBlock], rng.Int64N(bigSize/bigBlock)*bigBlock); err != nil {
			t.Fatal(err)
		}
	}
	h.Close()
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, bigMarker), []byte(vi.ID), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Logf("data set built in %v", time.Since(start))
}

// waitSnapshotFor waits up to d for snapshot id to complete.
func waitSnapshotFor(t testing.TB, eng *Engine, id string, d time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(d); ; time.Sleep(100 * time.Millisecond) {
		si, err := eng.SnapshotInfo(id)
		if err != nil || si.State == SnapshotError {
			t.Fatalf("snapshot %s: %v %s", id, err, si.StatusMessage)
		}
		if si.State == SnapshotCompleted {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("snapshot %s still %s after %v", id, si.State, d)
		}
	}
}

// runBigChild runs a start in a child process and returns what it
// measured. kill: the child writes, unsynced, and is killed with SIGKILL.
func runBigChild(t *testing.T, mode, dir, journal string, kill bool) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestBigStartChild$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "COWVOL_BIG_CHILD="+mode, "COWVOL_BIG_DIR="+dir, "COWVOL_BIG_JOURNAL="+journal)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var result string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		if r, ok := strings.CutPrefix(line, "BIGSTART "); ok {
			result = r
		}
		if line == "READY" && kill {
			cmd.Process.Kill() // SIGKILL, by the child's PID
		}
	}
	err = cmd.Wait()
	if !kill && err != nil {
		t.Fatalf("child %s: %v", mode, err)
	}
	if result == "" {
		t.Fatalf("child %s reported nothing", mode)
	}
	return result
}

// TestBigStartChild is the child of TestBigStart: one start, measured.
func TestBigStartChild(t *testing.T) {
	mode := os.Getenv("COWVOL_BIG_CHILD")
	if mode == "" {
		t.Skip("run by TestBigStart")
	}
	dir, journal := os.Getenv("COWVOL_BIG_DIR"), os.Getenv("COWVOL_BIG_JOURNAL")
	volID, err := os.ReadFile(filepath.Join(dir, bigMarker))
	if err != nil {
		t.Fatal(err)
	}
	logs := &captureHandler{}
	start := time.Now()
	eng, err := Open(Options{DataDir: dir, JournalDir: journal, GCGrace: time.Nanosecond, Logger: slog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	res := map[string]any{"open": time.Since(start).Round(time.Microsecond).String()}
	h, err := eng.OpenVolume(string(volID))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	p := make([]byte, bigBlock)
	at := func() int64 { return rng.Int64N(bigFirst) * bigBlock }
	if _, err := h.ReadAt(p, at()); err != nil {
		t.Fatal(err)
	}
	res["first_read"] = time.Since(start).Round(time.Microsecond).String()
	if _, err := h.WriteAt(p, at()); err != nil {
		t.Fatal(err)
	}
	res["first_write"] = time.Since(start).Round(time.Microsecond).String()
	loaded := make(chan error, 1)
	go func() {
		err := waitVolumesMapped(eng)
		res["mapped"] = time.Since(start).Round(time.Microsecond).String()
		if err == nil {
			err = waitVolumesLoaded(eng)
		}
		loaded <- err
	}()
	lat := "none (COWVOL_BIG_NOIO)"
	if os.Getenv("COWVOL_BIG_NOIO") == "" {
		lat = ioUntil(t, h, loaded, rng)
	} else if err := <-loaded; err != nil {
		t.Fatal(err)
	}
	res["loaded"] = time.Since(start).Round(time.Microsecond).String()
	res["io_during_load"] = lat
	res["rss_mib"], res["peak_rss_mib"], res["rss_anon_mib"], res["rss_file_mib"] = rssMiB()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	res["go_heap_mib"], res["go_sys_mib"] = ms.HeapAlloc>>20, ms.Sys>>20
	if path := os.Getenv("COWVOL_BIG_HEAP"); path != "" {
		if f, err := os.Create(path); err == nil {
			pprof.WriteHeapProfile(f)
			f.Close()
		}
	}
	vi, _ := eng.VolumeInfo(string(volID))
	res["mapped_blocks"] = vi.AllocatedBytes / bigBlock
	for _, r := range logs.records() {
		res[r.msg] = r.attrs
	}
	b, _ := json.Marshal(res)
	fmt.Printf("BIGSTART %s\n", b)
	if mode == "dirty" {
		for range bigKillWrite {
			if _, err := h.WriteAt(p, at()); err != nil {
				t.Fatal(err)
			}
		}
		fmt.Println("READY")
		select {} // killed by the parent
	}
	h.Close()
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}
}

// ioUntil reads and writes random 4 KiB blocks, one at a time, until
// done delivers (the map load's end), and describes their latencies.
func ioUntil(t *testing.T, h *Volume, done <-chan error, rng *rand.Rand) string {
	p := make([]byte, bigBlock)
	var lat []time.Duration
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			if len(lat) == 0 {
				return "none"
			}
			slices.Sort(lat)
			q := func(f float64) time.Duration { return lat[int(f*float64(len(lat)-1))].Round(time.Microsecond) }
			return fmt.Sprintf("%d ops, p50 %v, p99 %v, max %v", len(lat), q(0.5), q(0.99), lat[len(lat)-1].Round(time.Microsecond))
		default:
		}
		t0 := time.Now()
		var err error
		if off := rng.Int64N(bigFirst) * bigBlock; len(lat)%2 == 0 {
			_, err = h.ReadAt(p, off)
		} else {
			_, err = h.WriteAt(p, off)
		}
		if err != nil {
			t.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
}

// rssMiB is this process's resident set, its peak, and the resident set's
// anonymous memory and file pages (Badger's tables are mapped: the pages
// a scan touched count, though the kernel may drop them at will), in MiB.
func rssMiB() (rss, peak, anon, file int64) {
	b, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = kb >> 10
		case "VmHWM:":
			peak = kb >> 10
		case "RssAnon:":
			anon = kb >> 10
		case "RssFile:":
			file = kb >> 10
		}
	}
	return rss, peak, anon, file
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// captureHandler keeps the engine's log records at info and above.
type captureHandler struct {
	mu   sync.Mutex
	recs []capturedRecord
}

type capturedRecord struct {
	msg   string
	attrs map[string]string
}

func (c *captureHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (c *captureHandler) Handle(_ context.Context, r slog.Record) error {
	cr := capturedRecord{msg: r.Message, attrs: map[string]string{}}
	r.Attrs(func(a slog.Attr) bool {
		cr.attrs[a.Key] = a.Value.String()
		return true
	})
	c.mu.Lock()
	c.recs = append(c.recs, cr)
	c.mu.Unlock()
	return nil
}

func (c *captureHandler) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *captureHandler) WithGroup(string) slog.Handler      { return c }

func (c *captureHandler) records() []capturedRecord {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]capturedRecord(nil), c.recs...)
}

// waitVolumesLoaded waits until every volume's load is over: map in
// memory, unused slots reclaimed.
func waitVolumesLoaded(eng *Engine) error {
	for _, v := range eng.allVolumes() {
		if err := v.waitLoaded(context.Background()); err != nil {
			return err
		}
	}
	return nil
}

// waitVolumesMapped waits until every volume's map is in memory.
func waitVolumesMapped(eng *Engine) error {
	for _, v := range eng.allVolumes() {
		if err := v.waitMapped(context.Background()); err != nil {
			return err
		}
	}
	return nil
}
