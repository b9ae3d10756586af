package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// These tests check cowvol's patch of go-fuse (third_party/go-fuse,
// PATCHES.md): a FUSE connection outlives the process serving it when a
// parent holds its fd, and a successor process takes it over with
// MountOptions.Resume and Server.NotifyResend. The test process plays the
// supervisor: it mounts the connection itself and starts the servers, which
// are this test binary run again in a role (takeover_gofuse_server_test.go).

// resendBit is FUSE_UNIQUE_RESEND: the kernel sets it on the unique of a
// request it queues again after FUSE_NOTIFY_RESEND.
const resendBit = 1 << 63

// startFirstServer starts a server that answers INIT on conn and returns it
// with the state it negotiated, logged.
func startFirstServer(t *testing.T, conn *takeoverConn) (*takeoverChild, fuse.SessionState) {
	t.Helper()
	first := startTakeoverChild(t, roleFirst, []*os.File{conn.dev}, nil, nil)
	st := *first.waitEvent(t, "ready").State
	t.Logf("INIT: kernel protocol %d.%d flags %#x (HAS_RESEND %v); negotiated %d.%d flags %#x max_write %d max_pages %d",
		st.In.Major, st.In.Minor, st.In.Flags64(), st.In.Flags64()&fuse.CAP_HAS_RESEND != 0,
		st.Out.Major, st.Out.Minor, st.Out.Flags64(), st.Out.MaxWrite, st.Out.MaxPages)
	t.Logf("INIT: kernel offered %s", fuse.Print(&st.In))
	t.Logf("INIT: server replied %s", fuse.Print(&st.Out))
	if st.In.Flags64()&fuse.CAP_HAS_RESEND == 0 {
		t.Fatalf("the kernel does not offer FUSE_HAS_RESEND (protocol %d.%d): no takeover of in-flight requests", st.In.Major, st.In.Minor)
	}
	if st.Out.MaxWrite != takeoverMaxWrite {
		t.Fatalf("negotiated max_write %d, want %d", st.Out.MaxWrite, takeoverMaxWrite)
	}
	return first, st
}

// startSuccessor starts a server in role that resumes st on conn.
func startSuccessor(t *testing.T, conn *takeoverConn, role string, st fuse.SessionState) *takeoverChild {
	t.Helper()
	js, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	c := startTakeoverChild(t, role, []*os.File{conn.dev}, []string{takeoverStateEnv + "=" + string(js)}, nil)
	if got := *c.waitEvent(t, "ready").State; got != st {
		t.Fatalf("%s resumed with state %+v, want %+v", role, got, st)
	}
	return c
}

func checkTakeoverData(t *testing.T, what string, got []byte) {
	t.Helper()
	if len(got) != takeoverFileSize {
		t.Fatalf("%s: %d bytes, want %d", what, len(got), takeoverFileSize)
	}
	for i, b := range got {
		if want := takeoverByte(int64(i)); b != want {
			t.Fatalf("%s: byte %d is %#x, want %#x", what, i, b, want)
		}
	}
}

// A server is SIGKILLed inside a READ; a successor resumes the connection,
// sends NOTIFY_RESEND and answers that very READ (its unique with the resend
// bit): the reader gets the right bytes and no error, and the mount goes on
// working.
func TestGoFuseTakeoverAfterKill9(t *testing.T) {
	conn := mountTakeoverConn(t)
	first, st := startFirstServer(t, conn)

	// A plain fd and pread: os.File would register it with the poller
	// (a POLL request) and set O_NONBLOCK.
	fd, err := unix.Open(filepath.Join(conn.mnt, takeoverFileName), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	var (
		readData []byte
		readErr  error
	)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		buf := make([]byte, takeoverFileSize)
		n, err := unix.Pread(fd, buf, 0)
		readData, readErr = buf[:max(n, 0)], err
	}()
	closeFd := sync.OnceFunc(func() { unix.Close(fd) })
	t.Cleanup(func() {
		select {
		case <-readDone:
		default: // the test failed with the read blocked: end it
			conn.abort()
			<-readDone
		}
		closeFd()
	})

	inRead := first.waitEvent(t, "read")
	if inRead.Unique&resendBit != 0 || inRead.Fh != takeoverFh {
		t.Fatalf("first server's READ: unique %#x fh %#x", inRead.Unique, inRead.Fh)
	}
	killed := time.Now()
	first.kill(t)
	select {
	case <-readDone:
		t.Fatalf("the read ended when its server died: %d bytes, %v", len(readData), readErr)
	default:
	}

	started := time.Now()
	succ := startSuccessor(t, conn, roleSuccessor, st)
	ready := time.Since(started)
	if ev := succ.waitEvent(t, "resend"); ev.Status != "OK" {
		t.Fatalf("NotifyResend: %s", ev.Status)
	}
	select {
	case <-readDone:
	case <-time.After(takeoverWait):
		t.Fatalf("the read is still blocked %v after the successor started", takeoverWait)
	}
	t.Logf("takeover: successor ready %v after start; read completed %v after the SIGKILL, %v after the successor started",
		ready, time.Since(killed), time.Since(started))
	if readErr != nil {
		t.Fatalf("read after takeover: %v", readErr)
	}
	checkTakeoverData(t, "read across the takeover", readData)
	resent := succ.waitEvent(t, "read")
	if resent.Unique != inRead.Unique|resendBit || resent.Offset != inRead.Offset || resent.Fh != takeoverFh {
		t.Fatalf("successor's first READ: unique %#x offset %d fh %#x, want the first server's (unique %#x offset %d) resent with bit 63",
			resent.Unique, resent.Offset, resent.Fh, inRead.Unique, inRead.Offset)
	}
	t.Logf("the READ the first server died in (unique %#x) came back to the successor as %#x", inRead.Unique, resent.Unique)

	var sfs unix.Statfs_t
	if err := unix.Statfs(conn.mnt, &sfs); err != nil {
		t.Fatalf("statfs after takeover: %v", err)
	}
	if sfs.Blocks != 1<<20 || sfs.Files != uint64(len(roleSuccessor)) {
		t.Fatalf("statfs after takeover: blocks %d files %d, want %d and %d (the successor's)", sfs.Blocks, sfs.Files, 1<<20, len(roleSuccessor))
	}
	fi, err := os.Stat(filepath.Join(conn.mnt, takeoverFileName))
	if err != nil || fi.Size() != takeoverFileSize {
		t.Fatalf("stat after takeover: %v, %v", fi, err)
	}
	data, err := os.ReadFile(filepath.Join(conn.mnt, takeoverFileName))
	if err != nil {
		t.Fatalf("new read after takeover: %v", err)
	}
	checkTakeoverData(t, "new read after takeover", data)
	closeFd()

	conn.unmount(t)
	succ.waitExit(t)
}

// A request the successor has read when it sends NOTIFY_RESEND is queued
// again too: the server handles it twice, and its reply to the first copy
// fails with ENOENT. Hence "call NotifyResend before Serve".
func TestGoFuseResendAfterServeRepeatsRequest(t *testing.T) {
	conn := mountTakeoverConn(t)
	first, st := startFirstServer(t, conn)
	first.kill(t) // idle: nothing in flight
	late := startSuccessor(t, conn, roleLateResend, st)

	statDone := make(chan error, 1)
	go func() {
		var sfs unix.Statfs_t
		statDone <- unix.Statfs(conn.mnt, &sfs)
	}()
	// The resent copy may reach a handler before the first copy's handler
	// reports its NotifyResend: the order of these three is not fixed.
	var statfs []takeoverEvent
	resent := false
	for len(statfs) < 2 || !resent {
		switch ev := late.nextEvent(t, "two STATFS and a resend"); ev.Kind {
		case "statfs":
			statfs = append(statfs, ev)
		case "resend":
			if ev.Status != "OK" {
				t.Fatalf("NotifyResend: %s", ev.Status)
			}
			resent = true
		}
	}
	orig, again := statfs[0], statfs[1]
	if orig.Unique&resendBit != 0 || again.Unique != orig.Unique|resendBit {
		t.Fatalf("STATFS uniques %#x then %#x, want u then u|1<<63", orig.Unique, again.Unique)
	}
	select {
	case err := <-statDone:
		if err != nil {
			t.Fatalf("statfs: %v", err)
		}
	case <-time.After(takeoverWait):
		t.Fatalf("statfs still blocked %v after the resent copy was handled", takeoverWait)
	}
	conn.unmount(t)
	late.waitExit(t)
	// go-fuse logs the failed reply to the first copy.
	if out := late.output.String(); !strings.Contains(out, "no such file or directory. opcode: STATFS") {
		t.Errorf("no ENOENT for the reply to the first copy in the server's log:\n%s", out)
	}
	t.Logf("STATFS %#x was handled twice (again as %#x); the reply to the first copy got ENOENT", orig.Unique, again.Unique)
}

// NewServer with DirectMount (or DirectMountStrict) and "/dev/fd/N" serves
// that connection: it must not mount a new connection on /dev/fd/N (which
// resolves to /dev/fuse). The child runs in a mount namespace of its own, so
// a wrong mount cannot touch this host's.
func TestGoFuseDirectMountHonoursDevFd(t *testing.T) {
	requireFuse(t)
	for _, role := range []string{roleDirect, roleDirectStrict} {
		t.Run(role, func(t *testing.T) {
			mnt := t.TempDir()
			c := startTakeoverChild(t, role, nil, []string{takeoverMntEnv + "=" + mnt},
				&syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS})
			ev := c.waitEvent(t, "mounts")
			if !slices.Equal(ev.Before, ev.After) {
				t.Fatalf("NewServer mounted something: FUSE mounts before %q, after %q", ev.Before, ev.After)
			}
			if st := c.waitEvent(t, "stat"); st.Err != "<nil>" {
				t.Fatalf("stat of the file on the connection: %s", st.Err)
			}
			c.waitExit(t)
		})
	}
}

// fillDistinct sets every settable integer in v (a struct, walked through
// embedded structs and arrays) to a distinct value near its type's maximum,
// so a lossy encoding (float64 for 64-bit integers) or a dropped field shows.
func fillDistinct(v reflect.Value, next *uint64) {
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fillDistinct(v.Field(i), next)
			}
		}
	case reflect.Array:
		for i := range v.Len() {
			fillDistinct(v.Index(i), next)
		}
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		*next++
		v.SetUint(^uint64(0)>>(64-v.Type().Bits()) - *next)
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		*next++
		v.SetInt(-int64(*next))
	}
}

// The supervisor stores fuse.SessionState as JSON: every field comes back.
func TestGoFuseSessionStateJSON(t *testing.T) {
	var st fuse.SessionState
	var n uint64
	fillDistinct(reflect.ValueOf(&st).Elem(), &n)
	js, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var got fuse.SessionState
	if err := json.Unmarshal(js, &got); err != nil {
		t.Fatal(err)
	}
	if got != st {
		t.Fatalf("JSON round trip changed the state:\n got %+v\nwant %+v\n%s", got, st, js)
	}
	t.Logf("%d fields round-tripped: %s", n, js)
}

// NewServer refuses a Resume it would serve differently from the server
// that answered INIT, before it touches any fd. The state is a real one,
// from a first server on this kernel.
func TestGoFuseResumeRefused(t *testing.T) {
	conn := mountTakeoverConn(t)
	_, st := startFirstServer(t, conn)
	// As a first server with MaxWrite 128 KiB would have negotiated.
	small := st
	small.Out.MaxWrite, small.Out.MaxPages = 128<<10, 32
	// No fd has this number: were NewServer to accept, it would wrap nothing.
	const noFd = "/dev/fd/1000000"
	for _, tc := range []struct {
		name       string
		mountPoint string
		opts       fuse.MountOptions
		state      fuse.SessionState
		want       string
	}{
		{"a directory", conn.mnt, fuse.MountOptions{}, st, "not /dev/fd/N"},
		{"larger MaxWrite", noFd, fuse.MountOptions{MaxWrite: 1 << 20}, small, "max_write 1048576"},
		{"smaller MaxWrite", noFd, fuse.MountOptions{MaxWrite: 64 << 10}, st, "max_write 65536"},
		{"other capabilities", noFd, fuse.MountOptions{EnableLocks: true}, st, "flags"},
		{"not INITed", noFd, fuse.MountOptions{}, fuse.SessionState{}, "protocol 0.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Resume = &tc.state
			srv, err := fuse.NewServer(fuse.NewDefaultRawFileSystem(), tc.mountPoint, &tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewServer: %v, %v; want an error with %q", srv, err, tc.want)
			}
			t.Log(err)
		})
	}
}
