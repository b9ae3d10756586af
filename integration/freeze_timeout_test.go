package integration

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The ioctls of linux/fs.h: FIFREEZE = _IOWR('X', 119, int), FITHAW =
// _IOWR('X', 120, int).
const (
	ioctlFIFREEZE = 0xC0045877
	ioctlFITHAW   = 0xC0045878
)

// A user runs create-snapshot --freeze against a daemon that takes the
// request and never answers (a socket this test owns): with the default
// --freeze-timeout the CLI gives up, thaws the file system, says what
// happened and how to check, and exits 255; the file system, a real ext4
// on a loop device over a cowvol volume, takes writes again.
func TestFreezeTimeoutThaws(t *testing.T) {
	requirePrereqs(t)
	d := startDaemon(t)
	vol := d.createVolume(t, "1GiB")
	lo := attachLoop(t, d.volumePath(vol.VolumeId))
	mkfsExt4(t, lo.Dev)
	m := mountDev(t, lo.Dev, t.TempDir())
	// Registered after the mount, so it runs before the unmount: a CLI
	// that left the file system frozen must not wedge the cleanup, nor
	// the writers waiting for the thaw.
	var writers sync.WaitGroup
	t.Cleanup(func() { thawIfFrozen(t, m.Dir); writers.Wait() })
	sock, accepted := silentSocket(t)

	done := make(chan result, 1)
	go func() {
		done <- run(cliTimeout, d.environ(), cowvolBin, "--socket", sock,
			"create-snapshot", "--volume-id", vol.VolumeId, "--freeze", m.Dir)
	}()

	var blocked <-chan error
	step(t, "the request reaches the daemon while the file system is frozen", func(t *testing.T) {
		select {
		case <-accepted:
		case r := <-done:
			t.Fatalf("the CLI ended before its request reached the daemon: %v", r)
		}
		err := unix.IoctlSetInt(fd(t, m.Dir), ioctlFIFREEZE, 0)
		if err == nil {
			thawIfFrozen(t, m.Dir)
			t.Fatal("FIFREEZE succeeded: the CLI had not frozen the file system")
		}
		if !errors.Is(err, unix.EBUSY) {
			t.Fatalf("FIFREEZE: %v, want EBUSY (already frozen)", err)
		}
		// A writer now waits for the thaw.
		blocked = writeAndSync(&writers, filepath.Join(m.Dir, "during"))
	})

	step(t, "the CLI gives up after 30s, thaws, explains, exits 255", func(t *testing.T) {
		r := <-done
		t.Logf("$ cowvol --socket %s create-snapshot --volume-id %s --freeze %s -> exit %d%s",
			sock, vol.VolumeId, m.Dir, r.Code, indentStderr(r.Stderr))
		for _, want := range []string{
			"did not answer within 30s (--freeze-timeout) while " + m.Dir + " was frozen; cowvol stopped waiting and thawed " + m.Dir + ".",
			"The snapshot may or may not have been created, and if it was, perhaps after the thaw " +
				"(then it is crash-consistent, as without --freeze); check with:\n  cowvol --socket " + sock +
				" describe-snapshots --filter volume-id=" + vol.VolumeId,
		} {
			if !strings.Contains(r.Stderr, want) {
				t.Errorf("stderr lacks %q", want)
			}
		}
		if r.Code != 255 || r.Stdout != "" {
			t.Fatalf("exit %d, stdout %q; want exit 255 and nothing printed", r.Code, r.Stdout)
		}
	})

	step(t, "the file system takes writes again", func(t *testing.T) {
		for name, ch := range map[string]<-chan error{
			"the writer that waited": blocked,
			"a new writer":           writeAndSync(&writers, filepath.Join(m.Dir, "after")),
		} {
			select {
			case err := <-ch:
				if err != nil {
					t.Errorf("%s: %v", name, err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("%s: no write within 30s: the file system is still frozen", name)
			}
		}
	})

	step(t, "the check the message suggests, against the real daemon; a frozen snapshot works", func(t *testing.T) {
		if got := d.describeSnapshots(t, "--filter", "volume-id="+vol.VolumeId); len(got) != 0 {
			t.Errorf("the real daemon has snapshots %+v: it never saw the request", got)
		}
		d.createSnapshot(t, vol.VolumeId, "--freeze", m.Dir)
	})
}

// silentSocket listens on a unix socket the test owns, accepts and holds
// every connection without answering; the first connection is announced
// on the returned channel. Cleanup closes the listener and the
// connections by their handles.
func silentSocket(t *testing.T) (string, <-chan struct{}) {
	t.Helper()
	dir, err := os.MkdirTemp("", "cvsilent") // socket paths: 108 bytes at most
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "silent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan struct{})
	var (
		mu    sync.Mutex
		conns []net.Conn
		once  sync.Once
		wg    sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			once.Do(func() { close(accepted) })
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		os.RemoveAll(dir)
	})
	return sock, accepted
}

// fd opens dir for an ioctl and returns its descriptor, closed in cleanup.
func fd(t *testing.T, dir string) int {
	t.Helper()
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return int(f.Fd())
}

// thawIfFrozen thaws the file system mounted at dir; one that is not
// frozen (EINVAL) is fine.
func thawIfFrozen(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Open(dir)
	if err != nil {
		t.Errorf("thaw %s: %v", dir, err)
		return
	}
	defer f.Close()
	if err := unix.IoctlSetInt(int(f.Fd()), ioctlFITHAW, 0); err == nil {
		t.Errorf("%s was still frozen (thawed by the test)", dir)
	} else if !errors.Is(err, unix.EINVAL) {
		t.Errorf("thaw %s: %v", dir, err)
	}
}

// writeAndSync writes and fsyncs a small file in the background and
// reports the outcome on the returned channel; wg counts it until it ends.
func writeAndSync(wg *sync.WaitGroup, path string) <-chan error {
	ch := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		f, err := os.Create(path)
		if err == nil {
			_, err = f.Write([]byte("written after the freeze\n"))
			err = errors.Join(err, f.Sync(), f.Close())
		}
		ch <- err
	}()
	return ch
}
