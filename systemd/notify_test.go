package systemd

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestMessages checks the exact bytes each helper sends, on a socket path
// and on an abstract socket.
func TestMessages(t *testing.T) {
	tests := []struct {
		name string
		send func() error
		want string
	}{
		{"ready", func() error { return Ready("") }, "READY=1"},
		{"ready with status", func() error { return Ready("serving 3 volumes") }, "READY=1\nSTATUS=serving 3 volumes"},
		{"stopping", Stopping, "STOPPING=1"},
		{"status", func() error { return Status("syncing volumes") }, "STATUS=syncing volumes"},
		{"status on one line", func() error { return Status("child exited:\nexit status 2\r\t!") }, "STATUS=child exited: exit status 2  !"},
		{"status invalid utf8", func() error { return Status("bad \xff byte") }, "STATUS=bad ? byte"},
		{"watchdog", WatchdogPing, "WATCHDOG=1"},
		{"extend timeout", func() error { return ExtendTimeout(90 * time.Second) }, "EXTEND_TIMEOUT_USEC=90000000"},
		{"remove fds", func() error { return RemoveFDs("fuse") }, "FDSTOREREMOVE=1\nFDNAME=fuse"},
		{"raw", func() error { return Notify("MAINPID=4711\nSTATUS=x") }, "MAINPID=4711\nSTATUS=x"},
	}
	for _, abstract := range []bool{false, true} {
		m := newFakeManager(t, abstract)
		for _, tt := range tests {
			t.Run(tt.name+map[bool]string{false: " path", true: " abstract"}[abstract], func(t *testing.T) {
				if err := tt.send(); err != nil {
					t.Fatal(err)
				}
				got, fds := m.recv()
				if got != tt.want {
					t.Errorf("sent %q, want %q", got, tt.want)
				}
				if len(fds) != 0 {
					t.Errorf("sent %d fds, want none", len(fds))
				}
				m.expectNothing()
			})
		}
	}
}

// TestStatusCut: a long status is cut at a character boundary so that the
// message fits.
func TestStatusCut(t *testing.T) {
	m := newFakeManager(t, false)
	long := strings.Repeat("é", maxStatus) // 2 bytes each
	if err := Status("x" + long); err != nil {
		t.Fatal(err)
	}
	got, _ := m.recv()
	text := strings.TrimPrefix(got, "STATUS=")
	if len(text) > maxStatus || len(text) < maxStatus-1 {
		t.Errorf("status of %d bytes, want %d or %d", len(text), maxStatus-1, maxStatus)
	}
	if !strings.HasPrefix(text, "xé") || strings.ContainsRune(text, 0xfffd) || !strings.HasSuffix(text, "é") {
		t.Errorf("status cut badly: ...%q", text[len(text)-8:])
	}
}

// TestReloading checks RELOADING=1 and that MONOTONIC_USEC is the
// CLOCK_MONOTONIC time of the call.
func TestReloading(t *testing.T) {
	m := newFakeManager(t, false)
	before := monotonicUsec(t)
	if err := Reloading(); err != nil {
		t.Fatal(err)
	}
	after := monotonicUsec(t)
	got, _ := m.recv()
	text, ok := strings.CutPrefix(got, "RELOADING=1\nMONOTONIC_USEC=")
	if !ok {
		t.Fatalf("sent %q", got)
	}
	usec, err := strconv.ParseInt(text, 10, 64)
	if err != nil || usec < before || usec > after {
		t.Errorf("MONOTONIC_USEC=%s, want a number in [%d, %d]", text, before, after)
	}
}

func monotonicUsec(t *testing.T) int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	return ts.Nano() / 1000
}

// TestStoreFDs checks FDSTORE messages: the exact bytes, and that each fd
// arrives, in order, as the same open file (same inode; a byte written
// through the received pipe end comes out of ours).
func TestStoreFDs(t *testing.T) {
	for _, abstract := range []bool{false, true} {
		m := newFakeManager(t, abstract)
		r1, w1 := pipe(t)
		_, w2 := pipe(t)
		tmp, err := os.CreateTemp(t.TempDir(), "lock")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tmp.Close() })
		tests := []struct {
			name   string
			fdName string
			files  []*os.File
		}{
			{"one", "fuse", []*os.File{w1}},
			{"two under one name", "control", []*os.File{w2, w1}},
			{"regular file", "lock", []*os.File{tmp}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if err := StoreFDs(tt.fdName, tt.files...); err != nil {
					t.Fatal(err)
				}
				got, fds := m.recv()
				if want := "FDSTORE=1\nFDNAME=" + tt.fdName; got != want {
					t.Errorf("sent %q, want %q", got, want)
				}
				if len(fds) != len(tt.files) {
					t.Fatalf("got %d fds, want %d", len(fds), len(tt.files))
				}
				for i, f := range tt.files {
					if got, want := idOfFD(t, fds[i]), idOfFile(t, f); got != want {
						t.Errorf("fd %d is %+v, want %+v (%s)", i, got, want, f.Name())
					}
				}
				if tt.files[0] == w1 {
					if _, err := unix.Write(fds[0], []byte("x")); err != nil {
						t.Fatal(err)
					}
					buf := make([]byte, 1)
					if _, err := r1.Read(buf); err != nil || buf[0] != 'x' {
						t.Errorf("read %q, %v through our end; want the byte written through the received fd", buf, err)
					}
				}
				m.expectNothing()
			})
		}
	}
}

// TestStoreFDsKeepsNonblocking: handing a file to systemd must not change
// its blocking mode, which is shared with everyone using the open file
// (File.Fd would have made it blocking).
func TestStoreFDsKeepsNonblocking(t *testing.T) {
	m := newFakeManager(t, false)
	_, w := pipe(t) // os.Pipe files are non-blocking, in the poller
	if err := StoreFDs("control", w); err != nil {
		t.Fatal(err)
	}
	m.recv()
	rc, err := w.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var flags int
	if err := rc.Control(func(fd uintptr) { flags, err = unix.FcntlInt(fd, unix.F_GETFL, 0) }); err != nil {
		t.Fatal(err)
	}
	if err != nil || flags&unix.O_NONBLOCK == 0 {
		t.Errorf("flags %#x, %v: O_NONBLOCK lost", flags, err)
	}
}

// TestNotifyErrors: bad input is refused with a clear error and nothing
// is sent.
func TestNotifyErrors(t *testing.T) {
	m := newFakeManager(t, false)
	_, w := pipe(t)
	many := make([]*os.File, MaxFDs+1)
	for i := range many {
		many[i] = w
	}
	tests := []struct {
		name string
		send func() error
		want error
	}{
		{"empty fd name", func() error { return StoreFDs("", w) }, ErrBadFDName},
		{"colon in fd name", func() error { return StoreFDs("a:b", w) }, ErrBadFDName},
		{"newline in fd name", func() error { return StoreFDs("a\nREADY=1", w) }, ErrBadFDName},
		{"non-ASCII fd name", func() error { return RemoveFDs("fusé") }, ErrBadFDName},
		{"long fd name", func() error { return RemoveFDs(strings.Repeat("n", maxFDName+1)) }, ErrBadFDName},
		{"no files", func() error { return StoreFDs("fuse") }, nil},
		{"nil file", func() error { return StoreFDs("fuse", nil) }, nil},
		{"too many fds", func() error { return StoreFDs("fuse", many...) }, ErrTooManyFDs},
		{"message too long", func() error { return Notify(strings.Repeat("x", MaxMessage+1)) }, ErrMessageTooLong},
		{"zero extension", func() error { return ExtendTimeout(0) }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.send()
			if err == nil {
				t.Fatal("no error")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("error %v, want %v", err, tt.want)
			}
			m.expectNothing()
		})
	}
	if err := StoreFDs(strings.Repeat("n", maxFDName), w); err != nil {
		t.Errorf("a name of %d bytes: %v", maxFDName, err)
	}
	m.recv()
}

// TestNotifySocketErrors: an unusable NOTIFY_SOCKET is an error.
func TestNotifySocketErrors(t *testing.T) {
	tests := []struct {
		name, addr string
		want       error
	}{
		{"relative path", "notify.sock", ErrBadNotifySocket},
		{"vsock", "vsock:2:1234", ErrBadNotifySocket},
		{"nobody listening", t.TempDir() + "/none", unix.ENOENT},
		{"nobody listening abstract", "@cowvol-systemd-test-nobody", unix.ECONNREFUSED},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(EnvNotifySocket, tt.addr)
			err := Ready("x")
			if !errors.Is(err, tt.want) {
				t.Errorf("error %v, want %v", err, tt.want)
			}
		})
	}
}

// TestNotUnderSystemd: without NOTIFY_SOCKET every call returns nil and
// sends nothing, and the files stay open.
func TestNotUnderSystemd(t *testing.T) {
	m := newFakeManager(t, false)
	if err := Notify("STATUS=reachable"); err != nil {
		t.Fatal(err)
	}
	m.recv()                     // the socket works while it is named
	os.Unsetenv(EnvNotifySocket) // t.Setenv restores it afterwards
	r, w := pipe(t)
	calls := map[string]func() error{
		"Notify":        func() error { return Notify("READY=1") },
		"NotifyWithFDs": func() error { return NotifyWithFDs("FDSTORE=1", w) },
		"Ready":         func() error { return Ready("x") },
		"Stopping":      Stopping,
		"Status":        func() error { return Status("x") },
		"Reloading":     Reloading,
		"WatchdogPing":  WatchdogPing,
		"ExtendTimeout": func() error { return ExtendTimeout(time.Second) },
		"StoreFDs":      func() error { return StoreFDs("fuse", w) },
		"RemoveFDs":     func() error { return RemoveFDs("fuse") },
	}
	for name, call := range calls {
		if err := call(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	m.expectNothing()
	if _, err := w.Write([]byte("x")); err != nil {
		t.Errorf("our file was touched: %v", err)
	}
	buf := make([]byte, 1)
	if _, err := r.Read(buf); err != nil {
		t.Error(err)
	}
}
