package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// The child side of the go-fuse takeover tests (takeover_gofuse_test.go):
// the test binary, started again with takeoverRoleEnv set, runs one role
// here instead of the tests (runMain) and reports to the parent on an
// events pipe, one JSON object per line.

const (
	takeoverRoleEnv  = "COWVOL_TEST_TAKEOVER_ROLE"
	takeoverStateEnv = "COWVOL_TEST_TAKEOVER_STATE" // the JSON fuse.SessionState a successor resumes
	takeoverMntEnv   = "COWVOL_TEST_TAKEOVER_MNT"   // the directory the directmount role mounts on
	takeoverDebugEnv = "COWVOL_TEST_TAKEOVER_DEBUG" // "1": go-fuse logs every request (MountOptions.Debug)

	takeoverFuseFD   = 3 // the inherited connection (servers only)
	takeoverEventsFD = 4 // the events pipe (3 for the directmount role)

	takeoverFileName = "data"
	takeoverFileSize = 300_001
	takeoverFileIno  = 2
	// takeoverFh is the handle the first server gives OPEN: the kernel
	// echoes it to the successor, which never saw the OPEN.
	takeoverFh = 0xc0f0_0000_0000_0002
	// takeoverMaxWrite is what the first server negotiates; the successor
	// passes MaxWrite 0 and takes it from the saved state.
	takeoverMaxWrite = 1 << 20
)

// The roles.
const (
	roleFirst        = "first"              // answers INIT, reports its SessionState, blocks inside READ
	roleSuccessor    = "successor"          // resumes, sends NOTIFY_RESEND, serves
	roleLateResend   = "late-resend"        // resumes, serves, sends NOTIFY_RESEND while inside STATFS
	roleDirect       = "directmount"        // mounts its own connection, then NewServer with DirectMount on /dev/fd/N
	roleDirectStrict = "directmount-strict" // the same with DirectMountStrict
)

// takeoverEvent is one report from a child to the parent.
type takeoverEvent struct {
	Kind   string             // "ready", "read", "statfs", "resend", "mounts", "stat", "error"
	State  *fuse.SessionState `json:",omitempty"` // ready: what the server negotiated or resumed
	Unique uint64             `json:",omitempty"` // read, statfs: the request's unique
	Offset int64              `json:",omitempty"` // read
	Fh     uint64             `json:",omitempty"` // read
	Status string             `json:",omitempty"` // resend: NotifyResend's result
	Before []string           `json:",omitempty"` // mounts: FUSE mounts before NewServer
	After  []string           `json:",omitempty"` // mounts: FUSE mounts after NewServer
	Err    string             `json:",omitempty"` // error, stat
}

// eventWriter sends events to the parent; handlers run concurrently.
type eventWriter struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func (w *eventWriter) send(ev takeoverEvent) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.enc.Encode(ev); err != nil {
		fmt.Fprintf(os.Stderr, "takeover child: events pipe: %v\n", err)
		os.Exit(3)
	}
}

// takeoverByte is the content of the served file at off.
func takeoverByte(off int64) byte { return byte(off*131 ^ off>>8) }

// runTakeoverRole runs role in this (child) process and returns its exit code.
func runTakeoverRole(role string) int {
	fd := takeoverEventsFD
	if role == roleDirect || role == roleDirectStrict {
		fd = 3
	}
	ev := &eventWriter{enc: json.NewEncoder(os.NewFile(uintptr(fd), "events"))}
	var err error
	switch role {
	case roleFirst, roleSuccessor, roleLateResend:
		err = serveTakeover(role, ev)
	case roleDirect, roleDirectStrict:
		err = directMountOnDevFd(ev, role == roleDirectStrict)
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	if err != nil {
		ev.send(takeoverEvent{Kind: "error", Err: err.Error()})
		fmt.Fprintf(os.Stderr, "takeover child %s: %v\n", role, err)
		return 1
	}
	return 0
}

// serveTakeover serves the inherited connection as role until it is
// unmounted (or the process killed).
func serveTakeover(role string, ev *eventWriter) error {
	fs := &takeoverFS{RawFileSystem: fuse.NewDefaultRawFileSystem(), ev: ev, role: role}
	opts := &fuse.MountOptions{Name: "cowvoltakeover", MaxWrite: takeoverMaxWrite}
	if role != roleFirst {
		var st fuse.SessionState
		if err := json.Unmarshal([]byte(os.Getenv(takeoverStateEnv)), &st); err != nil {
			return fmt.Errorf("decoding %s: %w", takeoverStateEnv, err)
		}
		opts = &fuse.MountOptions{Name: "cowvoltakeover", Resume: &st}
	}
	opts.Debug = os.Getenv(takeoverDebugEnv) == "1"
	srv, err := fuse.NewServer(fs, fmt.Sprintf("/dev/fd/%d", takeoverFuseFD), opts)
	if err != nil {
		return err
	}
	fs.srv = srv
	st := srv.SessionState()
	ev.send(takeoverEvent{Kind: "ready", State: &st})
	if role == roleSuccessor {
		ev.send(takeoverEvent{Kind: "resend", Status: srv.NotifyResend().String()})
	}
	srv.Serve()
	return nil
}

// takeoverFS is a one-file RawFileSystem: /data, takeoverFileSize bytes of
// takeoverByte, opened with direct I/O so every read reaches the server.
// Attributes and entries are not cached, so the successor answers them too.
type takeoverFS struct {
	fuse.RawFileSystem
	ev   *eventWriter
	role string
	srv  *fuse.Server

	// lateResendOnce makes the late-resend role's first STATFS the one
	// that sends NOTIFY_RESEND.
	lateResendOnce sync.Once
}

func (f *takeoverFS) String() string { return "cowvoltakeover" }

func fileAttr(a *fuse.Attr) {
	a.Ino = takeoverFileIno
	a.Mode = syscall.S_IFREG | 0o644
	a.Size = takeoverFileSize
	a.Nlink = 1
}

func (f *takeoverFS) Lookup(cancel <-chan struct{}, h *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	if h.NodeId != fuse.FUSE_ROOT_ID || name != takeoverFileName {
		return fuse.ENOENT
	}
	out.NodeId = takeoverFileIno
	fileAttr(&out.Attr)
	return fuse.OK
}

func (f *takeoverFS) GetAttr(cancel <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	switch in.NodeId {
	case fuse.FUSE_ROOT_ID:
		out.Ino = fuse.FUSE_ROOT_ID
		out.Mode = syscall.S_IFDIR | 0o755
		out.Nlink = 2
	case takeoverFileIno:
		fileAttr(&out.Attr)
	default:
		return fuse.ENOENT
	}
	return fuse.OK
}

func (f *takeoverFS) Open(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	if in.NodeId != takeoverFileIno {
		return fuse.EISDIR
	}
	out.Fh = takeoverFh
	// NOFLUSH: the test process is client and supervisor at once. The
	// successor it starts inherits its descriptor of this file across
	// clone, and execve closing it (close-on-exec) would send FLUSH,
	// which only the successor could answer: a deadlock.
	out.OpenFlags = fuse.FOPEN_DIRECT_IO | fuse.FOPEN_NOFLUSH
	return fuse.OK
}

// Read reports the request; the first server then blocks for good (the
// parent kills it there), the others answer.
func (f *takeoverFS) Read(cancel <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	f.ev.send(takeoverEvent{Kind: "read", Unique: in.Unique, Offset: int64(in.Offset), Fh: in.Fh})
	if f.role == roleFirst {
		select {} // killed here by the parent
	}
	if in.NodeId != takeoverFileIno || in.Fh != takeoverFh {
		return nil, fuse.EBADF
	}
	off := int64(in.Offset)
	n := max(0, min(int64(len(buf)), takeoverFileSize-off))
	for i := range n {
		buf[i] = takeoverByte(off + i)
	}
	return fuse.ReadResultData(buf[:n]), fuse.OK
}

// StatFs puts the serving role in Files, so the parent sees who answered.
// In the late-resend role the first STATFS sends NOTIFY_RESEND before it
// answers: the kernel then queues this very request again.
func (f *takeoverFS) StatFs(cancel <-chan struct{}, h *fuse.InHeader, out *fuse.StatfsOut) fuse.Status {
	f.ev.send(takeoverEvent{Kind: "statfs", Unique: h.Unique})
	if f.role == roleLateResend {
		f.lateResendOnce.Do(func() {
			f.ev.send(takeoverEvent{Kind: "resend", Status: f.srv.NotifyResend().String()})
		})
	}
	out.Bsize = 4096
	out.Frsize = 4096
	out.Blocks = 1 << 20
	out.NameLen = 255
	out.Files = uint64(len(f.role))
	return fuse.OK
}

func (f *takeoverFS) Flush(cancel <-chan struct{}, in *fuse.FlushIn) fuse.Status { return fuse.OK }

func (f *takeoverFS) Release(cancel <-chan struct{}, in *fuse.ReleaseIn) {}

// mountFuseConn opens /dev/fuse and mounts that connection on dir, as
// go-fuse's mountDirect does, and returns the device fd; the kernel queues
// INIT for whoever serves it.
func mountFuseConn(dir string) (int, error) {
	fd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open /dev/fuse: %w", err)
	}
	data := fmt.Sprintf("fd=%d,rootmode=40000,user_id=%d,group_id=%d,max_read=%d,allow_other",
		fd, os.Geteuid(), os.Getegid(), takeoverMaxWrite)
	if err := unix.Mount("cowvoltakeover", dir, "fuse.cowvoltakeover", unix.MS_NOSUID|unix.MS_NODEV, data); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("mount fuse on %s: %w", dir, err)
	}
	return fd, nil
}

// fuseMounts lists the FUSE mounts this process sees.
func fuseMounts() ([]string, error) {
	ms, err := mounts()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range ms {
		if m.FSType == "fuse" || strings.HasPrefix(m.FSType, "fuse.") {
			out = append(out, m.MountPoint)
		}
	}
	return out, nil
}

// directMountOnDevFd runs in a mount namespace of its own (the parent sets
// CLONE_NEWNS, so whatever it mounts goes away with it): it mounts a
// connection on takeoverMntEnv, then asks NewServer for DirectMount (or
// DirectMountStrict) on "/dev/fd/N" of that connection. go-fuse must serve
// the connection it was given, not mount a new one.
func directMountOnDevFd(ev *eventWriter, strict bool) error {
	mnt := os.Getenv(takeoverMntEnv)
	conn, err := mountFuseConn(mnt) // owned by the Server below
	if err != nil {
		return err
	}
	before, err := fuseMounts()
	if err != nil {
		return err
	}
	opts := &fuse.MountOptions{Name: "cowvoltakeover", DirectMount: !strict, DirectMountStrict: strict}
	fs := &takeoverFS{RawFileSystem: fuse.NewDefaultRawFileSystem(), ev: ev, role: roleDirect}
	srv, err := fuse.NewServer(fs, fmt.Sprintf("/dev/fd/%d", conn), opts)
	if err != nil {
		return fmt.Errorf("NewServer: %w", err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve()
	}()
	after, err := fuseMounts()
	if err != nil {
		return err
	}
	ev.send(takeoverEvent{Kind: "mounts", Before: before, After: after})
	// The parent stops here (killing this process) if a mount appeared:
	// then nobody answers INIT on mnt and the stat below would hang.
	var st unix.Stat_t
	statErr := unix.Stat(mnt+"/"+takeoverFileName, &st)
	ev.send(takeoverEvent{Kind: "stat", Err: fmt.Sprint(statErr)})
	if err := unix.Unmount(mnt, 0); err != nil {
		return fmt.Errorf("unmount %s: %w", mnt, err)
	}
	select {
	case <-served:
	case <-time.After(30 * time.Second):
		return fmt.Errorf("Serve still running 30 s after unmounting %s", mnt)
	}
	return nil
}
