package integration

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	readyTimeout = 30 * time.Second // from exec to `describe-volumes` exiting 0
	stopTimeout  = 30 * time.Second // from SIGTERM to exit
	cliTimeout   = time.Minute      // one CLI call
	logTailLines = 150              // daemon log lines printed when a test fails
)

// daemon is one cowvol daemon under test, started and signalled by PID.
// Its directories outlive restarts: restart() runs a new process on the same
// data dir, mount dir and socket, as a host reboot or a crash-restart would.
type daemon struct {
	DataDir  string
	MountDir string
	Socket   string
	LogPath  string
	Keyring  string // --keyring: apart from the data dir, as in production
	StateDir string // --state-dir: what a server hands its successor

	bin string // the binary the daemon runs; cowvolBin if empty

	args []string // extra `daemon` flags, e.g. --snapshot-store URL
	env  []string // extra environment, KEY=VALUE

	log    *os.File
	starts int
	cmd    *exec.Cmd
	done   chan struct{} // closed when cmd has been waited for
	err    error         // cmd.Wait's result, valid once done is closed
}

// daemonOption changes how newDaemon sets a daemon up.
type daemonOption func(*daemon)

// withDataDir runs the daemon on an existing data dir instead of a fresh one.
func withDataDir(dir string) daemonOption { return func(d *daemon) { d.DataDir = dir } }

// withMountDir runs the daemon with --mount dir instead of a fresh
// temporary directory (a symbolic link, a directory other users can reach).
func withMountDir(dir string) daemonOption { return func(d *daemon) { d.MountDir = dir } }

// withKeyring runs the daemon on an existing keyring (another host's copy
// of a shared one) instead of a fresh one.
func withKeyring(dir string) daemonOption { return func(d *daemon) { d.Keyring = dir } }

// withDaemonArgs appends flags to `cowvol daemon`, e.g. "--snapshot-store", url.
//
//lint:ignore U1000 used by the snapshot tests (--snapshot-store)
func withDaemonArgs(args ...string) daemonOption {
	return func(d *daemon) { d.args = append(d.args, args...) }
}

// withEnv adds KEY=VALUE pairs to the daemon's and the CLI's environment.
//
//lint:ignore U1000 used by the snapshot tests (S3 credentials)
func withEnv(kv ...string) daemonOption { return func(d *daemon) { d.env = append(d.env, kv...) } }

// startDaemon starts a daemon on fresh temporary directories and waits until
// it serves its control socket (and so, by contract, its FUSE mount).
func startDaemon(t testing.TB, opts ...daemonOption) *daemon {
	t.Helper()
	d := newDaemon(t, opts...)
	d.start(t)
	d.waitReady(t)
	return d
}

// newDaemon prepares a daemon's directories and cleanup without starting it.
// Cleanup, pass or fail: stop the process by PID (SIGTERM, then SIGKILL),
// lazily unmount its mount dir if still mounted, print its log tail if the
// test failed.
func newDaemon(t testing.TB, opts ...daemonOption) *daemon {
	t.Helper()
	requirePrereqs(t)
	requireBinary(t)
	d := &daemon{DataDir: t.TempDir(), MountDir: t.TempDir(), Keyring: filepath.Join(t.TempDir(), "keyring"),
		StateDir: filepath.Join(t.TempDir(), "state")}
	for _, o := range opts {
		o(d)
	}
	// Unix socket paths are limited to 108 bytes; t.TempDir() can be longer.
	sockDir, err := os.MkdirTemp("", "cv")
	if err != nil {
		t.Fatal(err)
	}
	// Other users reach the socket too (the daemon authorizes them by
	// their credentials), as they would in /run/cowvol.
	if err := os.Chmod(sockDir, 0o755); err != nil {
		t.Fatal(err)
	}
	d.Socket = filepath.Join(sockDir, "cowvol.sock")
	d.LogPath = filepath.Join(t.TempDir(), "daemon.log")
	d.log, err = os.OpenFile(d.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if d.running() {
			if err := d.terminate(); err != nil {
				t.Errorf("cleanup: stopping daemon: %v", err)
			}
		}
		d.stopOrphanServer(t)
		unmountStale(t, d.MountDir)
		os.RemoveAll(sockDir)
		if strings.Contains(d.output(), "WARNING: DATA RACE") {
			t.Errorf("the daemon reported a data race (built with COWVOL_DAEMON_RACE=1); see its log")
		}
		if t.Failed() {
			t.Logf("daemon log %s (last %d lines):\n%s", d.LogPath, logTailLines, d.logTail(logTailLines))
		}
		d.log.Close()
	})
	return d
}

// start launches `cowvol --socket S daemon --data-dir D --mount M [args]`
// without waiting for it to be ready.
func (d *daemon) start(t testing.TB) {
	t.Helper()
	if d.running() {
		t.Fatal("harness: start: daemon already running")
	}
	d.starts++
	argv := append([]string{"--socket", d.Socket, "daemon", "--data-dir", d.DataDir, "--mount", d.MountDir,
		"--keyring", d.Keyring, "--state-dir", d.StateDir}, d.args...)
	fmt.Fprintf(d.log, "----- harness: start #%d: cowvol %s\n", d.starts, strings.Join(argv, " "))
	bin := d.bin
	if bin == "" {
		bin = cowvolBin
	}
	d.startCmd(t, exec.Command(bin, argv...))
}

// startCmd starts cmd as the daemon (its own process group, its output in
// the daemon's log), without waiting for it to be ready.
func (d *daemon) startCmd(t testing.TB, cmd *exec.Cmd) {
	t.Helper()
	if cmd.Env == nil {
		cmd.Env = d.environ()
	}
	cmd.Stdout, cmd.Stderr = d.log, d.log
	// If the test binary dies (e.g. -timeout), let the daemon unmount and
	// go. Its own process group holds the supervisor and the server it
	// runs, so that a crash of the whole daemon can be one kill.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM, Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting daemon: %v", err)
	}
	d.cmd, d.done, d.err = cmd, make(chan struct{}), nil
	done := d.done
	go func() {
		err := cmd.Wait()
		d.err = err
		fmt.Fprintf(d.log, "----- harness: daemon pid %d exited: %v\n", cmd.Process.Pid, exitString(err))
		close(done)
	}()
	t.Logf("harness: started daemon pid %d (data %s, mount %s, socket %s)", cmd.Process.Pid, d.DataDir, d.MountDir, d.Socket)
}

// waitReady polls `cowvol describe-volumes` until it exits 0, failing the
// test with the daemon log if the daemon exits or readyTimeout passes. Then
// it checks the contract that the socket comes up only after the mount.
func (d *daemon) waitReady(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(readyTimeout)
	var last result
	for {
		if !d.running() {
			t.Fatalf("daemon exited before it was ready: %v (its log follows at cleanup)", exitString(d.err))
		}
		last = run(10*time.Second, d.environ(), cowvolBin, "--socket", d.Socket, "describe-volumes")
		if last.Code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon not ready after %v; last describe-volumes: %v (its log follows at cleanup)", readyTimeout, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !isMountpoint(t, d.MountDir) {
		t.Fatalf("daemon answers on %s but %s is not a mount point (the socket must come up only after the FUSE mount)", d.Socket, d.MountDir)
	}
}

func (d *daemon) running() bool {
	if d.done == nil {
		return false
	}
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

// pid is the current process's PID (0 if never started).
func (d *daemon) pid() int {
	if d.cmd == nil {
		return 0
	}
	return d.cmd.Process.Pid
}

// waitExit waits up to timeout for the daemon to exit and returns its exit
// error and whether it exited.
func (d *daemon) waitExit(timeout time.Duration) (err error, exited bool) {
	if d.done == nil {
		return nil, true
	}
	select {
	case <-d.done:
		return d.err, true
	case <-time.After(timeout):
		return nil, false
	}
}

func (d *daemon) signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	fmt.Fprintf(d.log, "----- harness: kill -%d %d\n", sig, d.pid())
	if err := d.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatalf("signal %v to daemon pid %d: %v", sig, d.pid(), err)
	}
}

// kill9 SIGKILLs the whole daemon, the supervisor and its server, by their
// process group, and waits for both: a crash of everything. Its FUSE mount
// is left disconnected and its socket file behind, as after a real crash.
// (killServer kills the server alone, which the daemon survives.)
func (d *daemon) kill9(t testing.TB) {
	t.Helper()
	if !d.running() {
		t.Fatal("harness: kill9: daemon not running")
	}
	server := d.serverPID()
	fmt.Fprintf(d.log, "----- harness: kill -9 -%d (supervisor and server)\n", d.pid())
	if err := syscall.Kill(-d.pid(), syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 -%d: %v", d.pid(), err)
	}
	if _, ok := d.waitExit(stopTimeout); !ok {
		t.Fatalf("daemon pid %d still there %v after SIGKILL", d.pid(), stopTimeout)
	}
	if server > 0 && !waitGone(server, stopTimeout) {
		t.Fatalf("server pid %d still there %v after SIGKILL", server, stopTimeout)
	}
}

// stopOrphanServer stops, by PID, a server whose supervisor was killed
// alone (it goes on serving): SIGTERM, SIGKILL after a timeout.
func (d *daemon) stopOrphanServer(t testing.TB) {
	pid := d.serverPID()
	if pid == 0 || syscall.Kill(pid, 0) != nil {
		return
	}
	fmt.Fprintf(d.log, "----- harness: kill -15 %d (a server left without its supervisor)\n", pid)
	syscall.Kill(pid, syscall.SIGTERM)
	if !waitGone(pid, stopTimeout) {
		syscall.Kill(pid, syscall.SIGKILL)
		waitGone(pid, stopTimeout)
		t.Errorf("cleanup: server pid %d ignored SIGTERM for %v; SIGKILLed", pid, stopTimeout)
	}
}

// serverPID is the pid of the server the daemon runs, 0 if none: the pid
// its state dir records, if that process is this daemon's server (its
// command line names the state dir), not a process that got the pid later.
func (d *daemon) serverPID() int {
	b, err := os.ReadFile(filepath.Join(d.StateDir, "server.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if pid <= 0 || err != nil || !strings.Contains(string(cmdline), "--state-dir="+d.StateDir) {
		return 0
	}
	return pid
}

// waitGone waits until process pid no longer exists.
func waitGone(pid int, timeout time.Duration) bool {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return true
		}
	}
	return false
}

// stop sends SIGTERM by PID and waits up to stopTimeout; it returns the exit
// error (nil for exit status 0). A daemon that does not exit in time is
// SIGKILLed and an error says so.
func (d *daemon) stop(t testing.TB) error {
	t.Helper()
	if !d.running() {
		t.Fatal("harness: stop: daemon not running")
	}
	d.signal(t, syscall.SIGTERM)
	if err, ok := d.waitExit(stopTimeout); ok {
		return err
	}
	syscall.Kill(-d.pid(), syscall.SIGKILL)
	d.waitExit(stopTimeout)
	return fmt.Errorf("daemon pid %d did not exit within %v of SIGTERM; SIGKILLed", d.pid(), stopTimeout)
}

// terminate is stop for cleanups: it never calls t.Fatal. What does not
// stop in time, the supervisor and its server, is killed.
func (d *daemon) terminate() error {
	pid := d.pid()
	d.cmd.Process.Signal(syscall.SIGTERM)
	if _, ok := d.waitExit(stopTimeout); ok {
		return nil
	}
	syscall.Kill(-pid, syscall.SIGKILL)
	d.waitExit(stopTimeout)
	return fmt.Errorf("daemon pid %d ignored SIGTERM for %v; SIGKILLed", pid, stopTimeout)
}

// restart starts a new daemon process on the same data dir, mount dir and
// socket and waits for it to be ready. The previous one must have exited.
func (d *daemon) restart(t testing.TB) {
	t.Helper()
	d.start(t)
	d.waitReady(t)
}

// environ is the environment for the daemon and the CLI: the test's own,
// minus any COWVOL_* configuration that would override the harness's flags.
func (d *daemon) environ() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "COWVOL_") && !strings.HasPrefix(kv, "COWVOL_REQUIRE_ROOT=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, d.env...)
}

// logTail returns the last n lines of the daemon's log.
func (d *daemon) logTail(n int) string {
	b, err := os.ReadFile(d.LogPath)
	if err != nil {
		return fmt.Sprintf("(reading %s: %v)", d.LogPath, err)
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// volumePath is the volume's block file in the FUSE mount.
func (d *daemon) volumePath(id string) string { return filepath.Join(d.MountDir, id) }

// snapshotPath is a snapshot's read-only file in the FUSE mount.
//
//lint:ignore U1000 used by the snapshot tests
func (d *daemon) snapshotPath(id string) string {
	return filepath.Join(d.MountDir, "snapshots", id)
}

// unmountStale lazily unmounts dir if it is still a mount point (a daemon
// that was SIGKILLed, or one that failed to unmount on exit).
func unmountStale(t testing.TB, dir string) {
	m, ok, err := mountAt(dir)
	if err != nil || !ok {
		return
	}
	dir = m.MountPoint // a symbolic link resolved
	t.Logf("cleanup: %s still mounted after the daemon exited; unmounting", dir)
	// A forced unmount aborts the FUSE connection first (even when the
	// unmount itself fails busy), so that nothing waits for ever on a
	// connection whose descriptor something still holds, unserved.
	syscall.Unmount(dir, syscall.MNT_FORCE)
	if p, ok := lookTool("umount"); ok {
		if r := run(cmdTimeout, nil, p, "-l", dir); r.Code == 0 {
			return
		}
	}
	for _, fm := range []string{"fusermount3", "fusermount"} {
		if p, ok := lookTool(fm); ok {
			if r := run(cmdTimeout, nil, p, "-u", "-z", dir); r.Code == 0 {
				return
			}
		}
	}
	if _, ok, _ := mountAt(dir); ok {
		t.Errorf("cleanup: could not unmount %s", dir)
	}
}

// exitString describes a process's exit for logs.
func exitString(err error) string {
	if err == nil {
		return "exit status 0"
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return "killed by " + ws.Signal().String()
		}
	}
	return err.Error()
}

// output is what the daemon process(es) printed, without the harness's own
// "----- harness:" marker lines.
func (d *daemon) output() string {
	b, _ := os.ReadFile(d.LogPath)
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "----- harness:") {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
