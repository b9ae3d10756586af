package metrics

import (
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cowvol/cowvol/fusefs"
)

// IO counts the requests served on volume files, per volume and kind
// (read, write, discard, fsync, flush): a fusefs.Observer.
type IO struct {
	requests *prometheus.CounterVec
	errors   *prometheus.CounterVec
	bytes    *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	inFlight prometheus.Gauge
}

var _ fusefs.Observer = (*IO)(nil)

// ioBuckets span a cached 4 KiB read (tens of µs) to a stalled fsync.
var ioBuckets = prometheus.ExponentialBuckets(25e-6, 4, 10) // 25µs .. 6.5s

func newIO() *IO {
	labels := []string{"volume", "op"}
	return &IO{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "volume", Name: "requests_total",
			Help: "Requests served on a volume's file, by op: read, write, discard, fsync, flush (close).",
		}, labels),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "volume", Name: "request_errors_total",
			Help: "Requests on a volume's file answered with an error, by op.",
		}, labels),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "volume", Name: "bytes_total",
			Help: "Bytes read, written and discarded on a volume's file, by op.",
		}, labels),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "volume", Name: "request_duration_seconds",
			Help:    "Time to serve a request on a volume's file, by op.",
			Buckets: ioBuckets,
		}, labels),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "fuse", Name: "requests_in_flight",
			Help: "FUSE requests on files (read, write, discard, fsync, flush) being served.",
		}),
	}
}

// Begin implements fusefs.Observer.
func (m *IO) Begin() { m.inFlight.Inc() }

// End implements fusefs.Observer.
func (m *IO) End(volume string, op fusefs.IOOp, bytes int64, took time.Duration, failed bool) {
	m.inFlight.Dec()
	if volume == "" {
		return
	}
	o := string(op)
	m.requests.WithLabelValues(volume, o).Inc()
	m.latency.WithLabelValues(volume, o).Observe(took.Seconds())
	if failed {
		m.errors.WithLabelValues(volume, o).Inc()
		return
	}
	if bytes > 0 {
		m.bytes.WithLabelValues(volume, o).Add(float64(bytes))
	}
}

// VolumeRemoved implements fusefs.Observer: a deleted volume's series go.
func (m *IO) VolumeRemoved(volume string) {
	for _, v := range []*prometheus.MetricVec{m.requests.MetricVec, m.errors.MetricVec, m.bytes.MetricVec, m.latency.MetricVec} {
		v.DeletePartialMatch(prometheus.Labels{"volume": volume})
	}
}

// Describe implements prometheus.Collector.
func (m *IO) Describe(ch chan<- *prometheus.Desc) {
	m.requests.Describe(ch)
	m.errors.Describe(ch)
	m.bytes.Describe(ch)
	m.latency.Describe(ch)
	m.inFlight.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *IO) Collect(ch chan<- prometheus.Metric) {
	m.requests.Collect(ch)
	m.errors.Collect(ch)
	m.bytes.Collect(ch)
	m.latency.Collect(ch)
	m.inFlight.Collect(ch)
}

func goVersion() string { return runtime.Version() }
