package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const namespace = "cowvol"

// Metrics is the daemon's registry and the instruments that code on the
// request paths updates.
type Metrics struct {
	reg *prometheus.Registry
	// IO observes the requests on volume files (fusefs.Config.Observer).
	IO *IO
	// stores are the snapshot store instruments (WrapStore), probe
	// checks at each scrape that the stores answer.
	stores *storeMetrics
	probe  *storeProbe
	gc     *gcMetrics
}

// New makes a registry with the Go runtime's and the process's metrics,
// cowvol_build_info{version,revision,goversion} and the request
// instruments; version and revision are the daemon's (cowvol --version).
func New(version, revision string) *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfo(version, revision),
	)
	m := &Metrics{reg: reg, IO: newIO(), stores: newStoreMetrics(), probe: newStoreProbe(), gc: newGCMetrics()}
	reg.MustRegister(m.IO, m.stores, m.probe, m.gc)
	return m
}

// Register adds a collector (the engine's, see NewEngineCollector).
func (m *Metrics) Register(c prometheus.Collector) error { return m.reg.Register(c) }

// Gatherer is the registry, for tests and other exporters.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.reg }

// Handler serves the metrics in Prometheus's text format (or OpenMetrics,
// when the scraper asks for it).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{EnableOpenMetrics: true})
}

func buildInfo(version, revision string) prometheus.Collector {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace, Name: "build_info",
		Help: "The daemon's build: module version, VCS revision and Go version (always 1).",
	}, []string{"version", "revision", "goversion"})
	g.WithLabelValues(version, revision, goVersion()).Set(1)
	return g
}
