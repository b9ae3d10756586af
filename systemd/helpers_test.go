package systemd

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fakeManager is the receiving end of a NOTIFY_SOCKET, as systemd has it.
type fakeManager struct {
	t    *testing.T
	conn *net.UnixConn
	addr string
}

// newFakeManager listens on a unixgram socket in t.TempDir() (or, with
// abstract, on a random abstract name) and points $NOTIFY_SOCKET at it for
// the rest of the test.
func newFakeManager(t *testing.T, abstract bool) *fakeManager {
	t.Helper()
	addr := filepath.Join(t.TempDir(), "notify")
	if abstract {
		addr = fmt.Sprintf("@cowvol-systemd-test-%d-%x", os.Getpid(), rand.Uint64())
	}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv(EnvNotifySocket, addr)
	return &fakeManager{t: t, conn: conn, addr: addr}
}

// recv returns the next datagram and the fds that came with it (closed at
// the end of the test). It fails the test after 5 s: a send is synchronous,
// so a message that has not arrived by then never will.
func (m *fakeManager) recv() (string, []int) {
	m.t.Helper()
	if err := m.conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		m.t.Fatal(err)
	}
	buf := make([]byte, 2*MaxMessage)
	oob := make([]byte, unix.CmsgSpace(4*MaxFDs))
	n, oobn, flags, _, err := m.conn.ReadMsgUnix(buf, oob)
	if err != nil {
		m.t.Fatalf("no notification: %v", err)
	}
	if flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 {
		m.t.Fatalf("truncated notification (flags %#x)", flags)
	}
	var fds []int
	cmsgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		m.t.Fatal(err)
	}
	for _, c := range cmsgs {
		got, err := unix.ParseUnixRights(&c)
		if err != nil {
			m.t.Fatal(err)
		}
		fds = append(fds, got...)
	}
	for _, fd := range fds {
		m.t.Cleanup(func() { unix.Close(fd) })
	}
	return string(buf[:n]), fds
}

// expectNothing checks that no datagram is queued. Sends are synchronous:
// whatever a call sent is queued by the time it returns.
func (m *fakeManager) expectNothing() {
	m.t.Helper()
	rc, err := m.conn.SyscallConn()
	if err != nil {
		m.t.Fatal(err)
	}
	var n int
	var rerr error
	buf := make([]byte, 2*MaxMessage)
	if err := rc.Read(func(fd uintptr) bool {
		n, _, rerr = unix.Recvfrom(int(fd), buf, unix.MSG_DONTWAIT)
		return true
	}); err != nil {
		m.t.Fatal(err)
	}
	if !errors.Is(rerr, unix.EAGAIN) {
		m.t.Fatalf("unexpected notification %q (err %v)", buf[:max(n, 0)], rerr)
	}
}

// fileID is what identifies an open file's inode.
type fileID struct{ Dev, Ino uint64 }

func idOfFD(t *testing.T, fd int) fileID {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatalf("fstat fd %d: %v", fd, err)
	}
	return fileID{st.Dev, st.Ino}
}

func idOfFile(t *testing.T, f *os.File) fileID {
	t.Helper()
	rc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var id fileID
	if err := rc.Control(func(fd uintptr) { id = idOfFD(t, int(fd)) }); err != nil {
		t.Fatal(err)
	}
	return id
}

// pipe returns both ends of a new pipe, closed at the end of the test.
func pipe(t *testing.T) (r, w *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}
