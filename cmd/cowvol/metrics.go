package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/cowvol/cowvol/cow"
	"github.com/cowvol/cowvol/cow/snapstore"
	"github.com/cowvol/cowvol/metrics"
)

// newMetrics makes the server's metrics, labelled with this build.
func newMetrics() *metrics.Metrics {
	ver, rev := "unknown", buildRevision
	if bi, ok := debug.ReadBuildInfo(); ok {
		ver = bi.Main.Version
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				rev = s.Value
			}
		}
	}
	return metrics.New(ver, rev)
}

// measuredStores wraps the engine's snapshot stores with m's counters,
// opening the default store (file://<data-dir>/snapshots, which the engine
// would open itself) so that it is counted too.
func measuredStores(m *metrics.Metrics, opts *cow.Options) error {
	if opts.SnapshotStore == nil {
		ds, err := snapstore.OpenDir(filepath.Join(opts.DataDir, "snapshots"))
		if err != nil {
			return err
		}
		opts.SnapshotStore = ds
	}
	opts.SnapshotStore = m.WrapStore(opts.SnapshotStore, "regional")
	opts.LocalSnapshotStore = m.WrapStore(opts.LocalSnapshotStore, "local")
	return nil
}

// registerEngineMetrics adds the collectors that read eng and the data
// dir at scrape time.
func registerEngineMetrics(m *metrics.Metrics, eng *cow.Engine, dataDir string, log *slog.Logger) error {
	if err := m.Register(metrics.NewEngineCollector(eng, log)); err != nil {
		return err
	}
	return m.Register(metrics.NewDiskCollector(dataDir, filepath.Join(dataDir, "meta")))
}

// defaultMetricsHost is where --metrics-listen binds when its address
// names a port only.
const defaultMetricsHost = "127.0.0.1"

// metricsAddr is --metrics-listen's address, on loopback unless it names a
// host.
func metricsAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		// A bare port: "9477".
		if _, perr := net.LookupPort("tcp", addr); perr != nil {
			return "", errors.New("--metrics-listen " + addr + ": want HOST:PORT, :PORT or PORT")
		}
		host, port = "", addr
	}
	if host == "" {
		host = defaultMetricsHost
	}
	return net.JoinHostPort(host, port), nil
}

// serveMetrics serves /metrics over plain HTTP on addr (--metrics-listen)
// until the returned stop is called. A listener that cannot be opened is
// logged, not fatal: the metrics stay on the control socket.
func serveMetrics(addr string, h http.Handler, log *slog.Logger) (stop func()) {
	if addr == "" {
		return func() {}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Error("--metrics-listen: cannot listen; metrics are on the control socket only", "addr", addr, "err", err)
		return func() {}
	}
	if a, ok := ln.Addr().(*net.TCPAddr); ok && !a.IP.IsLoopback() {
		log.Warn("--metrics-listen is not on loopback: anyone who reaches it reads the volume and snapshot IDs", "addr", ln.Addr().String())
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("--metrics-listen stopped", "err", err)
		}
	}()
	log.Info("serving metrics", "addr", ln.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	}
}
