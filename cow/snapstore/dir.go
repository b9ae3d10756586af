package snapstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
)

// Dir is a Store in a local directory: one file per object. Put writes a
// temporary file, fsyncs it, renames it into place and fsyncs the directory.
type Dir struct {
	root    string
	guard   atomic.Pointer[SpaceGuard] // nil: Put claims no space
	warning error                      // see OpenWarning; set by OpenDir
}

// SpaceGuard decides whether a directory store may take more space on a
// file system it shares with something that must not run out of it (the
// engine's metadata store, next to the default store in the data dir).
type SpaceGuard interface {
	// Claim is asked before an object of n bytes is written. It returns
	// an error to refuse the write, or release, which the store calls
	// once the write is over (stored or failed).
	Claim(n int64) (release func(), err error)
}

var _ Store = (*Dir)(nil)

// tmpSuffix marks files being written; List never shows them.
const tmpSuffix = ".tmp"

// OpenDir opens (creating) a directory store.
func OpenDir(root string) (*Dir, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("snapshot store %s: %w", root, err)
	}
	d := &Dir{root: root}
	probe, err := os.CreateTemp(root, ".probe-*"+tmpSuffix)
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		// Full, not unusable: reading and deleting snapshots (which
		// frees space) need no room.
		d.warning = fmt.Errorf("snapshot store %s: %w", root, putError("probe", err))
		return d, nil
	}
	if err != nil {
		return nil, fmt.Errorf("snapshot store %s is not writable: %w", root, err)
	}
	probe.Close()
	os.Remove(probe.Name())
	return d, nil
}

func (d *Dir) openWarning() error { return d.warning }

func (d *Dir) String() string { return "file://" + d.root }

// GuardSpace makes every Put claim its space from g first, if d's root is
// on the file system of dir (the same device, symlinks resolved); it
// reports whether it is. Several calls: the last guard wins.
func (d *Dir) GuardSpace(dir string, g SpaceGuard) (bool, error) {
	same, err := sameFileSystem(d.root, dir)
	if err != nil || !same {
		return false, err
	}
	d.guard.Store(&g)
	return true, nil
}

// sameFileSystem reports whether paths a and b, symlinks resolved, are on
// one device.
func sameFileSystem(a, b string) (bool, error) {
	var devs [2]uint64
	for i, p := range []string{a, b} {
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			return false, err
		}
		var st syscall.Stat_t
		if err := syscall.Stat(real, &st); err != nil {
			return false, fmt.Errorf("stat %s: %w", real, err)
		}
		devs[i] = uint64(st.Dev)
	}
	return devs[0] == devs[1], nil
}

func (d *Dir) path(key string) (string, error) {
	if !ValidKey(key) {
		return "", fmt.Errorf("%w: %q", ErrInvalidKey, key)
	}
	return filepath.Join(d.root, filepath.FromSlash(key)), nil
}

func (d *Dir) Put(ctx context.Context, key string, data []byte) error {
	p, err := d.path(key)
	if err != nil {
		return err
	}
	if g := d.guard.Load(); g != nil {
		release, err := (*g).Claim(int64(len(data)))
		if err != nil {
			return fmt.Errorf("put %s: %w", key, err)
		}
		defer release()
	}
	dir := filepath.Dir(p)
	if err := d.mkdirAll(dir); err != nil {
		return putError(key, err)
	}
	f, err := os.CreateTemp(dir, filepath.Base(p)+".*"+tmpSuffix)
	if err != nil {
		return putError(key, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		os.Remove(tmp)
		return putError(key, err)
	}
	if err := syncDir(dir); err != nil {
		return putError(key, err)
	}
	return nil
}

// putError is the error of a failed Put of key: ErrStoreFull too when
// the file system is full.
func putError(key string, err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("put %s: %w: %w", key, ErrStoreFull, err)
	}
	return fmt.Errorf("put %s: %w", key, err)
}

func (d *Dir) Get(ctx context.Context, key string) ([]byte, error) {
	p, err := d.path(key)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	return b, nil
}

func (d *Dir) Exists(ctx context.Context, key string) (bool, error) {
	p, err := d.path(key)
	if err != nil {
		return false, err
	}
	_, err = os.Stat(p)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, fmt.Errorf("stat %s: %w", key, err)
	}
}

func (d *Dir) GetRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	p, err := d.path(key)
	if err != nil {
		return nil, err
	}
	if off < 0 || n < 0 {
		return nil, fmt.Errorf("get %s: bad range %d+%d", key, off, n)
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		return nil, fmt.Errorf("get %s bytes %d+%d: %w", key, off, n, err)
	}
	return b, nil
}

func (d *Dir) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	// Walk only the deepest directory the prefix names.
	start := d.root
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		start = filepath.Join(d.root, filepath.FromSlash(prefix[:i]))
	}
	var objs []ObjectInfo
	err := filepath.WalkDir(start, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if de.IsDir() || strings.HasSuffix(p, tmpSuffix) {
			return nil
		}
		rel, err := filepath.Rel(d.root, p)
		if err != nil {
			return err
		}
		if key := filepath.ToSlash(rel); strings.HasPrefix(key, prefix) && ValidKey(key) {
			fi, err := de.Info()
			if errors.Is(err, fs.ErrNotExist) {
				return nil // deleted meanwhile
			}
			if err != nil {
				return err
			}
			objs = append(objs, ObjectInfo{Key: key, Size: fi.Size(), ModTime: fi.ModTime()})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list %q: %w", prefix, err)
	}
	sort.Slice(objs, func(i, j int) bool { return objs[i].Key < objs[j].Key })
	for _, o := range objs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(o); err != nil {
			return err
		}
	}
	return nil
}

func (d *Dir) Delete(ctx context.Context, key string) error {
	p, err := d.path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}

// mkdirAll creates dir (a fan-out directory under the root) and any
// missing parents, and makes each new entry durable: the parent of every
// directory it creates is synced, so that a durable object is never in a
// directory a crash forgets.
func (d *Dir) mkdirAll(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	var created []string
	for p := dir; p != d.root && p != filepath.Dir(p); p = filepath.Dir(p) {
		if _, err := os.Stat(p); err == nil {
			break
		}
		created = append(created, p)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for _, c := range created { // deepest first; each parent once
		if err := syncDirHook(filepath.Dir(c)); err != nil {
			return fmt.Errorf("fsync %s: %w", filepath.Dir(c), err)
		}
	}
	return nil
}

// syncDirHook is syncDir; tests observe the syncs through it.
var syncDirHook = syncDir

func syncDir(path string) error {
	d, err := os.Open(path)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
