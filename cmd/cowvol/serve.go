package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cowvol/cowvol/control"
	"github.com/cowvol/cowvol/cow"
	"github.com/cowvol/cowvol/fusefs"
	"github.com/cowvol/cowvol/kms"
	"github.com/cowvol/cowvol/metrics"
)

// The server is the process that serves: it opens the engine on the data
// dir and serves the FUSE connection and the control socket that its
// supervisor (`cowvol daemon`) holds and hands it. It stops in one of two
// ways:
//
//   - SIGTERM or SIGINT (the daemon is stopping): stop taking control
//     requests, sync every volume, unmount, close the engine;
//   - SIGUSR1 (a handover, for an upgrade): stop taking control requests
//     and FUSE requests at a request boundary (the kernel keeps the rest
//     for the successor), sync every volume, close the engine; the mount
//     stays.
//
// Killed, it leaves what its successor needs: the kernel keeps the
// requests it read and did not answer, the state directory the session and
// open files, the map journals the writes it acknowledged.

// serveMode says whether the server is the connection's first.
const (
	modeFresh    = "fresh"
	modeTakeover = "takeover"
)

// runServer serves until told to stop or hand over.
func runServer(ctx context.Context, cfg daemonConfig) error {
	log := cfg.log.With("pid", os.Getpid())
	// Caught from the start: a stop or a handover asked while the server
	// starts is carried out once it serves.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1)
	defer signal.Stop(sigs)
	fds, err := inherited(envServeFiles)
	if err != nil {
		return err
	}
	if fds[fdDevice] == nil || fds[fdLock] == nil || fds[fdSocket] == nil {
		return errors.New("cowvol serve is run by cowvol daemon, which hands it the FUSE connection, the data dir's lock and the control socket")
	}
	mode := os.Getenv(envServeMode)
	os.Unsetenv(envServeMode)
	holdForTests()
	srv, err := startServing(ctx, cfg, fds, mode, log)
	if err != nil {
		return err
	}
	defer srv.stopMetrics()
	writeServerPID(cfg.stateDir, log)
	log.Info("cowvol server ready", "mode", mode, "data_dir", cfg.dataDir, "mount", cfg.mount, "socket", cfg.socket,
		"listen", cfg.listen, "access", cfg.policy.String())
	srv.announceReady(fds[fdReady], log)
	return srv.serveUntilStopped(sigs, log)
}

// serving is what a server runs while it serves, and how each part stops.
type serving struct {
	eng  *cow.Engine
	fsrv *fusefs.Server
	// served gets the result of each of the listeners' control servers.
	served    chan error
	listeners int
	// stopServe ends the control servers; stopLifecycle the lifecycle
	// policies' scheduler; stopHeartbeat the heartbeat (if any);
	// stopMetrics the --metrics-listen server.
	stopServe, stopLifecycle, stopHeartbeat, stopMetrics func()
}

// startServing opens the engine and serves it: the FUSE connection, the
// metrics listener, the lifecycle scheduler and the control server on
// every listener. A failure closes the engine.
func startServing(ctx context.Context, cfg daemonConfig, fds files, mode string, log *slog.Logger) (*serving, error) {
	mtr := newMetrics()
	eng, ctlOpts, err := openEngine(ctx, cfg, fds[fdLock], mtr, log)
	if err != nil {
		return nil, err
	}
	if err := registerEngineMetrics(mtr, eng, cfg.dataDir, log); err != nil {
		eng.Close()
		return nil, err
	}
	ctlOpts.Metrics = mtr.Handler()
	fsrv, err := fusefs.Serve(eng, fusefs.Config{Device: fds[fdDevice], Mountpoint: cfg.mount, StateDir: cfg.stateDir,
		Takeover: mode == modeTakeover, Logger: log, Debug: cfg.debugFUSE, VolumeGroup: cfg.volumeGroup, Observer: mtr.IO})
	if err != nil {
		eng.Close()
		return nil, err
	}
	srv := &serving{eng: eng, fsrv: fsrv, stopHeartbeat: func() {}}
	srv.stopMetrics = serveMetrics(cfg.metricsListen, mtr.Handler(), log)
	listeners, err := fileListeners(fds)
	if err != nil {
		srv.stopMetrics()
		eng.Close()
		return nil, err
	}
	ctlOpts.Host = newHost(ctx, eng, cfg.mount, log)
	if ctlOpts.Lifecycle, srv.stopLifecycle, err = startLifecycle(cfg, eng, log); err != nil {
		srv.stopMetrics()
		eng.Close()
		return nil, err
	}
	ctl := control.NewServer(eng, ctlOpts)
	serveCtx, stopServe := context.WithCancel(context.WithoutCancel(ctx))
	srv.stopServe, srv.listeners = stopServe, len(listeners)
	srv.served = make(chan error, len(listeners))
	for _, ln := range listeners {
		go func() { srv.served <- ctl.Serve(serveCtx, ln) }()
	}
	return srv, nil
}

// announceReady tells the supervisor, on the ready pipe (if it gave one),
// that the server serves, and starts the heartbeat it may ask for.
func (srv *serving) announceReady(ready *os.File, log *slog.Logger) {
	if ready == nil {
		return
	}
	fmt.Fprintln(ready, "ready")
	srv.stopHeartbeat = startHeartbeat(ready, func(ctx context.Context) error {
		_, err := srv.eng.DescribeVolumes(ctx)
		return err
	}, log)
}

// serveUntilStopped waits for a signal (a stop, or a handover on
// SIGUSR1), a control server's failure or the end of the FUSE connection,
// then stops serving accordingly.
func (srv *serving) serveUntilStopped(sigs <-chan os.Signal, log *slog.Logger) error {
	var (
		serveErr error
		handover bool
	)
	select {
	case s := <-sigs:
		handover = s == syscall.SIGUSR1
		log.Info("stopping", "signal", s.String(), "handover", handover)
	case serveErr = <-srv.served:
		log.Error("control server stopped", "err", serveErr)
	case <-srv.fsrv.Done():
		srv.stopBackground()
		srv.eng.Close()
		return errors.New("the FUSE connection was closed (unmounted or aborted by someone else)")
	}
	srv.stopBackground()
	waitServed(srv.served, srv.listeners, serveErr, log)
	if handover {
		return handOver(srv.eng, srv.fsrv, log)
	}
	return stop(srv.eng, srv.fsrv, sigs, log)
}

// stopBackground stops taking control requests, the lifecycle scheduler
// and the heartbeat, in that order.
func (srv *serving) stopBackground() {
	srv.stopServe()
	srv.stopLifecycle()
	srv.stopHeartbeat()
}

// openEngine opens the key ring, the snapshot stores and the engine, with
// the data dir's lock the supervisor took.
func openEngine(ctx context.Context, cfg daemonConfig, lock *os.File, mtr *metrics.Metrics, log *slog.Logger) (*cow.Engine, control.Options, error) {
	ctlOpts := control.Options{AccountID: cfg.accountID, Logger: log, Policy: cfg.policy, Profiling: cfg.pprof, Region: cfg.region}
	keys, err := kms.OpenLocal(cfg.keyring, cfg.region, cfg.accountID)
	if err != nil {
		return nil, ctlOpts, err
	}
	ctlOpts.Keys = keys
	if isWithin(keys.Dir(), cfg.dataDir) {
		log.Warn("the keyring is inside the data dir: a lost or shared disk gives away keys and data together", "keyring", keys.Dir())
	}
	if cfg.credentials != "" {
		if ctlOpts.AccessKeys, err = control.LoadCredentials(cfg.credentials); err != nil {
			return nil, ctlOpts, err
		}
	}
	opts := cow.Options{DataDir: cfg.dataDir, SyncInterval: cfg.syncInterval, Logger: log, OutpostArn: cfg.outpostArn,
		AccountID: cfg.accountID, FlushDeadline: cfg.flushDeadline, GCGrace: cfg.gcGrace, Keys: keys,
		AcceptMetadataLoss: cfg.acceptLoss, Lock: lock, JournalDir: filepath.Join(cfg.stateDir, "journal"),
		LockDay: cfg.lockDay, RecycleBinDay: cfg.recycleBinDay, DirectIO: cfg.directIO}
	if cfg.snapshotStore != "" {
		if opts.SnapshotStore, err = openStore(ctx, cfg.snapshotStore, log); err != nil {
			return nil, ctlOpts, err
		}
	}
	if cfg.localStore != "" {
		if opts.LocalSnapshotStore, err = openStore(ctx, cfg.localStore, log); err != nil {
			return nil, ctlOpts, err
		}
	}
	if err := openArchiveStore(ctx, cfg, &opts, log); err != nil {
		return nil, ctlOpts, err
	}
	if err := measuredStores(mtr, &opts); err != nil {
		return nil, ctlOpts, err
	}
	eng, err := cow.Open(opts)
	if errors.Is(err, cow.ErrMetadataDamaged) {
		return nil, ctlOpts, fmt.Errorf("%w. Nothing was changed. Restore the damaged files if you can (from a copy of the data dir), "+
			"or start once with --accept-metadata-loss to go on with what the metadata store has: what it cannot place is kept in %s",
			err, filepath.Join(cfg.dataDir, "lost+found"))
	}
	if err != nil {
		return nil, ctlOpts, err
	}
	keys.OnChange(eng.KeysChanged)
	return eng, ctlOpts, nil
}

// fileListeners makes listeners of the sockets the supervisor handed
// over. Closing them leaves the supervisor's (and the socket file) alone.
func fileListeners(fds files) ([]net.Listener, error) {
	var lns []net.Listener
	for _, name := range []string{fdSocket, fdTCP} {
		f := fds[name]
		if f == nil {
			continue
		}
		ln, err := net.FileListener(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s listener: %w", name, err)
		}
		lns = append(lns, ln)
	}
	return lns, nil
}

func waitServed(served <-chan error, running int, serveErr error, log *slog.Logger) {
	if serveErr != nil {
		running-- // that one has returned already
	}
	for ; running > 0; running-- {
		if err := <-served; err != nil {
			log.Warn("control server shutdown", "err", err)
		}
	}
}

// handOver leaves the connection to a successor: FUSE requests stop at a
// request boundary (those under way answered), every volume is synced,
// the engine closed.
func handOver(eng *cow.Engine, fsrv *fusefs.Server, log *slog.Logger) error {
	start := time.Now()
	fsrv.Drain()
	eng.StopBackground()
	if err := eng.Close(); err != nil {
		return fmt.Errorf("closing the engine for the handover: %w", err)
	}
	log.Info("handed over: every volume synced, the engine closed", "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// stop stops for good: every volume synced, the tree unmounted (waiting
// while volume files are open), the engine closed.
func stop(eng *cow.Engine, fsrv *fusefs.Server, sigs <-chan os.Signal, log *slog.Logger) error {
	log.Info("control socket closed; stopping flushes and hydration (they resume at the next start)")
	eng.StopBackground()
	log.Info("syncing volumes")
	if err := eng.SyncAll(); err != nil {
		log.Error("sync before shutdown failed", "err", err)
	}
	log.Info("unmounting")
	if err := unmountOrReport(fsrv, eng, sigs, log); err != nil {
		eng.Close()
		return err
	}
	log.Info("unmounted; closing the metadata store")
	return eng.Close()
}

// unmountOrReport unmounts the FUSE tree. While volume files are open (for
// example attached to loop devices) the mount is busy: it says which volumes
// hold it and retries until they are released, or until a second signal,
// after which it gives up loudly.
func unmountOrReport(fsrv *fusefs.Server, eng *cow.Engine, sigs <-chan os.Signal, log *slog.Logger) error {
	for {
		err := fsrv.Unmount()
		if err == nil {
			return nil
		}
		var open []string
		vols, _ := eng.DescribeVolumes(context.Background())
		for _, v := range vols {
			if v.OpenCount > 0 {
				open = append(open, v.ID)
			}
		}
		log.Error("mount is busy; detach the loop devices or close the files of these volumes, retrying",
			"open_volumes", strings.Join(open, ","), "err", err)
		select {
		case s := <-sigs:
			return fmt.Errorf("second %s while the mount is busy: exiting with the mount left in place (unmount it with `umount -l`): %w", s, err)
		case <-time.After(2 * time.Second):
		}
	}
}

// serverPIDFile, in the state directory, names the serving process (for
// an operator, and for tests that kill the server alone).
const serverPIDFile = "server.pid"

func writeServerPID(stateDir string, log *slog.Logger) {
	p := filepath.Join(stateDir, serverPIDFile)
	if err := os.WriteFile(p, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		log.Warn("recording the server's pid", "path", p, "err", err)
	}
}

// envHoldServer names a directory for an injection point of the tests: a
// server started with it creates <dir>/held and waits, before it opens the
// engine, until <dir>/release exists. It orders a test's steps around a
// server that is starting (never a sleep in the test).
const envHoldServer = "COWVOL_TEST_HOLD_SERVER"

func holdForTests() {
	dir := os.Getenv(envHoldServer)
	if dir == "" {
		return
	}
	os.WriteFile(filepath.Join(dir, "held"), nil, 0o600)
	for {
		if _, err := os.Stat(filepath.Join(dir, "release")); err == nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// openArchiveStore opens --archive-store, if given, into opts.
func openArchiveStore(ctx context.Context, cfg daemonConfig, opts *cow.Options, log *slog.Logger) error {
	opts.TierDay = cfg.tierDay
	if cfg.archiveStore == "" {
		return nil
	}
	st, err := openStore(ctx, cfg.archiveStore, log)
	if err != nil {
		return fmt.Errorf("--archive-store: %w", err)
	}
	opts.ArchiveStore = st
	return nil
}
