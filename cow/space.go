package cow

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cowvol/cowvol/cow/snapstore"
)

// Badger writes its tables and value log through memory maps of sparse
// files: on a full file system a store into such a map is a SIGBUS, which
// kills the daemon (found by TestTortureDataDirFull: a restart on a full
// data dir crashed replaying the memtable). So nothing the engine writes
// besides metadata takes the last metadataReserve bytes of the data dir's
// file system: neither block data nor a snapshot store that shares the
// file system (the default one, <data-dir>/snapshots). A ballast file
// (ballast.go) keeps as much again for when something else fills the disk.
const (
	// DefaultMetadataReserve is the free space new block data and
	// snapshot objects leave for the metadata store, unless
	// Options.MetadataReserve says otherwise; the ballast is as big.
	DefaultMetadataReserve = 64 << 20
	// metadataMinFree is what opening the metadata store needs: it may
	// flush a replayed memtable (16 MiB) into a table. Below it, the
	// ballast is released.
	metadataMinFree = 32 << 20
	// spaceRecheckBytes and spaceRecheckAge bound how stale the free
	// space figure may get between statfs calls.
	spaceRecheckBytes = 8 << 20
	spaceRecheckAge   = time.Second
	// storeClaimSlack is added to each snapshot object's size: its inode,
	// directory entries, a new fan-out directory.
	storeClaimSlack = 8 << 10
)

// spaceGuard answers "may block data take n more bytes?" from a statfs of
// the data dir refreshed every spaceRecheckBytes allocated or
// spaceRecheckAge, whichever comes first, and "may a snapshot store on the
// data dir's file system write n bytes?" (Claim) from a fresh one. Both
// leave the reserve free, and room for the ballast while it is released.
type spaceGuard struct {
	dir     string
	reserve int64
	ballast *ballast // nil without a reserve
	statfs  func(dir string) (int64, error)
	log     *slog.Logger

	since   atomic.Int64 // bytes allocated since the last statfs
	free    atomic.Int64 // free bytes at the last statfs
	claimed atomic.Int64 // snapshot store writes claimed and not over

	mu      sync.Mutex // guards checked and serialises statfs
	checked time.Time
}

var _ snapstore.SpaceGuard = (*spaceGuard)(nil)

// openSpaceGuard checks the data dir's free space before the metadata store
// opens. On a disk too full to open it, the ballast is released (the data
// dir then runs with new block data refused until there is room to put the
// ballast back); with no ballast to release, it refuses, saying to free
// space. reserve 0 means DefaultMetadataReserve, negative none (tests);
// statfs nil means freeBytes.
func openSpaceGuard(dir string, reserve int64, statfs func(string) (int64, error), log *slog.Logger) (*spaceGuard, error) {
	if reserve == 0 {
		reserve = DefaultMetadataReserve
	}
	if statfs == nil {
		statfs = freeBytes
	}
	g := &spaceGuard{dir: dir, reserve: max(reserve, 0), statfs: statfs, log: log}
	if g.reserve > 0 {
		g.ballast = openBallast(filepath.Join(dir, ballastName), g.reserve)
	}
	free, err := statfs(dir)
	if err != nil {
		return nil, err
	}
	if free < metadataMinFree && g.ballast.present() {
		if err := g.ballast.release(); err != nil {
			return nil, err
		}
		log.Warn("the data dir's disk is full: released the ballast so that the metadata store can open; "+
			"new block data and snapshots are refused until space is freed (delete snapshots or volumes, or free space on the disk)",
			"dir", dir, "free_mib", free>>20, "released_mib", g.ballast.size>>20)
		if free, err = statfs(dir); err != nil {
			return nil, err
		}
	}
	if free < metadataMinFree {
		return nil, fmt.Errorf("data dir %s: only %d MiB free on its file system; opening the metadata store needs %d MiB "+
			"(it writes through memory maps, which a full disk turns into a crash): free some space and start again: %w",
			dir, free>>20, metadataMinFree>>20, ErrNoSpace)
	}
	g.free.Store(free)
	g.checked = time.Now()
	g.maintainBallast(free)
	return g, nil
}

// freeBytes is the space available to the daemon on dir's file system.
func freeBytes(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// floor is the free space nothing but metadata may take: the reserve, and
// the ballast's size while it is released (so it can be put back).
func (g *spaceGuard) floor() int64 {
	return g.reserve + g.ballast.missing()
}

// refreshLocked takes a statfs now; g.mu is held.
func (g *spaceGuard) refreshLocked() (int64, error) {
	free, err := g.statfs(g.dir)
	if err != nil {
		return 0, err
	}
	g.free.Store(free)
	g.since.Store(0)
	g.checked = time.Now()
	return free, nil
}

// allocate accounts for n bytes of new block data and fails with
// ErrNoSpace when they would eat into the metadata reserve.
func (g *spaceGuard) allocate(n int64) error {
	since := g.since.Add(n)
	g.mu.Lock()
	if since >= spaceRecheckBytes || time.Since(g.checked) >= spaceRecheckAge {
		if _, err := g.refreshLocked(); err != nil {
			g.mu.Unlock()
			return err
		}
		since = 0
	}
	g.mu.Unlock()
	if free := g.free.Load() - since - g.claimed.Load(); free < g.floor() {
		return fmt.Errorf("%w: %d MiB free in %s, the last %d MiB are kept for metadata", ErrNoSpace, free>>20, g.dir, g.floor()>>20)
	}
	return nil
}

// Claim lets a snapshot store on the data dir's file system write an
// object of n bytes if the reserve stays free, counting the writes of
// other objects that are not over yet; release ends the claim. An empty
// object (the collector's clock probe) is never refused.
func (g *spaceGuard) Claim(n int64) (release func(), err error) {
	if n == 0 {
		return func() {}, nil
	}
	n = (n+4095)&^4095 + storeClaimSlack
	g.mu.Lock()
	defer g.mu.Unlock()
	free, err := g.refreshLocked()
	if err != nil {
		return nil, err
	}
	if free-g.claimed.Load()-n < g.floor() {
		return nil, fmt.Errorf("the data dir's disk is full: %d MiB free on the file system of %s, and the last %d MiB are kept "+
			"for the metadata store; free space (delete snapshots or volumes) or put the snapshot store on another disk "+
			"(--snapshot-store): %w", max(free, 0)>>20, g.dir, g.floor()>>20, ErrNoSpace)
	}
	g.claimed.Add(n)
	return func() { g.claimed.Add(-n) }, nil
}

// guardStores makes the directory stores among stores that share the data
// dir's file system claim their writes from g.
func (g *spaceGuard) guardStores(stores ...snapstore.Store) {
	for _, st := range stores {
		d, ok := snapstore.Underlying(st).(*snapstore.Dir)
		if !ok {
			continue
		}
		same, err := d.GuardSpace(g.dir, g)
		switch {
		case err != nil:
			g.log.Warn("cannot tell whether the snapshot store shares the data dir's disk; its writes are not held to the metadata reserve",
				"store", d.String(), "err", err)
		case same:
			g.log.Debug("the snapshot store shares the data dir's disk: its writes leave the metadata reserve free", "store", d.String())
		}
	}
}

// tick looks at the free space now: it releases the ballast when
// something filled the disk past the reserve, and puts it back once there
// is room for it and the reserve.
func (g *spaceGuard) tick() {
	g.mu.Lock()
	free, err := g.refreshLocked()
	g.mu.Unlock()
	if err != nil {
		g.log.Warn("checking the data dir's free space", "err", err)
		return
	}
	if free < metadataMinFree && g.ballast.present() {
		if err := g.ballast.release(); err != nil {
			g.log.Error("releasing the ballast on a full data dir", "err", err)
			return
		}
		g.log.Error("the data dir's disk is almost full (not by block data or snapshots, which leave the reserve free): "+
			"released the ballast to keep room for the metadata store; new block data and snapshots are refused until space is freed",
			"dir", g.dir, "free_mib", free>>20)
		return
	}
	g.maintainBallast(free)
}

// maintainBallast puts the ballast back if it is missing and free leaves
// room for it and the reserve.
func (g *spaceGuard) maintainBallast(free int64) {
	b := g.ballast
	if !b.due() || free-g.claimed.Load() < g.reserve+b.size {
		return
	}
	if err := b.create(); err != nil {
		g.log.Warn("cannot create the ballast file; new data leaves its size free instead", "path", b.path, "err", err)
		return
	}
	g.log.Info("ballast in place: the data dir keeps room for the metadata store on a disk others fill", "path", b.path, "mib", b.size>>20)
}

// spaceLoop watches the data dir's free space every second (the ballast).
func (e *Engine) spaceLoop() {
	defer e.wg.Done()
	t := time.NewTicker(spaceRecheckAge)
	defer t.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-t.C:
		}
		e.space.tick()
	}
}
