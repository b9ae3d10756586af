package snapstore_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/cowvol/cowvol/cow/snapstore"
	"github.com/cowvol/cowvol/cow/snapstore/miniotest"
)

var errRefused = errors.New("refused by the guard")

// stubGuard is a SpaceGuard that records its claims and refuses them while
// refuse is set.
type stubGuard struct {
	mu       sync.Mutex
	refuse   bool
	claims   []int64
	released int
}

func (g *stubGuard) Claim(n int64) (func(), error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.refuse {
		return nil, errRefused
	}
	g.claims = append(g.claims, n)
	return func() { g.mu.Lock(); g.released++; g.mu.Unlock() }, nil
}

// tempFiles lists the temporary files under root.
func tempFiles(root string) []string {
	var tmp []string
	filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err == nil && strings.HasSuffix(p, ".tmp") {
			tmp = append(tmp, p)
		}
		return nil
	})
	return tmp
}

// TestDirGuardSpace: a directory store on the file system of a given
// directory (symlinks resolved) claims the space of every put from its
// guard, and a refused put stores nothing and leaves no temporary file; a
// store on another file system is not guarded.
func TestDirGuardSpace(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	d, err := snapstore.OpenDir(root)
	if err != nil {
		t.Fatal(err)
	}
	other := t.TempDir()
	link := filepath.Join(t.TempDir(), "data-dir")
	if err := os.Symlink(other, link); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		dir  string
		want bool
	}{{other, true}, {link, true}, {"/proc", false}} {
		d2, _ := snapstore.OpenDir(t.TempDir())
		if same, err := d2.GuardSpace(tt.dir, &stubGuard{}); err != nil || same != tt.want {
			t.Errorf("GuardSpace(%s) = %v, %v; want %v", tt.dir, same, err, tt.want)
		}
	}

	g := &stubGuard{}
	if same, err := d.GuardSpace(link, g); !same || err != nil {
		t.Fatalf("GuardSpace = %v, %v", same, err)
	}
	if err := d.Put(ctx, "packs/ab/abc", make([]byte, 5000)); err != nil {
		t.Fatal(err)
	}
	if len(g.claims) != 1 || g.claims[0] != 5000 || g.released != 1 {
		t.Fatalf("claims %v, released %d; want one of 5000, released", g.claims, g.released)
	}
	g.refuse = true
	err = d.Put(ctx, "packs/cd/cde", make([]byte, 5000))
	if !errors.Is(err, errRefused) {
		t.Fatalf("put refused by the guard: %v", err)
	}
	if ok, _ := d.Exists(ctx, "packs/cd/cde"); ok {
		t.Fatal("a refused put stored its object")
	}
	if tmp := tempFiles(root); len(tmp) != 0 {
		t.Fatalf("temporary files left: %v", tmp)
	}
}

// requireRoot skips (or, under COWVOL_REQUIRE_ROOT, fails) a test that
// mounts file systems.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("COWVOL_REQUIRE_ROOT") != "" {
		t.Fatal("COWVOL_REQUIRE_ROOT is set and the test is not root")
	}
	t.Skip("skipping: mounting a small file system needs root")
}

// smallTmpfs mounts a tmpfs with options (mount's syntax: size=1m) on a
// new directory, unmounted at cleanup.
func smallTmpfs(t *testing.T, options string) string {
	t.Helper()
	requireRoot(t)
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, options); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fill writes a file in dir until its file system is full.
func fill(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "hog"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return
		}
	}
}

// TestDirFullFileSystem: a put on a full file system fails with
// ErrStoreFull and leaves no temporary file behind.
func TestDirFullFileSystem(t *testing.T) {
	ctx := context.Background()
	root := smallTmpfs(t, "size=1m")
	d, err := snapstore.OpenDir(filepath.Join(root, "store"))
	if err != nil {
		t.Fatal(err)
	}
	err = d.Put(ctx, "packs/ab/abc", make([]byte, 2<<20))
	if !errors.Is(err, snapstore.ErrStoreFull) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("put of 2 MiB on a 1 MiB file system: %v, want ErrStoreFull (ENOSPC)", err)
	}
	if tmp := tempFiles(root); len(tmp) != 0 {
		t.Fatalf("temporary files left: %v", tmp)
	}
	if err := d.Put(ctx, "holds/v/s", []byte("small")); err != nil {
		t.Fatalf("a small put after the failed one: %v", err)
	}

	// Too full for even the probe file (no inode left): it opens, with
	// a warning, and reads.
	root = smallTmpfs(t, "size=1m,nr_inodes=2") // the root and the store's directory
	d, err = snapstore.OpenDir(filepath.Join(root, "store"))
	if err != nil {
		t.Fatalf("open a full directory store: %v", err)
	}
	if w := snapstore.OpenWarning(d); !errors.Is(w, snapstore.ErrStoreFull) {
		t.Fatalf("open warning of a full directory store: %v", w)
	}
	if _, err := d.Get(ctx, "holds/v/s"); !errors.Is(err, snapstore.ErrNotFound) {
		t.Fatalf("get from a full directory store: %v", err)
	}
}

// TestS3FullStore: MinIO on a full disk (507 XMinioStorageFull). Opening
// the store succeeds with a warning that says so; puts fail with
// ErrStoreFull and the server's code and message; reads, listings and
// deletions work. Wrong credentials are still refused at open.
func TestS3FullStore(t *testing.T) {
	ctx := context.Background()
	fs := smallTmpfs(t, "size=64m")
	srv := miniotest.StartIn(t, filepath.Join(fs, "minio"))
	url := srv.URL("cowvol-full", "p")
	st, err := snapstore.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, "snapshots/s/manifest", []byte("stored before the disk filled")); err != nil {
		t.Fatal(err)
	}
	fill(t, fs)

	st, err = snapstore.Open(ctx, url)
	if err != nil {
		t.Fatalf("open a full store: %v", err)
	}
	if w := snapstore.OpenWarning(st); w == nil || !errors.Is(w, snapstore.ErrStoreFull) || !strings.Contains(w.Error(), "XMinioStorageFull") {
		t.Fatalf("open warning of a full store: %v", w)
	}
	err = st.Put(ctx, "packs/ab/abc", []byte("more"))
	if !errors.Is(err, snapstore.ErrStoreFull) || !strings.Contains(err.Error(), "507 XMinioStorageFull") {
		t.Fatalf("put into a full store: %v, want ErrStoreFull with the server's answer", err)
	}
	if b, err := st.Get(ctx, "snapshots/s/manifest"); err != nil || string(b) != "stored before the disk filled" {
		t.Fatalf("get from a full store: %q, %v", b, err)
	}
	n := 0
	if err := st.List(ctx, "snapshots/", func(snapstore.ObjectInfo) error { n++; return nil }); err != nil || n != 1 {
		t.Fatalf("list a full store: %d objects, %v", n, err)
	}
	if err := st.Delete(ctx, "snapshots/s/manifest"); err != nil {
		t.Fatalf("delete from a full store: %v", err)
	}

	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong")
	if _, err := snapstore.Open(ctx, url); err == nil || !strings.Contains(err.Error(), "cannot reach or use") {
		t.Fatalf("open a full store with wrong credentials: %v", err)
	}
}
