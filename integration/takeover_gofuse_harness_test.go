package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The parent side's harness of the go-fuse takeover tests: the connection
// the test mounts and holds as a supervisor would, and the child processes
// that serve it.

// takeoverWait bounds every wait for a child: a failure, never an ordering.
const takeoverWait = time.Minute

// takeoverWatchdog is how long a test may hold its connection before the
// watchdog aborts it, so that a test stuck in a FUSE syscall fails and
// cleans up instead of hanging with the mount.
const takeoverWatchdog = 4 * time.Minute

// requireFuse skips the test without root and /dev/fuse, or fails it when
// COWVOL_REQUIRE_ROOT=1.
func requireFuse(t *testing.T) {
	t.Helper()
	if missing := missingPrivileges(); len(missing) > 0 {
		if !requireRoot() {
			t.Skipf("needs %v (set COWVOL_REQUIRE_ROOT=1 to make this a failure)", missing)
		}
		t.Fatalf("missing prerequisites: %v", missing)
	}
}

// takeoverConn is a FUSE connection the test mounted itself and holds open,
// as a supervisor does.
type takeoverConn struct {
	dev      *os.File
	mnt      string
	watchdog *time.Timer
	aborted  atomic.Bool // the watchdog aborted the connection
}

// mountTakeoverConn mounts a new connection on a temporary directory. The
// cleanup unmounts it, aborting it first if it is busy, which ends every
// syscall still waiting on it.
func mountTakeoverConn(t *testing.T) *takeoverConn {
	t.Helper()
	requireFuse(t)
	mnt := t.TempDir()
	fd, err := mountFuseConn(mnt)
	if err != nil {
		t.Fatal(err)
	}
	c := &takeoverConn{dev: os.NewFile(uintptr(fd), "/dev/fuse"), mnt: mnt}
	c.watchdog = time.AfterFunc(takeoverWatchdog, func() {
		c.aborted.Store(true)
		c.abort()
	})
	t.Cleanup(func() {
		c.watchdog.Stop()
		if c.aborted.Load() {
			t.Errorf("the test still held its FUSE connection after %v: aborted it", takeoverWatchdog)
		}
		c.unmount(t)
		c.dev.Close()
	})
	return c
}

// abort aborts the connection (FUSE does that for a forced unmount, even
// one that fails busy): every request waiting on it ends with an error.
func (c *takeoverConn) abort() {
	unix.Unmount(c.mnt, unix.MNT_FORCE)
}

// unmount unmounts the connection unless it is unmounted already. It never
// stats the mount point: with no server that would wait for good.
func (c *takeoverConn) unmount(t *testing.T) {
	t.Helper()
	err := unix.Unmount(c.mnt, 0)
	if err == nil || errors.Is(err, unix.EINVAL) { // EINVAL: not a mount point
		return
	}
	t.Logf("unmount %s: %v; aborting the connection and detaching it", c.mnt, err)
	c.abort()
	if err := unix.Unmount(c.mnt, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
		t.Errorf("unmount -l %s: %v", c.mnt, err)
	}
}

// takeoverChild is a child process in a role, and the events it reported.
type takeoverChild struct {
	role    string
	cmd     *exec.Cmd
	events  chan takeoverEvent // closed when the child's end of the pipe is
	output  bytes.Buffer       // stdout and stderr; read only after exited
	exited  chan struct{}
	waitErr error // set before exited is closed
}

// startTakeoverChild runs this test binary in role. files become fds 3, 4,
// ... in the child, then the events pipe. The cleanup kills the child by PID
// if it is still running.
func startTakeoverChild(t *testing.T, role string, files []*os.File, env []string, attr *syscall.SysProcAttr) *takeoverChild {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &takeoverChild{role: role, events: make(chan takeoverEvent, 64), exited: make(chan struct{})}
	c.cmd = exec.Command(exe)
	c.cmd.Env = append(append(os.Environ(), takeoverRoleEnv+"="+role), env...)
	c.cmd.ExtraFiles = append(slices.Clone(files), w)
	var out io.Writer = &c.output
	if os.Getenv(takeoverDebugEnv) == "1" {
		out = io.MultiWriter(out, os.Stderr)
	}
	c.cmd.Stdout, c.cmd.Stderr = out, out
	c.cmd.SysProcAttr = attr
	err = c.cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		t.Fatalf("starting %s: %v", role, err)
	}
	go c.readEvents(r)
	go func() {
		c.waitErr = c.cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(func() {
		c.kill(t)
		t.Logf("%s (pid %d) output:\n%s", role, c.cmd.Process.Pid, c.output.String())
	})
	return c
}

// readEvents decodes the child's events until its end of the pipe closes.
func (c *takeoverChild) readEvents(r *os.File) {
	defer close(c.events)
	defer r.Close()
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var ev takeoverEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			ev = takeoverEvent{Kind: "error", Err: fmt.Sprintf("bad event %q: %v", sc.Text(), err)}
		}
		c.events <- ev
	}
}

// nextEvent returns the child's next event. An "error" event, the child's
// exit or takeoverWait without an event fails the test.
func (c *takeoverChild) nextEvent(t *testing.T, want string) takeoverEvent {
	t.Helper()
	var ev takeoverEvent
	var ok bool
	select {
	case ev, ok = <-c.events:
	case <-time.After(takeoverWait):
		t.Fatalf("%s reported no %s in %v", c.role, want, takeoverWait)
	}
	if !ok {
		<-c.exited
		t.Fatalf("%s exited (%v) before reporting %s:\n%s", c.role, c.waitErr, want, c.output.String())
	}
	if ev.Kind == "error" {
		t.Fatalf("%s: %s", c.role, ev.Err)
	}
	return ev
}

// waitEvent returns the child's next event of kind, skipping the others.
func (c *takeoverChild) waitEvent(t *testing.T, kind string) takeoverEvent {
	t.Helper()
	for {
		if ev := c.nextEvent(t, strconv.Quote(kind)); ev.Kind == kind {
			return ev
		}
	}
}

// kill SIGKILLs the child by PID unless it has exited, and reaps it.
func (c *takeoverChild) kill(t *testing.T) {
	t.Helper()
	select {
	case <-c.exited:
		return
	default:
	}
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("kill %s (pid %d): %v", c.role, c.cmd.Process.Pid, err)
	}
	select {
	case <-c.exited:
	case <-time.After(takeoverWait):
		t.Errorf("%s (pid %d) still running %v after SIGKILL", c.role, c.cmd.Process.Pid, takeoverWait)
	}
}

// waitExit waits for the child to exit on its own and fails the test unless
// it exited 0.
func (c *takeoverChild) waitExit(t *testing.T) {
	t.Helper()
	select {
	case <-c.exited:
	case <-time.After(takeoverWait):
		t.Fatalf("%s still running after %v", c.role, takeoverWait)
	}
	if c.waitErr != nil {
		t.Fatalf("%s: %v\n%s", c.role, c.waitErr, c.output.String())
	}
}
