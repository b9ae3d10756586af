package integration

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fakeSystemd stands in for systemd's side of a Type=notify service with a
// file-descriptor store: it receives the daemon's notifications on
// NOTIFY_SOCKET, keeps the descriptors sent with FDSTORE=1 (by FDNAME), and
// hands them back to the next start in LISTEN_FDS, as systemd does.
type fakeSystemd struct {
	sock string
	conn *net.UnixConn
	env  []string // more environment for the daemon (WATCHDOG_USEC=...)

	mu     sync.Mutex
	states []string
	store  map[string]*os.File
}

func newFakeSystemd(t *testing.T) *fakeSystemd {
	t.Helper()
	dir, err := os.MkdirTemp("", "sd")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeSystemd{sock: filepath.Join(dir, "notify"), store: map[string]*os.File{}}
	f.conn, err = net.ListenUnixgram("unixgram", &net.UnixAddr{Name: f.sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	go f.serve()
	t.Cleanup(func() {
		f.conn.Close()
		os.RemoveAll(dir)
		f.mu.Lock()
		for _, fd := range f.store {
			fd.Close()
		}
		f.mu.Unlock()
	})
	return f
}

func (f *fakeSystemd) serve() {
	buf, oob := make([]byte, 4096), make([]byte, 4096)
	for {
		n, oobn, _, _, err := f.conn.ReadMsgUnix(buf, oob)
		if err != nil {
			return
		}
		var fds []int
		if msgs, err := syscall.ParseSocketControlMessage(oob[:oobn]); err == nil {
			for _, m := range msgs {
				if r, err := syscall.ParseUnixRights(&m); err == nil {
					fds = append(fds, r...)
				}
			}
		}
		f.received(string(buf[:n]), fds)
	}
}

func (f *fakeSystemd) received(state string, fds []int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.states = append(f.states, state)
	fields := map[string]string{}
	for _, line := range strings.Split(state, "\n") {
		k, v, _ := strings.Cut(line, "=")
		fields[k] = v
	}
	switch {
	case fields["FDSTORE"] == "1" && len(fds) == 1:
		if old := f.store[fields["FDNAME"]]; old != nil {
			old.Close()
		}
		f.store[fields["FDNAME"]] = os.NewFile(uintptr(fds[0]), fields["FDNAME"])
	case fields["FDSTOREREMOVE"] == "1":
		if old := f.store[fields["FDNAME"]]; old != nil {
			old.Close()
			delete(f.store, fields["FDNAME"])
		}
	default:
		for _, fd := range fds {
			syscall.Close(fd)
		}
	}
}

// count is how many notifications containing s arrived.
func (f *fakeSystemd) count(s string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, st := range f.states {
		if strings.Contains(st, s) {
			n++
		}
	}
	return n
}

// saw reports whether a notification containing s arrived.
func (f *fakeSystemd) saw(s string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, st := range f.states {
		if strings.Contains(st, s) {
			return true
		}
	}
	return false
}

func (f *fakeSystemd) stored() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var names []string
	for n := range f.store {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// launch starts the daemon as systemd would: NOTIFY_SOCKET set, the stored
// descriptors at fd 3 on, named in LISTEN_FDNAMES, LISTEN_PID the daemon's
// (a shell that sets it and execs the daemon keeps its pid).
func (f *fakeSystemd) launch(t *testing.T, d *daemon) {
	t.Helper()
	names := f.stored()
	f.mu.Lock()
	var extra []*os.File
	for _, n := range names {
		extra = append(extra, f.store[n])
	}
	f.mu.Unlock()
	argv := []string{"--socket", d.Socket, "daemon", "--data-dir", d.DataDir, "--mount", d.MountDir,
		"--keyring", d.Keyring, "--state-dir", d.StateDir}
	script := fmt.Sprintf(`LISTEN_PID=$$ LISTEN_FDS=%d LISTEN_FDNAMES=%s exec "$0" "$@"`, len(names), strings.Join(names, ":"))
	if len(names) == 0 {
		script = `exec "$0" "$@"`
	}
	cmd := exec.Command("sh", append([]string{"-c", script, cowvolBin}, argv...)...)
	cmd.Env = append(append(d.environ(), "NOTIFY_SOCKET="+f.sock), f.env...)
	cmd.ExtraFiles = extra
	d.startCmd(t, cmd)
}

// Under systemd the mount outlives the whole daemon: the supervisor gives
// systemd the FUSE connection, the lock and the socket (FDSTORE=1); when
// supervisor and server are killed together, systemd restarts the daemon
// with them (LISTEN_FDS) and the new one takes the mount over: ext4 on a
// volume under fsync'd load never sees an error.
func TestFDStoreKeepsTheMountAcrossADaemonCrash(t *testing.T) {
	requirePrereqs(t)
	sd := newFakeSystemd(t)
	d := newDaemon(t)
	sd.launch(t, d)
	d.waitReady(t)
	waitFor(t, "READY=1 and the descriptors in the store", func() bool {
		return sd.saw("READY=1") && len(sd.stored()) >= 3
	})
	t.Logf("stored: %v", sd.stored())
	vol := d.createVolume(t, "256MiB")
	lo := attachLoop(t, d.volumePath(vol.VolumeId))
	mkfsExt4(t, lo.Dev)
	m := mountDev(t, lo.Dev, t.TempDir())
	load := startLoad(t, "fs", m.Dir, uint64(time.Now().UnixNano()))
	for i := range 3 {
		load.waitProgress(t, 10, fmt.Sprintf("before crash %d", i))
		server := d.serverPID()
		d.kill9(t) // supervisor and server: systemd's store keeps the connection
		sd.launch(t, d)
		d.waitNewServer(t, server)
		if !strings.Contains(d.output(), "restarted by systemd: took over the mount") {
			t.Fatalf("crash %d: the new daemon did not take the mount over from the store", i)
		}
	}
	load.waitProgress(t, 10, "after the crashes")
	if err := load.halt(); err != nil {
		t.Fatalf("the load saw an error: %v", err)
	}
	load.check(t, m.Dir)
	m.unmount(t)
	e2fsckClean(t, lo.Dev)
	lo.detach(t)
	if err := d.stop(t); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if !sd.saw("STOPPING=1") || isMountpoint(t, d.MountDir) {
		t.Fatalf("the stop: STOPPING=1 sent %v, still mounted %v", sd.saw("STOPPING=1"), isMountpoint(t, d.MountDir))
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(readyTimeout); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, readyTimeout)
		}
	}
}
