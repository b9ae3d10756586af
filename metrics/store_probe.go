package metrics

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cowvol/cowvol/cow/snapstore"
)

// probeTimeout bounds a scrape's check that a store answers.
const probeTimeout = 5 * time.Second

// probeKey is what the probe asks the store about: whether it exists
// matters not, only that the store answers.
const probeKey = "probe/cowvol-metrics"

// storeProbe reports, at each scrape, whether each snapshot store answers
// a request (an Exists of probeKey, sent to the store itself, not counted
// with the engine's requests).
type storeProbe struct {
	mu     sync.Mutex
	stores map[string]snapstore.Store

	up, took *prometheus.Desc
}

func newStoreProbe() *storeProbe {
	return &storeProbe{
		stores: map[string]snapstore.Store{},
		up: prometheus.NewDesc(namespace+"_snapshot_store_up",
			"Whether the snapshot store answered this scrape's probe (1) or not (0).", []string{"store"}, nil),
		took: prometheus.NewDesc(namespace+"_snapshot_store_probe_duration_seconds",
			"How long this scrape's probe of the snapshot store took.", []string{"store"}, nil),
	}
}

func (p *storeProbe) add(name string, st snapstore.Store) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stores[name] = st
}

// Describe implements prometheus.Collector.
func (p *storeProbe) Describe(ch chan<- *prometheus.Desc) {
	ch <- p.up
	ch <- p.took
}

// Collect implements prometheus.Collector.
func (p *storeProbe) Collect(ch chan<- prometheus.Metric) {
	p.mu.Lock()
	stores := make(map[string]snapstore.Store, len(p.stores))
	for n, st := range p.stores {
		stores[n] = st
	}
	p.mu.Unlock()
	for name, st := range stores {
		ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
		start := time.Now()
		_, err := st.Exists(ctx, probeKey)
		cancel()
		ch <- prometheus.MustNewConstMetric(p.up, prometheus.GaugeValue, boolValue(err == nil), name)
		ch <- prometheus.MustNewConstMetric(p.took, prometheus.GaugeValue, time.Since(start).Seconds(), name)
	}
}
