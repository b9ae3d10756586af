package metrics

import (
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
)

// DiskCollector reports the data dir's file system (size, free space) and
// the metadata store's files (Badger's LSM tables and value log), read at
// scrape time.
type DiskCollector struct {
	dataDir, metaDir             string
	size, free, avail, metaBytes *prometheus.Desc
}

// NewDiskCollector reports the file system of dataDir and the metadata
// store in metaDir.
func NewDiskCollector(dataDir, metaDir string) *DiskCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(namespace+"_"+name, help, labels, nil)
	}
	return &DiskCollector{
		dataDir: dataDir, metaDir: metaDir,
		size:      d("data_dir_fs_size_bytes", "Size of the data dir's file system."),
		free:      d("data_dir_fs_free_bytes", "Free space on the data dir's file system, root's reserve included."),
		avail:     d("data_dir_fs_avail_bytes", "Free space on the data dir's file system that an unprivileged user may use."),
		metaBytes: d("metadata_bytes", "Size of the metadata store's files (Badger), by kind: lsm (tables), vlog (value log), other.", "kind"),
	}
}

// Describe implements prometheus.Collector.
func (c *DiskCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.size
	ch <- c.free
	ch <- c.avail
	ch <- c.metaBytes
}

// Collect implements prometheus.Collector.
func (c *DiskCollector) Collect(ch chan<- prometheus.Metric) {
	var st unix.Statfs_t
	if err := unix.Statfs(c.dataDir, &st); err == nil {
		bs := float64(st.Bsize)
		ch <- prometheus.MustNewConstMetric(c.size, prometheus.GaugeValue, float64(st.Blocks)*bs)
		ch <- prometheus.MustNewConstMetric(c.free, prometheus.GaugeValue, float64(st.Bfree)*bs)
		ch <- prometheus.MustNewConstMetric(c.avail, prometheus.GaugeValue, float64(st.Bavail)*bs)
	}
	sizes := map[string]int64{"lsm": 0, "vlog": 0, "other": 0}
	filepath.WalkDir(c.metaDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		switch {
		case strings.HasSuffix(path, ".sst"):
			sizes["lsm"] += info.Size()
		case strings.HasSuffix(path, ".vlog"):
			sizes["vlog"] += info.Size()
		default:
			sizes["other"] += info.Size()
		}
		return nil
	})
	for kind, n := range sizes {
		ch <- prometheus.MustNewConstMetric(c.metaBytes, prometheus.GaugeValue, float64(n), kind)
	}
}
