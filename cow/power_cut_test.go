package cow

import (
	"bytes"
	"crypto/sha256"
	"math/rand/v2"
	"sync"
	"testing"
)

// A power cut, simulated at the data files: every page written since the
// file's last fdatasync holds, after the cut, any of the contents it had
// since (writeback may have written any of them), independently of its
// neighbours, and the engine stops without a final sync. (The metadata store
// is not cut: what the engine applied to Badger stays, which only ever
// claims more durability than a real cut gives, and the engine applies
// metadata only after the data file it refers to is synced.)

const crashPage = 4096

// crashFile is a data file that remembers, per page written since the last
// fdatasync covered it, its durable content and every content it had since.
type crashFile struct {
	f *osFile
	// mu guards the fields that follow (and serialises writes, so that
	// each page version is recorded in order).
	mu   sync.Mutex
	undo map[int64]*undoPage
	seq  uint64
}

type undoPage struct {
	durable []byte        // the page as the last fdatasync that covered it left it
	since   []pageVersion // its contents since, oldest first
}

type pageVersion struct {
	seq  uint64
	data []byte
}

func (c *crashFile) ReadAt(p []byte, off int64) (int, error) { return c.f.ReadAt(p, off) }

// changeLocked runs op, which changes [off, off+n), recording the pages'
// contents before (for pages not yet unsynced) and after.
func (c *crashFile) changeLocked(off, n int64, op func() error) error {
	first, last := off/crashPage, (off+n-1)/crashPage
	for pg := first; pg <= last; pg++ {
		if c.undo[pg] == nil {
			u := &undoPage{durable: make([]byte, crashPage)}
			c.f.ReadAt(u.durable, pg*crashPage)
			c.undo[pg] = u
		}
	}
	if err := op(); err != nil {
		return err
	}
	c.seq++
	for pg := first; pg <= last; pg++ {
		v := pageVersion{seq: c.seq, data: make([]byte, crashPage)}
		c.f.ReadAt(v.data, pg*crashPage)
		c.undo[pg].since = append(c.undo[pg].since, v)
	}
	return nil
}

func (c *crashFile) WriteAt(p []byte, off int64) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var n int
	err := c.changeLocked(off, int64(len(p)), func() (err error) {
		n, err = c.f.WriteAt(p, off)
		return err
	})
	return n, err
}

func (c *crashFile) Punch(off, n int64) error {
	if n <= 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changeLocked(off, n, func() error { return c.f.Punch(off, n) })
}

// Sync makes the pages' contents as of its start durable; what is written
// while it runs may or may not be.
func (c *crashFile) Sync() error {
	c.mu.Lock()
	before := c.seq
	c.mu.Unlock()
	if err := c.f.Sync(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for pg, u := range c.undo {
		i := len(u.since) - 1
		for i >= 0 && u.since[i].seq > before {
			i--
		}
		switch {
		case i == len(u.since)-1:
			delete(c.undo, pg)
		case i >= 0:
			u.durable, u.since = u.since[i].data, u.since[i+1:]
		}
	}
	return nil
}

func (c *crashFile) Truncate(size int64) error { return c.f.Truncate(size) }
func (c *crashFile) Close() error              { return c.f.Close() }

// cut leaves each unsynced page holding its durable content or any it had
// since, at random; it returns how many pages it set to an older content.
func (c *crashFile) cut(rng *rand.Rand) (lost int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for pg, u := range c.undo {
		if k := rng.IntN(len(u.since) + 1); k < len(u.since) {
			data := u.durable
			if k > 0 {
				data = u.since[k-1].data
			}
			c.f.f.WriteAt(data, pg*crashPage)
			lost++
		}
	}
	c.undo = map[int64]*undoPage{}
	return lost
}

// crashFiles opens data files as crashFiles and remembers them.
type crashFiles struct {
	mu    sync.Mutex
	files []*crashFile
}

func (cf *crashFiles) open(path string, create bool) (blockFile, error) {
	f, err := openOSFile(path, create)
	if err != nil {
		return nil, err
	}
	c := &crashFile{f: f, undo: map[int64]*undoPage{}}
	cf.mu.Lock()
	cf.files = append(cf.files, c)
	cf.mu.Unlock()
	return c, nil
}

// powerCut stops eng as a cut would: its background work stops where it
// is, nothing is synced, and the data files lose unsynced pages.
func (cf *crashFiles) powerCut(eng *Engine, rng *rand.Rand) (lost int) {
	eng.StopBackground()
	eng.volumes.mu.Lock()
	eng.volumes.closed = true
	eng.volumes.mu.Unlock()
	cf.mu.Lock()
	files := cf.files
	cf.files = nil
	cf.mu.Unlock()
	for _, c := range files {
		lost += c.cut(rng)
		c.Close()
	}
	eng.meta.Close()
	eng.lock.Close()
	return lost
}

// TestPowerCutModel writes, syncs, snapshots and cuts the power at random,
// plaintext and encrypted, at 4 KiB and 64 KiB blocks. After every cut each
// page of the volume must hold what the last acknowledged sync left there or
// something written after it, and never fail to read (an encrypted sector
// separated from its seal would); every snapshot, resumed after the cuts,
// must hold exactly its call's content.
func TestPowerCutModel(t *testing.T) {
	forEachModelCase(t, func(t *testing.T, seed uint64, bs int, encrypted bool) {
		runPowerCutModel(t, seed, bs, encrypted, *modelSteps, false)
	})
}

// TestPowerCutDuringMapLoad is TestPowerCutModel with every start's map
// load held at a random page until a random later step (or the next cut):
// a cut while slots are taken from past the data file's end and none below
// it is reclaimed yet, and a load that finds the slots end a cut left.
func TestPowerCutDuringMapLoad(t *testing.T) {
	forEachModelCase(t, func(t *testing.T, seed uint64, bs int, encrypted bool) {
		runPowerCutModel(t, seed, bs, encrypted, *modelSteps, true)
	})
}

func runPowerCutModel(t *testing.T, seed uint64, bs int, encrypted bool, steps int, gated bool) {
	rng := rand.New(rand.NewPCG(seed, 0xc07))
	dir := t.TempDir()
	var keys KeyManager
	if encrypted {
		keys = testKeyring(t)
	}
	files := &crashFiles{}
	size := int64(1 << 20)
	if gated {
		size = 16 << 20
	}
	var gate *loadGate
	open := func() *Engine {
		opts := Options{DataDir: dir, SyncInterval: 1 << 40, GCGrace: 1, Keys: keys, openFile: files.open}
		if gated {
			gate = newLoadGate(uint64(rng.Int64N(max(1, size/int64(bs)/pageLen))))
			opts.afterLoadPage = gate.hook
		}
		eng, err := Open(opts)
		if err != nil {
			t.Fatal(err)
		}
		g := gate
		t.Cleanup(func() {
			if g != nil {
				g.open()
			}
			eng.Close()
		})
		return eng
	}
	eng := open()
	pages := size / crashPage
	vi, err := eng.CreateVolume(ctx, CreateVolumeParams{Size: size, BlockSize: bs, Encrypted: encrypted})
	if err != nil {
		t.Fatal(err)
	}
	h := openHandle(t, eng, vi.ID)
	cur := make([]byte, size)
	// allowed[pg]: the contents page pg may hold after a cut: what the
	// last sync acknowledged, and each version written since.
	allowed := make([]map[[32]byte]bool, pages)
	ack := func() {
		for pg := range allowed {
			allowed[pg] = map[[32]byte]bool{sha256.Sum256(cur[pg*crashPage : (pg+1)*crashPage]): true}
		}
	}
	ack()
	snaps := map[string][]byte{}
	cuts, lost := 0, 0
	for step := range steps {
		switch op := rng.IntN(100); {
		case op < 60:
			off := rng.Int64N(size)
			most := 3 * bs
			if op < 6 { // some of 1 MiB, which an encrypted volume splits (sealed_split.go)
				most = 1 << 20
			}
			n := min(int64(1+rng.IntN(most)), size-off)
			if rng.IntN(2) == 0 { // page-aligned, as file systems write
				off &^= crashPage - 1
				n = min((n+crashPage-1)&^(crashPage-1), size-off)
			}
			p := make([]byte, n)
			for i := range p {
				p[i] = byte(rng.IntN(255) + 1)
			}
			if _, err := h.WriteAt(p, off); err != nil {
				t.Fatalf("step %d: write: %v", step, err)
			}
			copy(cur[off:], p)
			for pg := off / crashPage; pg*crashPage < off+n; pg++ {
				allowed[pg][sha256.Sum256(cur[pg*crashPage:(pg+1)*crashPage])] = true
			}
		case op < 70:
			if err := h.Sync(); err != nil {
				t.Fatalf("step %d: sync: %v", step, err)
			}
			ack()
		case op < 75:
			// The fork makes everything written before it durable.
			si, err := eng.CreateSnapshot(ctx, CreateSnapshotParams{VolumeID: vi.ID})
			if err == nil {
				snaps[si.ID] = bytes.Clone(cur)
				ack()
			}
		case op < 80:
			lost += files.powerCut(eng, rng)
			cuts++
			eng = open()
			h = openHandle(t, eng, vi.ID)
			got := make([]byte, size)
			if _, err := h.ReadAt(got, 0); err != nil {
				t.Fatalf("step %d: read after a power cut: %v", step, err)
			}
			for pg := range allowed {
				if !allowed[pg][sha256.Sum256(got[pg*crashPage:(pg+1)*crashPage])] {
					t.Fatalf("step %d: after a power cut page %d holds neither its acknowledged content nor one written since", step, pg)
				}
			}
			copy(cur, got)
			ack()
		case op < 84 && gate != nil:
			gate.open()
		}
	}
	if gate != nil {
		gate.open()
	}
	for id, want := range snaps {
		waitSnapshot(t, eng, id)
		got := make([]byte, size)
		if _, err := eng.ReadSnapshot(ctx, id, got, 0); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("snapshot %s after %d cuts: %v, differs at %d", id, cuts, err, firstDiff(got, want))
		}
	}
	t.Logf("%d steps, %d power cuts, %d unsynced pages lost, %d snapshots", steps, cuts, lost, len(snaps))
}
