package cow

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ballastName is the ballast file in the data dir.
const ballastName = "reserve"

// ballastRetry is how long the engine waits before it tries again to
// create a ballast it could not create.
const ballastRetry = time.Minute

// ballast is a file of allocated blocks (fallocate: not sparse, so
// deleting it frees its whole size) that the engine keeps in the data dir.
// The reserve keeps the engine's own writes from filling the disk; the
// ballast is for when something else fills it: deleting the ballast gives
// the metadata store room to open (or to keep writing), so the daemon can
// always start, and the user can delete snapshots and volumes. While it is
// released, new data also leaves its size free (spaceGuard.floor), and it
// is put back once there is room for it.
type ballast struct {
	path string
	size int64

	// Only the engine's space loop (and openSpaceGuard before it) creates
	// and releases it; the flags are read by writers.
	exists   atomic.Bool
	noAlloc  atomic.Bool  // the file system cannot preallocate
	failedAt atomic.Int64 // unix nanoseconds of the last failed create
}

// openBallast describes the ballast at path: present if a file of size
// allocated bytes is there (a shorter or sparse one is replaced by create).
func openBallast(path string, size int64) *ballast {
	b := &ballast{path: path, size: size}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err == nil && st.Size >= size && st.Blocks*512 >= size {
		b.exists.Store(true)
	}
	return b
}

// present reports whether the ballast is in place.
func (b *ballast) present() bool { return b != nil && b.exists.Load() }

// missing is the space the ballast would take and does not: its size while
// released, 0 while in place (or when there is none).
func (b *ballast) missing() int64 {
	if b == nil || b.exists.Load() {
		return 0
	}
	return b.size
}

// due reports whether create may be tried now.
func (b *ballast) due() bool {
	return b != nil && !b.exists.Load() && !b.noAlloc.Load() &&
		time.Since(time.Unix(0, b.failedAt.Load())) >= ballastRetry
}

// create allocates the ballast under a temporary name, makes it durable
// and renames it into place.
func (b *ballast) create() (err error) {
	defer func() {
		if err != nil {
			b.failedAt.Store(time.Now().UnixNano())
		}
	}()
	tmp := b.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("create ballast: %w", err)
	}
	err = unix.Fallocate(int(f.Fd()), 0, 0, b.size)
	if errors.Is(err, syscall.EOPNOTSUPP) {
		b.noAlloc.Store(true)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, b.path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(b.path))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("create ballast %s: %w", b.path, err)
	}
	b.exists.Store(true)
	return nil
}

// release deletes the ballast, freeing its space.
func (b *ballast) release() error {
	if err := os.Remove(b.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("release ballast: %w", err)
	}
	b.exists.Store(false)
	if err := syncDir(filepath.Dir(b.path)); err != nil {
		return fmt.Errorf("release ballast: %w", err)
	}
	return nil
}
