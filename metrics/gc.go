package metrics

import (
	"context"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cowvol/cowvol/cow/snapstore"
)

// The snapshot store's garbage collection, seen from the store decorator:
// the collector starts every round by putting a clock probe under
// gcClockPrefix, and it is the only deleter of data objects (segments,
// packs, chunks: a deleted snapshot drops its manifest and leaves its data
// to the collector). The size of a data object is looked up (a List of
// its key) just before it is deleted, so that the bytes freed are known;
// that is one more request per object deleted, and deletions are rare.
const gcClockPrefix = "gc-clock/"

// gcDataKinds are the kinds of key that hold snapshot data.
var gcDataKinds = map[string]bool{"segments": true, "packs": true, "chunks": true}

// gcMetrics count the garbage collector's rounds and what they freed.
type gcMetrics struct {
	runs    *prometheus.CounterVec
	deleted *prometheus.CounterVec
	freed   *prometheus.CounterVec
}

func newGCMetrics() *gcMetrics {
	return &gcMetrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "gc", Name: "runs_total",
			Help: "Garbage collection rounds started on a snapshot store.",
		}, []string{"store"}),
		deleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "gc", Name: "deleted_objects_total",
			Help: "Snapshot data objects deleted by garbage collection, by kind (segments, packs, chunks).",
		}, []string{"store", "kind"}),
		freed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "gc", Name: "freed_bytes_total",
			Help: "Bytes of the snapshot data objects garbage collection deleted.",
		}, []string{"store"}),
	}
}

func (m *gcMetrics) Describe(ch chan<- *prometheus.Desc) {
	m.runs.Describe(ch)
	m.deleted.Describe(ch)
	m.freed.Describe(ch)
}

func (m *gcMetrics) Collect(ch chan<- prometheus.Metric) {
	m.runs.Collect(ch)
	m.deleted.Collect(ch)
	m.freed.Collect(ch)
}

// sizeOf is the size of the object under key, 0 when it cannot be told.
func sizeOf(ctx context.Context, st snapstore.Store, key string) int64 {
	var size int64
	st.List(ctx, key, func(o snapstore.ObjectInfo) error {
		if o.Key == key {
			size = o.Size
		}
		return nil
	})
	return size
}

// deleteData deletes a data object, counting it and its bytes.
func (s *measuredStore) deleteData(ctx context.Context, key, kind string) error {
	size := sizeOf(ctx, s.Store, key)
	err := s.Store.Delete(ctx, key)
	if err == nil {
		s.gc.deleted.WithLabelValues(s.name, kind).Inc()
		s.gc.freed.WithLabelValues(s.name).Add(float64(size))
	}
	return err
}

// noteGCRound counts a round when key is the collector's clock probe.
func (s *measuredStore) noteGCRound(key string) {
	if strings.HasPrefix(key, gcClockPrefix) {
		s.gc.runs.WithLabelValues(s.name).Inc()
	}
}
