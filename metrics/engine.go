package metrics

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cowvol/cowvol/cow"
)

// Engine is what the engine collector reads at scrape time: the engine's
// query methods.
type Engine interface {
	DescribeVolumes(ctx context.Context) ([]cow.VolumeInfo, error)
	DescribeSnapshots(ctx context.Context) ([]cow.SnapshotInfo, error)
}

// scrapeTimeout bounds the engine's queries during one scrape.
const scrapeTimeout = 10 * time.Second

// The states reported with a zero when no volume or snapshot is in them,
// so that alerts on them see a series.
var (
	volumeStates   = []cow.VolumeState{cow.VolumeAvailable, cow.VolumeInUse, cow.VolumeDeleting, cow.VolumeError}
	snapshotStates = []cow.SnapshotState{cow.SnapshotPending, cow.SnapshotCompleted, cow.SnapshotError}
)

// EngineCollector reports the state of volumes and snapshots, read from
// the engine at each scrape, and observes each snapshot's flush (start to
// completion) once, when a scrape first sees it completed or failed.
type EngineCollector struct {
	eng Engine
	log *slog.Logger

	volumes, snapshots, volSize, volAllocated, volDirty, volOpen, volImpaired, volHydrating, volHydration, volRedirects,
	snapProgress, snapPendingSeconds, up *prometheus.Desc

	flushSeconds *prometheus.HistogramVec
	flushBytes   *prometheus.CounterVec
	mu           sync.Mutex
	ended        map[string]bool // snapshots whose flush has been observed
	since        time.Time       // snapshots started before it are not observed
}

// NewEngineCollector reports eng's volumes and snapshots.
func NewEngineCollector(eng Engine, log *slog.Logger) *EngineCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(namespace+"_"+name, help, labels, nil)
	}
	return &EngineCollector{
		eng: eng, log: log, ended: map[string]bool{}, since: time.Now(),
		up:           d("engine_up", "Whether the engine answered this scrape's queries (1) or not (0)."),
		volumes:      d("volumes", "Volumes by state.", "state"),
		snapshots:    d("snapshots", "Snapshots by state (pending: being flushed to the store).", "state"),
		volSize:      d("volume_size_bytes", "A volume's size.", "volume"),
		volAllocated: d("volume_allocated_bytes", "Block data a volume holds in the data dir: the space it uses.", "volume"),
		volDirty:     d("volume_dirty_bytes", "Blocks written to a volume whose map entries are not yet synced, in bytes (fsync or the sync interval makes them durable).", "volume"),
		volOpen:      d("volume_open_handles", "Open handles on a volume's file (1 or more: attached).", "volume"),
		volImpaired:  d("volume_impaired", "1 when a volume is impaired: blocks of the snapshot it was restored from cannot be read.", "volume"),
		volHydrating: d("volume_hydrating", "1 while some of a restored volume's blocks are still read from its snapshot.", "volume"),
		volHydration: d("volume_hydration_progress_ratio",
			"A hydrating volume's progress, 0 to 1: the snapshot's segments its running hydration pass has fetched.", "volume"),
		volRedirects: d("volume_redirected_writes_total",
			"Writes that went to a fresh slot since the server started: a block's first write in a generation (copy-on-write after a snapshot).", "volume"),
		snapProgress: d("snapshot_progress_ratio", "A pending snapshot's progress, 0 to 1.", "snapshot", "volume"),
		snapPendingSeconds: d("snapshot_pending_seconds",
			"How long a pending snapshot has been flushing (for alerts on a flush stuck retrying).", "snapshot", "volume"),
		flushSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "snapshot", Name: "flush_duration_seconds",
			Help:    "Time from a snapshot's creation to its end (completed or error), for the snapshots created while this server ran.",
			Buckets: prometheus.ExponentialBuckets(0.1, 4, 10), // 0.1s .. 7h
		}, []string{"outcome"}),
		flushBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "snapshot", Name: "flushed_data_bytes_total",
			Help: "Non-zero data of the snapshots created and completed while this server ran (their DataBytes, EC2's fullSnapshotSizeInBytes).",
		}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *EngineCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.up, c.volumes, c.snapshots, c.volSize, c.volAllocated, c.volDirty, c.volOpen,
		c.volImpaired, c.volHydrating, c.volHydration, c.volRedirects, c.snapProgress, c.snapPendingSeconds} {
		ch <- d
	}
	c.flushSeconds.Describe(ch)
	c.flushBytes.Describe(ch)
}

// Collect implements prometheus.Collector.
func (c *EngineCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	vols, verr := c.eng.DescribeVolumes(ctx)
	snaps, serr := c.eng.DescribeSnapshots(ctx)
	up := 1.0
	if verr != nil || serr != nil {
		up = 0
		c.log.Warn("metrics: the engine did not answer", "volumes_err", verr, "snapshots_err", serr)
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, up)
	if verr == nil {
		c.collectVolumes(ch, vols)
	}
	if serr == nil {
		c.collectSnapshots(ch, snaps)
	}
	c.flushSeconds.Collect(ch)
	c.flushBytes.Collect(ch)
}

func (c *EngineCollector) collectVolumes(ch chan<- prometheus.Metric, vols []cow.VolumeInfo) {
	byState := map[cow.VolumeState]int{}
	for _, v := range vols {
		byState[v.State]++
		gauge := func(d *prometheus.Desc, val float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, val, v.ID)
		}
		gauge(c.volSize, float64(v.Size))
		gauge(c.volAllocated, float64(v.AllocatedBytes))
		gauge(c.volDirty, float64(v.DirtyBlocks)*float64(v.BlockSize))
		gauge(c.volOpen, float64(v.OpenCount))
		gauge(c.volImpaired, boolValue(v.Status == cow.VolumeStatusImpaired))
		gauge(c.volHydrating, boolValue(v.Hydrating))
		if v.Hydrating {
			gauge(c.volHydration, ratio(v.HydratedSegments, v.HydrationSegments))
		}
		ch <- prometheus.MustNewConstMetric(c.volRedirects, prometheus.CounterValue, float64(v.Redirects), v.ID)
	}
	for _, s := range volumeStates {
		ch <- prometheus.MustNewConstMetric(c.volumes, prometheus.GaugeValue, float64(byState[s]), string(s))
	}
}

func (c *EngineCollector) collectSnapshots(ch chan<- prometheus.Metric, snaps []cow.SnapshotInfo) {
	byState := map[cow.SnapshotState]int{}
	now := time.Now()
	for _, s := range snaps {
		byState[s.State]++
		if s.State == cow.SnapshotPending {
			ch <- prometheus.MustNewConstMetric(c.snapProgress, prometheus.GaugeValue, float64(s.Progress)/100, s.ID, s.VolumeID)
			ch <- prometheus.MustNewConstMetric(c.snapPendingSeconds, prometheus.GaugeValue, now.Sub(s.StartTime).Seconds(), s.ID, s.VolumeID)
		}
	}
	for _, s := range snapshotStates {
		ch <- prometheus.MustNewConstMetric(c.snapshots, prometheus.GaugeValue, float64(byState[s]), string(s))
	}
	c.observeEnded(snaps, now)
}

// observeEnded observes the flushes that ended since the last scrape, of
// the snapshots created since the collector was made (the server started).
func (c *EngineCollector) observeEnded(snaps []cow.SnapshotInfo, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	present := make(map[string]bool, len(snaps))
	for _, s := range snaps {
		present[s.ID] = true
		if s.State == cow.SnapshotPending || c.ended[s.ID] {
			continue
		}
		c.ended[s.ID] = true
		if s.StartTime.Before(c.since) {
			continue
		}
		end := s.CompletionTime
		if end.IsZero() {
			end = now
		}
		c.flushSeconds.WithLabelValues(string(s.State)).Observe(end.Sub(s.StartTime).Seconds())
		if s.State == cow.SnapshotCompleted {
			c.flushBytes.WithLabelValues().Add(float64(s.DataBytes))
		}
	}
	for id := range c.ended {
		if !present[id] {
			delete(c.ended, id)
		}
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// ratio is done/total, 0 when total is 0.
func ratio(done, total int64) float64 {
	if total <= 0 {
		return 0
	}
	return float64(done) / float64(total)
}
