package cow

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Badger writes its tables and value log through memory maps of sparse
// files: on a full file system a store into such a map is a SIGBUS, which
// kills the daemon (found by TestTortureDataDirFull: a restart on a full
// data dir crashed replaying the memtable). So block data never takes the
// last metadataReserve bytes of the data dir's file system, and the engine
// refuses to open Badger with less than metadataMinFree free.
const (
	// DefaultMetadataReserve is the free space new block data leaves
	// for the metadata store, unless Options.MetadataReserve says otherwise.
	DefaultMetadataReserve = 64 << 20
	// metadataMinFree is what opening the metadata store needs: it may
	// flush a replayed memtable (16 MiB) into a table.
	metadataMinFree = 32 << 20
	// spaceRecheckBytes and spaceRecheckAge bound how stale the free
	// space figure may get between statfs calls.
	spaceRecheckBytes = 8 << 20
	spaceRecheckAge   = time.Second
)

// spaceGuard answers "may block data take n more bytes?" from a statfs of
// the data dir refreshed every spaceRecheckBytes allocated or
// spaceRecheckAge, whichever comes first.
type spaceGuard struct {
	dir     string
	reserve int64

	since atomic.Int64 // bytes allocated since the last statfs
	free  atomic.Int64 // free bytes at the last statfs

	mu      sync.Mutex // guards checked and serialises statfs
	checked time.Time
}

func newSpaceGuard(dir string, reserve int64) *spaceGuard {
	return &spaceGuard{dir: dir, reserve: reserve}
}

// freeBytes is the space available to the daemon on dir's file system.
func freeBytes(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// allocate accounts for n bytes of new block data and fails with
// ErrNoSpace when they would eat into the metadata reserve.
func (g *spaceGuard) allocate(n int64) error {
	since := g.since.Add(n)
	g.mu.Lock()
	if since >= spaceRecheckBytes || time.Since(g.checked) >= spaceRecheckAge {
		free, err := freeBytes(g.dir)
		if err != nil {
			g.mu.Unlock()
			return err
		}
		g.free.Store(free)
		g.since.Store(0)
		since = 0
		g.checked = time.Now()
	}
	g.mu.Unlock()
	if free := g.free.Load() - since; free < g.reserve {
		return fmt.Errorf("%w: %d MiB free in %s, the last %d MiB are kept for metadata", ErrNoSpace, free>>20, g.dir, g.reserve>>20)
	}
	return nil
}

// checkMetadataSpace refuses to open the metadata store on a file system
// too full to hold what opening it may write.
func checkMetadataSpace(dir string) error {
	free, err := freeBytes(dir)
	if err != nil {
		return err
	}
	if free < metadataMinFree {
		return fmt.Errorf("data dir %s: only %d MiB free on its file system; opening the metadata store needs %d MiB "+
			"(it writes through memory maps, which a full disk turns into a crash): free some space and start again: %w",
			dir, free>>20, metadataMinFree>>20, ErrNoSpace)
	}
	return nil
}
