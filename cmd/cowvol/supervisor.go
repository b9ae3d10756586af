package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/cowvol/cowvol/cow"
	"github.com/cowvol/cowvol/fusefs"
	"github.com/cowvol/cowvol/systemd"
)

// The supervisor is `cowvol daemon`. It takes the data dir's lock, opens
// the control socket, mounts the FUSE tree and holds all three; it never
// serves. It runs the server (`cowvol serve`) and hands it those
// descriptors. The kernel keeps a FUSE connection, and queues its
// requests, while any process holds a descriptor of it: so when the server
// dies, the supervisor starts another that takes the connection over, and
// the file systems on the volumes see a pause, not an error. On SIGHUP it
// upgrades: the server hands over (see serve.go), the supervisor
// re-executes its binary, which may be new, and starts a server of the new
// binary. Only both gone ends the mount.

const (
	// crashLoopLimit failures within crashLoopWindow: the supervisor gives
	// up (a server that cannot start would otherwise stall I/O for ever).
	// A failure is a server that died before it served, or that exited
	// on its own (an error, a panic, a fault) within failureUptime of
	// serving. A server killed (SIGKILL: the OOM killer, an operator) after
	// it served is no failure of its own: it is restarted however often.
	crashLoopLimit  = 5
	crashLoopWindow = 2 * time.Minute
	failureUptime   = 10 * time.Second
	// restartBackoffMax bounds the pause before a restart; the first
	// restart after a crash is immediate.
	restartBackoffMax = 5 * time.Second
	// upgradeCheckTimeout bounds running the new binary's --version.
	upgradeCheckTimeout = 10 * time.Second
)

type supervisor struct {
	cfg  daemonConfig
	args []string // the server's command line
	// execArgs is the supervisor's own, as an upgrade re-executes it.
	execArgs []string
	bin      string // the executable: what an upgrade runs
	log      *slog.Logger
	fds      files // device, lock, socket, tcp

	child     *exec.Cmd
	childDone chan error
	ready     chan struct{} // closed when the server says it serves
	readyAt   time.Time     // when it did; zero before
	crashes   []time.Time
	pending   os.Signal    // for the server once it serves (tell)
	alive     atomic.Int64 // when the loop last went round (unix ns)
	// The watchdog's timeout (0: none), and the server's last heartbeat
	// (unix ns), see heartbeat.go.
	watchdogTimeout time.Duration
	serverBeat      atomic.Int64
	unhealthyLogged bool
	stopping        bool // a stop was asked: the server unmounts and exits
	upgrading       bool // the server is handing over for an upgrade
}

// runSupervisor runs the daemon until it is stopped, or gives up.
func runSupervisor(c *cli.Context, cfg daemonConfig) error {
	s := &supervisor{cfg: cfg, log: cfg.log.With("role", "supervisor", "pid", os.Getpid()),
		args: commandArgs(c, cfg, "serve"), execArgs: commandArgs(c, cfg, "daemon")}
	bin, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the cowvol binary: %w", err)
	}
	s.bin = bin
	// Signals are caught before anything is mounted: from here on a stop
	// is an orderly one.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	takeover, err := s.setUp()
	if err != nil {
		return err
	}
	return s.run(takeover, sigs)
}

// commandArgs is the command line of the server (command "serve") or of
// the supervisor re-executed ("daemon"): the global flags and the daemon's
// flags given, with the paths as cfg resolved them. Neither resolves paths
// again: the mount point must not be looked at while no server serves (a
// request to an unserved connection waits for ever).
func commandArgs(c *cli.Context, cfg daemonConfig, command string) []string {
	args := []string{"--socket=" + globalString(c, "socket"), command,
		"--data-dir=" + cfg.dataDir, "--mount=" + cfg.mount, "--state-dir=" + cfg.stateDir}
	for _, f := range daemonFlags() {
		name := f.Names()[0]
		if !c.IsSet(name) || name == "data-dir" || name == "mount" || name == "state-dir" {
			continue
		}
		switch f.(type) {
		case *cli.StringSliceFlag:
			for _, v := range c.StringSlice(name) {
				args = append(args, "--"+name+"="+v)
			}
		default:
			args = append(args, "--"+name+"="+fmt.Sprint(c.Value(name)))
		}
	}
	return args
}

// setUp adopts the descriptors of the supervisor this one replaced (an
// upgrade), or takes the lock, the socket and the mount. It reports
// whether the connection has been served already (a server must take it
// over rather than answer INIT).
func (s *supervisor) setUp() (takeover bool, err error) {
	fds, err := inherited(envSupervisorFiles)
	if err != nil {
		return false, err
	}
	if fds != nil {
		s.fds = fds
		s.log.Info("upgraded: took over the mount, the lock and the socket from the previous supervisor")
		return true, nil
	}
	if fds, err = fromSystemd(); err != nil {
		return false, err
	}
	if fds[fdDevice] != nil {
		s.fds = fds
		s.log.Info("restarted by systemd: took over the mount, the lock and the socket it kept")
		return true, nil
	}
	fds.closeAll()
	s.fds = files{}
	lock, err := cow.LockDataDir(s.cfg.dataDir)
	if err != nil {
		return false, err
	}
	s.fds[fdLock] = lock
	if err := os.MkdirAll(s.cfg.stateDir, 0o700); err != nil {
		s.fds.closeAll()
		return false, fmt.Errorf("state dir: %w", err)
	}
	if err := prepareMountpoint(s.cfg.mount, s.log); err != nil {
		s.fds.closeAll()
		return false, err
	}
	if err := s.listen(); err != nil {
		s.fds.closeAll()
		return false, err
	}
	dev, err := fusefs.Mount(s.cfg.mount)
	if err != nil {
		s.fds.closeAll()
		return false, err
	}
	s.fds[fdDevice] = dev
	s.storeFDs()
	return false, nil
}

// fromSystemd returns the descriptors systemd kept for this service (its
// file-descriptor store), after a restart of the supervisor.
func fromSystemd() (files, error) {
	named, err := systemd.Files()
	if err != nil {
		return nil, fmt.Errorf("the descriptors systemd passed: %w", err)
	}
	fds := files{}
	for name, fs := range named {
		for i, f := range fs {
			if i == 0 && name != "unknown" {
				fds[name] = f
			} else {
				f.Close()
			}
		}
	}
	return fds, nil
}

// storeFDs hands the descriptors to systemd's file-descriptor store (when
// under systemd), so that the mount outlives the supervisor too: systemd
// restarts it and hands them back (fromSystemd).
func (s *supervisor) storeFDs() {
	for _, name := range s.fds.names() {
		if err := systemd.StoreFDs(name, s.fds[name]); err != nil {
			s.log.Warn("systemd's file-descriptor store refused a descriptor: a crash of the supervisor would end the mount", "name", name, "err", err)
		}
	}
}

// listen opens the control socket (and the TCP listener) and keeps their
// descriptors.
func (s *supervisor) listen() error {
	lns, err := listen(s.cfg)
	if err != nil {
		return err
	}
	for i, ln := range lns {
		name := fdSocket
		if i > 0 {
			name = fdTCP
		}
		f, err := ln.(interface{ File() (*os.File, error) }).File()
		if err != nil {
			return fmt.Errorf("%s listener: %w", name, err)
		}
		// The file keeps the socket; the listener is closed without
		// removing the socket's file (the supervisor removes it at the end).
		if ul, ok := ln.(*net.UnixListener); ok {
			ul.SetUnlinkOnClose(false)
		}
		ln.Close()
		s.fds[name] = f
	}
	return nil
}

// run supervises the server until a stop, or a crash loop.
func (s *supervisor) run(takeover bool, sigs <-chan os.Signal) error {
	s.watchdogTimeout, _ = systemd.WatchdogInterval()
	if err := s.start(takeover); err != nil {
		return s.giveUp(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	beat := s.watchdog(ctx)
	defer beat.Stop()
	var restart <-chan time.Time // armed while a restart waits out its backoff
	for {
		select {
		case <-beat.C:
			if s.watchdogTimeout > 0 && s.serverHealthy(s.watchdogTimeout, time.Now()) {
				s.alive.Store(time.Now().UnixNano())
			}
		case sig := <-sigs:
			s.signal(sig)
			if s.stopping && s.child == nil {
				return s.finish(nil, false) // stopped between a crash and the restart
			}
		case <-s.ready:
			s.serving()
		case err := <-s.childDone:
			s.child = nil
			switch {
			case s.upgrading && err == nil && !s.stopping:
				return s.reexec(sigs)
			case s.upgrading && err == nil:
				// A stop during an upgrade: the server handed over;
				// another (of this binary) takes over and stops.
				s.upgrading = false
				if err := s.start(true); err != nil {
					return s.giveUp(err)
				}
				s.pending = syscall.SIGTERM
				continue
			case s.stopping:
				return s.finish(err, true)
			}
			s.upgrading = false
			backoff, err := s.crashed(err)
			if err != nil {
				return s.giveUp(err)
			}
			restart = time.After(backoff)
		case <-restart:
			restart = nil
			if err := s.start(true); err != nil {
				return s.giveUp(err)
			}
		}
	}
}

// serving records that the server serves, and hands it a signal that
// waited for it to be ready to take one.
func (s *supervisor) serving() {
	s.ready, s.readyAt = nil, time.Now()
	systemd.Ready(fmt.Sprintf("serving %s (server pid %d)", s.cfg.mount, s.child.Process.Pid))
	if sig := s.pending; sig != nil {
		s.pending = nil
		s.child.Process.Signal(sig)
	}
}

// tell signals the server, or, while it is starting (it may not handle
// signals yet: their default action would kill it), once it serves.
func (s *supervisor) tell(sig os.Signal) {
	switch {
	case s.child == nil:
	case s.readyAt.IsZero():
		s.pending = sig
	default:
		s.child.Process.Signal(sig)
	}
}

// watchdog pings systemd's watchdog (when it asks for one) until ctx ends,
// while the supervisor's loop goes round: the loop beats on the returned
// ticker.
func (s *supervisor) watchdog(ctx context.Context) *time.Ticker {
	interval, ok := systemd.WatchdogInterval()
	if !ok {
		return time.NewTicker(time.Hour)
	}
	s.alive.Store(time.Now().UnixNano())
	alive := func() bool { return time.Since(time.Unix(0, s.alive.Load())) < interval }
	go systemd.Watchdog(ctx, interval, alive)
	return time.NewTicker(interval / 4)
}

// signal handles a signal to the supervisor: SIGHUP upgrades, SIGTERM
// and SIGINT stop (a second one makes a server that waits for attached
// volumes give up; one that has not started yet is killed).
func (s *supervisor) signal(sig os.Signal) {
	switch {
	case sig == syscall.SIGHUP && !s.stopping:
		s.upgrade()
	case sig == syscall.SIGHUP:
	case !s.stopping:
		s.log.Info("stopping", "signal", sig.String())
		systemd.Stopping()
		s.stopping = true
		if !s.upgrading { // a server handing over stops after it
			s.tell(syscall.SIGTERM)
		}
	case s.child != nil && s.readyAt.IsZero():
		s.log.Warn("stopping again: killing the server, which is not serving yet", "signal", sig.String())
		s.child.Process.Kill()
	default:
		s.tell(syscall.SIGTERM)
	}
}

// start starts a server: fresh answers the connection's INIT, takeover
// resumes it.
func (s *supervisor) start(takeover bool) error {
	mode := modeFresh
	if takeover {
		mode = modeTakeover
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd := exec.Command(s.bin, s.args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.Env = append(systemd.ChildEnv(os.Environ()), envServeMode+"="+mode)
	if s.watchdogTimeout > 0 {
		cmd.Env = append(cmd.Env, heartbeatEnv(s.watchdogTimeout))
	}
	pass := files{fdReady: w}
	for n, f := range s.fds {
		pass[n] = f
	}
	pass.passTo(cmd, envServeFiles)
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return fmt.Errorf("start the server: %w", err)
	}
	w.Close()
	s.child, s.childDone = cmd, make(chan error, 1)
	s.ready, s.readyAt = make(chan struct{}), time.Time{}
	done := s.childDone
	go func() { done <- cmd.Wait() }()
	go s.awaitReady(r, s.ready, cmd.Process.Pid, mode)
	s.log.Info("server started", "server_pid", cmd.Process.Pid, "mode", mode)
	return nil
}

// awaitReady closes ready when the server says it serves, then records
// its heartbeats until it closes the pipe (exits).
func (s *supervisor) awaitReady(r *os.File, ready chan<- struct{}, pid int, mode string) {
	defer r.Close()
	br := bufio.NewReader(r)
	if line, err := br.ReadString('\n'); err != nil || line != "ready\n" {
		return
	}
	s.log.Info("server ready", "server_pid", pid, "mode", mode)
	close(ready)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		if line == heartbeatLine {
			s.serverBeat.Store(time.Now().UnixNano())
		}
	}
}

// crashed records that the server died (exit) and says how long to wait
// before starting another, which takes the connection over; an error when
// the servers die in a loop.
func (s *supervisor) crashed(exit error) (time.Duration, error) {
	now := time.Now()
	if s.failed(exit, now) {
		s.crashes = append(s.crashes, now)
	}
	for len(s.crashes) > 0 && now.Sub(s.crashes[0]) > crashLoopWindow {
		s.crashes = s.crashes[1:]
	}
	if len(s.crashes) >= crashLoopLimit {
		return 0, fmt.Errorf("the server failed %d times within %v (last: %v)", len(s.crashes), crashLoopWindow, exitString(exit))
	}
	backoff := min(restartBackoffMax, time.Duration(max(len(s.crashes)-1, 0))*200*time.Millisecond)
	s.log.Error("the server died; starting another that takes the mount over", "exit", exitString(exit), "backoff", backoff)
	systemd.Status("the server died (" + exitString(exit) + "); starting another")
	return backoff, nil
}

// failed reports whether a server's death (exit) counts toward a crash
// loop (see crashLoopLimit).
func (s *supervisor) failed(exit error, now time.Time) bool {
	if s.readyAt.IsZero() {
		return true
	}
	var ee *exec.ExitError
	if errors.As(exit, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return false
		}
	}
	return now.Sub(s.readyAt) < failureUptime
}

// upgrade has the server hand over, once the binary it will re-execute
// proves it runs; the supervisor then re-executes it (run, reexec).
func (s *supervisor) upgrade() {
	if s.upgrading || s.child == nil || s.readyAt.IsZero() {
		s.log.Warn("upgrade refused: the server is starting or upgrading; try again once it serves")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), upgradeCheckTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, s.bin, "--version").CombinedOutput()
	if err != nil {
		s.log.Error("upgrade refused: the binary does not run", "binary", s.bin, "err", err, "output", string(out))
		return
	}
	s.log.Info("upgrading: the server hands over", "binary", s.bin, "version", string(out))
	systemd.Reloading()
	s.upgrading = true
	s.child.Process.Signal(syscall.SIGUSR1)
}

// reexec replaces this process with the (new) binary, keeping the mount,
// the lock and the socket; a failure restarts a server of this one.
func (s *supervisor) reexec(sigs <-chan os.Signal) error {
	env, err := s.fds.keepAcrossExec(envSupervisorFiles)
	if err == nil {
		err = execBlockingStops(s.bin, append([]string{os.Args[0]}, s.execArgs...), append(os.Environ(), env))
	}
	s.log.Error("upgrade: re-executing the binary failed; going on with this one", "binary", s.bin, "err", err)
	s.upgrading = false
	return s.run(true, sigs)
}

// execBlockingStops executes the binary with SIGTERM, SIGINT and SIGHUP
// blocked: the mask survives exec, so one that arrives before the new image
// catches them (signal.Notify unblocks them) waits for it instead of
// killing the process that holds the mount.
func execBlockingStops(bin string, argv, env []string) error {
	runtime.LockOSThread() // the thread whose mask exec keeps
	defer runtime.UnlockOSThread()
	var set, old unix.Sigset_t
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP} {
		set.Val[(sig-1)/64] |= 1 << ((uint(sig) - 1) % 64)
	}
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, &set, &old); err != nil {
		return err
	}
	err := syscall.Exec(bin, argv, env)
	unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil)
	return err
}

// finish ends a stop: the server has unmounted (or given up on a busy
// mount), or, served false, no server ran; the supervisor lets go of
// everything.
func (s *supervisor) finish(exit error, served bool) error {
	if !served {
		// Stopped while no server ran: unmount here.
		if err := fusefs.Unmount(s.cfg.mount, false); err != nil {
			s.log.Error("unmount", "err", err)
			exit = err
		}
	}
	if exit == nil {
		systemd.RemoveFDs(fdDevice) // unmounted: nothing to keep
	}
	s.release()
	if exit != nil {
		return fmt.Errorf("the server stopped with an error: %v", exitString(exit))
	}
	s.log.Info("stopped")
	return nil
}

// giveUp ends the mount: with no server, file systems on the volumes would
// wait for ever; they get errors instead.
func (s *supervisor) giveUp(cause error) error {
	s.log.Error("giving up: unmounting; file systems on the volumes now get I/O errors", "err", cause)
	if s.child != nil {
		s.child.Process.Kill()
		<-s.childDone
	}
	if err := fusefs.Unmount(s.cfg.mount, true); err != nil {
		s.log.Error("unmount", "err", err)
	}
	s.release()
	return cause
}

// release closes what the supervisor holds and removes the socket file.
func (s *supervisor) release() {
	s.fds.closeAll()
	if err := os.Remove(s.cfg.socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Warn("removing the socket", "err", err)
	}
	os.Remove(filepath.Join(s.cfg.stateDir, serverPIDFile))
}

// exitString describes how a process ended.
func exitString(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}
