package metrics

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cowvol/cowvol/cow/snapstore"
)

// storeMetrics count the requests to the snapshot stores.
type storeMetrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	written  *prometheus.CounterVec
	read     *prometheus.CounterVec
}

// storeBuckets span a local file (sub-ms) to a slow object store.
var storeBuckets = prometheus.ExponentialBuckets(0.0005, 4, 9) // 0.5ms .. 33s

func newStoreMetrics() *storeMetrics {
	return &storeMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "snapshot_store", Name: "requests_total",
			Help: "Requests to a snapshot store (regional, local) by op (put, get, get_range, exists, list, delete) and outcome (ok, not_found, full, timeout, canceled, error).",
		}, []string{"store", "op", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "snapshot_store", Name: "request_duration_seconds",
			Help:    "Time a snapshot store request took, by op.",
			Buckets: storeBuckets,
		}, []string{"store", "op"}),
		written: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "snapshot_store", Name: "written_bytes_total",
			Help: "Bytes stored by successful puts (what flushes upload), by the key's first segment (kind).",
		}, []string{"store", "kind"}),
		read: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "snapshot_store", Name: "read_bytes_total",
			Help: "Bytes read by gets (restores, hydration, snapshot reads).",
		}, []string{"store"}),
	}
}

func (m *storeMetrics) Describe(ch chan<- *prometheus.Desc) {
	m.requests.Describe(ch)
	m.latency.Describe(ch)
	m.written.Describe(ch)
	m.read.Describe(ch)
}

func (m *storeMetrics) Collect(ch chan<- prometheus.Metric) {
	m.requests.Collect(ch)
	m.latency.Collect(ch)
	m.written.Collect(ch)
	m.read.Collect(ch)
}

// WrapStore returns st counting its requests as store name ("regional",
// "local"). The result unwraps to st (snapstore.Underlying).
func (m *Metrics) WrapStore(st snapstore.Store, name string) snapstore.Store {
	if st == nil {
		return nil
	}
	m.probe.add(name, st)
	return &measuredStore{Store: st, name: name, m: m.stores, gc: m.gc}
}

// measuredStore is a snapstore.Store whose requests are counted.
type measuredStore struct {
	snapstore.Store
	name string
	m    *storeMetrics
	gc   *gcMetrics
}

var _ snapstore.Wrapper = (*measuredStore)(nil)

func (s *measuredStore) Unwrap() snapstore.Store { return s.Store }

// observe records one request that started at start and ended with err.
func (s *measuredStore) observe(op string, start time.Time, err error) {
	s.m.latency.WithLabelValues(s.name, op).Observe(time.Since(start).Seconds())
	s.m.requests.WithLabelValues(s.name, op, outcome(err)).Inc()
}

// outcome names how a store request ended.
func outcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, snapstore.ErrNotFound):
		return "not_found"
	case errors.Is(err, snapstore.ErrStoreFull):
		return "full"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "error"
}

// keyKind is a key's first segment ("snapshots", "leases", ...): bounded,
// unlike keys.
func keyKind(key string) string {
	kind, _, _ := strings.Cut(key, "/")
	return kind
}

func (s *measuredStore) Put(ctx context.Context, key string, data []byte) error {
	start := time.Now()
	err := s.Store.Put(ctx, key, data)
	s.observe("put", start, err)
	s.noteGCRound(key)
	if err == nil {
		s.m.written.WithLabelValues(s.name, keyKind(key)).Add(float64(len(data)))
	}
	return err
}

func (s *measuredStore) Get(ctx context.Context, key string) ([]byte, error) {
	start := time.Now()
	b, err := s.Store.Get(ctx, key)
	s.observe("get", start, err)
	s.m.read.WithLabelValues(s.name).Add(float64(len(b)))
	return b, err
}

func (s *measuredStore) GetRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	start := time.Now()
	b, err := s.Store.GetRange(ctx, key, off, n)
	s.observe("get_range", start, err)
	s.m.read.WithLabelValues(s.name).Add(float64(len(b)))
	return b, err
}

func (s *measuredStore) Exists(ctx context.Context, key string) (bool, error) {
	start := time.Now()
	ok, err := s.Store.Exists(ctx, key)
	s.observe("exists", start, err)
	return ok, err
}

func (s *measuredStore) List(ctx context.Context, prefix string, fn func(snapstore.ObjectInfo) error) error {
	start := time.Now()
	err := s.Store.List(ctx, prefix, fn)
	s.observe("list", start, err)
	return err
}

func (s *measuredStore) Delete(ctx context.Context, key string) error {
	start := time.Now()
	var err error
	if kind := keyKind(key); gcDataKinds[kind] {
		err = s.deleteData(ctx, key, kind)
	} else {
		err = s.Store.Delete(ctx, key)
	}
	s.observe("delete", start, err)
	return err
}
