package systemd

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// These tests pin the kernel behaviour StoreFDs relies on when it leaves
// systemd's polling of stored fds on (no FDPOLL=0): systemd adds each
// stored fd to epoll with no events, and drops it when epoll reports
// EPOLLERR or EPOLLHUP. They ask the kernel the same way.

// errHup is what epoll reports for fd with no events requested, as in
// systemd's fd store: whether EPOLLERR and EPOLLHUP show. pollable is false
// when the fd cannot be polled at all (systemd then keeps it unpolled).
func errHup(t *testing.T, fd int) (errSet, hupSet, pollable bool) {
	t.Helper()
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(ep)
	err = unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: 0, Fd: int32(fd)})
	if errors.Is(err, unix.EPERM) {
		return false, false, false
	}
	if err != nil {
		t.Fatal(err)
	}
	evs := make([]unix.EpollEvent, 1)
	n, err := unix.EpollWait(ep, evs, 0)
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		return false, false, true
	}
	return evs[0].Events&unix.EPOLLERR != 0, evs[0].Events&unix.EPOLLHUP != 0, true
}

// TestStoredListenerPolling: a listening socket whose listener we closed
// (systemd's copy still open) shows neither EPOLLERR nor EPOLLHUP and
// still accepts connections into its backlog; only shutdown(2) makes it
// show EPOLLHUP. A regular file cannot be polled.
func TestStoredListenerPolling(t *testing.T) {
	tests := []struct {
		name   string
		listen func(t *testing.T) net.Listener
	}{
		{"unix", func(t *testing.T) net.Listener {
			ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "cowvol.sock"))
			if err != nil {
				t.Fatal(err)
			}
			ln.(*net.UnixListener).SetUnlinkOnClose(false) // the path must outlive our copy
			return ln
		}},
		{"tcp", func(t *testing.T) net.Listener {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			return ln
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln := tt.listen(t)
			stored, err := ln.(interface{ File() (*os.File, error) }).File()
			if err != nil {
				t.Fatal(err)
			}
			defer stored.Close()
			addr := ln.Addr()
			ln.Close() // the supervisor dies; the store's copy stays
			fd := int(stored.Fd())
			if e, h, _ := errHup(t, fd); e || h {
				t.Fatalf("listener with our copy closed: EPOLLERR %v EPOLLHUP %v; systemd would drop it", e, h)
			}
			c, err := net.Dial(addr.Network(), addr.String())
			if err != nil {
				t.Fatalf("a client cannot connect while only the stored copy is open: %v", err)
			}
			c.Close()
			if err := unix.Shutdown(fd, unix.SHUT_RDWR); err != nil {
				t.Fatal(err)
			}
			if _, h, _ := errHup(t, fd); !h {
				t.Error("no EPOLLHUP after shutdown(SHUT_RDWR)")
			}
		})
	}
	f, err := os.CreateTemp(t.TempDir(), "lock")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, _, pollable := errHup(t, int(f.Fd())); pollable {
		t.Error("a regular file is pollable")
	}
}

// TestStoredFUSEFDPolling: a /dev/fuse fd shows EPOLLERR before it is
// mounted and after its connection ends (umount), and nothing while the
// mount lives, even with no server reading it. So the supervisor must
// store it only after mount(2), and systemd drops it once it is useless.
// Needs root and /dev/fuse: skipped without them unless
// COWVOL_REQUIRE_ROOT=1, which makes their absence a failure.
func TestStoredFUSEFDPolling(t *testing.T) {
	if os.Geteuid() != 0 {
		skipOrFail(t, "root")
	}
	fd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		skipOrFail(t, fmt.Sprintf("/dev/fuse (%v)", err))
	}
	defer unix.Close(fd)
	if e, _, _ := errHup(t, fd); !e {
		t.Error("an unmounted /dev/fuse fd shows no EPOLLERR: storing it before mount(2) would be kept")
	}
	dir := t.TempDir()
	opts := fmt.Sprintf("fd=%d,rootmode=40000,user_id=0,group_id=0", fd)
	if err := unix.Mount("cowvol-fdpoll", dir, "fuse.cowvol-fdpoll", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		t.Fatalf("mount: %v", err)
	}
	mounted := true
	t.Cleanup(func() {
		if mounted { // nobody serves it: detach it, closing the fd aborts it
			unix.Unmount(dir, unix.MNT_DETACH)
		}
	})
	// Nothing serves the connection (INIT is unanswered): as after the
	// supervisor's death. Touch nothing under dir, which would wait.
	if e, h, _ := errHup(t, fd); e || h {
		t.Errorf("a live, unserved FUSE connection: EPOLLERR %v EPOLLHUP %v; systemd would drop it", e, h)
	}
	if err := unix.Unmount(dir, 0); err != nil {
		t.Fatalf("umount: %v", err)
	}
	mounted = false
	if e, _, _ := errHup(t, fd); !e {
		t.Error("no EPOLLERR after umount: systemd would keep a dead connection")
	}
}

func skipOrFail(t *testing.T, missing string) {
	t.Helper()
	if os.Getenv("COWVOL_REQUIRE_ROOT") == "1" {
		t.Fatalf("needs %s (COWVOL_REQUIRE_ROOT=1)", missing)
	}
	t.Skipf("needs %s (set COWVOL_REQUIRE_ROOT=1 to make this a failure)", missing)
}
