package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// TestMetricsAgreeWithWhatHappened runs fio on a volume, snapshots it,
// then scrapes /metrics (on the control socket, and on --metrics-listen)
// and parses it with Prometheus's text parser: the bytes written are what
// fio wrote (within a block), one snapshot completed, the snapshot data
// the flush reports is the snapshot's size as describe-snapshots reports
// it, and the bytes the store's puts wrote are what the store holds.
func TestMetricsAgreeWithWhatHappened(t *testing.T) {
	requirePrereqs(t)
	fio := tool(t, "fio")
	d := startDaemon(t, withDaemonArgs("--metrics-listen", "127.0.0.1:0"))
	vol := d.createVolume(t, "256MiB")
	before := scrapeSocket(t, d.Socket)
	written0 := sample(before, "cowvol_volume_bytes_total", "volume", vol.VolumeId, "op", "write")

	r := run(cmdTimeout, nil, fio, "--name=metrics", "--filename="+d.volumePath(vol.VolumeId), "--rw=randwrite",
		"--bs=4k", "--size=24M", "--direct=1", "--ioengine=psync", "--randrepeat=0", "--end_fsync=1", "--output-format=json")
	if r.Code != 0 {
		t.Fatalf("fio: %v", r)
	}
	var report struct {
		Jobs []struct {
			Write struct {
				IOBytes int64 `json:"io_bytes"`
			} `json:"write"`
		} `json:"jobs"`
	}
	if err := json.Unmarshal([]byte(r.Stdout[strings.Index(r.Stdout, "{"):]), &report); err != nil || len(report.Jobs) != 1 {
		t.Fatalf("fio's JSON report: %v\n%s", err, r.Stdout)
	}
	fioBytes := float64(report.Jobs[0].Write.IOBytes)

	snap := d.createSnapshot(t, vol.VolumeId)
	d.waitSnapshotCompleted(t, snap.SnapshotId)
	var described struct {
		Snapshots []struct{ FullSnapshotSizeInBytes int64 }
	}
	d.mustJSON(t, d.mustCLI(t, "describe-snapshots", "--snapshot-ids", snap.SnapshotId), &described)

	got := scrapeSocket(t, d.Socket)
	written := sample(got, "cowvol_volume_bytes_total", "volume", vol.VolumeId, "op", "write") - written0
	t.Logf("fio wrote %.0f bytes; cowvol_volume_bytes_total{op=write} grew by %.0f", fioBytes, written)
	if fioBytes == 0 || math.Abs(written-fioBytes) >= 4096 {
		t.Errorf("bytes written: metrics %.0f, fio %.0f: want them within a block", written, fioBytes)
	}
	if n := sample(got, "cowvol_volume_requests_total", "volume", vol.VolumeId, "op", "fsync"); n < 1 {
		t.Errorf("fsyncs counted: %v, want at least fio's end_fsync", n)
	}
	if n := histogramCount(got, "cowvol_volume_request_duration_seconds", "volume", vol.VolumeId, "op", "write"); n != uint64(sample(got, "cowvol_volume_requests_total", "volume", vol.VolumeId, "op", "write")) {
		t.Errorf("write latency observations %d, want one per write request", n)
	}
	if n := sample(got, "cowvol_snapshots", "state", "completed"); n != 1 {
		t.Errorf("cowvol_snapshots{state=completed} = %v, want 1", n)
	}
	if n := sample(got, "cowvol_snapshots", "state", "pending"); n != 0 {
		t.Errorf("cowvol_snapshots{state=pending} = %v, want 0", n)
	}
	size := described.Snapshots[0].FullSnapshotSizeInBytes
	if flushed := sample(got, "cowvol_snapshot_flushed_data_bytes_total"); size == 0 || flushed != float64(size) {
		t.Errorf("cowvol_snapshot_flushed_data_bytes_total = %v, want the snapshot's FullSnapshotSizeInBytes %d", flushed, size)
	}
	// What the flush stored (packs, segments, the manifest, the hold):
	// the puts' bytes of each kind of key are what the store holds under
	// it. Kinds that come and go (a lease, deleted at the flush's end)
	// leave nothing to compare with.
	compared := 0
	for _, m := range matching(got, "cowvol_snapshot_store_written_bytes_total", "store", "regional") {
		kind := labelValue(m, "kind")
		dir := filepath.Join(d.DataDir, "snapshots", kind)
		stored := int64(0)
		if _, err := os.Stat(dir); err == nil {
			stored = storeBytes(t, dir)
		}
		if stored == 0 {
			t.Logf("kind %s: %v bytes put, none left in the store", kind, value(m))
			continue
		}
		if value(m) != float64(stored) {
			t.Errorf("cowvol_snapshot_store_written_bytes_total{store=regional,kind=%s} = %v, want the %d bytes the store holds", kind, value(m), stored)
		}
		compared++
	}
	if compared < 2 {
		t.Errorf("the store's written bytes compared for %d kinds of key, want the flush's data and manifest at least", compared)
	}
	if len(matching(got, "cowvol_volume_dirty_bytes", "volume", vol.VolumeId)) != 1 {
		t.Errorf("no cowvol_volume_dirty_bytes for %s", vol.VolumeId)
	}
	// fio wrote a fresh volume before any snapshot: each block it touched
	// was redirected once (its first write), later writes went in place.
	if redirected, allocated := sample(got, "cowvol_volume_redirected_writes_total", "volume", vol.VolumeId),
		sample(got, "cowvol_volume_allocated_bytes", "volume", vol.VolumeId); redirected*64*1024 != allocated {
		t.Errorf("cowvol_volume_redirected_writes_total %.0f, want one per allocated 64 KiB block (%.0f bytes)", redirected, allocated)
	}
	if sample(got, "cowvol_volume_allocated_bytes", "volume", vol.VolumeId) <= 0 ||
		sample(got, "cowvol_data_dir_fs_size_bytes") <= 0 || len(got["cowvol_build_info"].GetMetric()) != 1 {
		t.Errorf("space used, data dir size or build info missing")
	}

	// The same metrics over plain HTTP (--metrics-listen).
	addr := regexp.MustCompile(`msg="serving metrics" .*addr=(\S+)`).FindStringSubmatch(d.output())
	if addr == nil {
		t.Fatalf("no \"serving metrics\" line in the daemon's log")
	}
	viaTCP := scrape(t, http.DefaultClient, "http://"+addr[1]+"/metrics")
	if sample(viaTCP, "cowvol_snapshots", "state", "completed") != 1 {
		t.Errorf("--metrics-listen: cowvol_snapshots{state=completed} != 1")
	}
}

// scrapeSocket scrapes /metrics on the daemon's control socket.
func scrapeSocket(t *testing.T, socket string) map[string]*dto.MetricFamily {
	t.Helper()
	c := &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		}}}
	return scrape(t, c, "http://cowvol/metrics")
}

func scrape(t *testing.T, c *http.Client, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, b)
	}
	var p expfmt.TextParser
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse %s: %v", url, err)
	}
	return fams
}

// matching returns the metrics of family name whose labels include the
// label pairs given.
func matching(fams map[string]*dto.MetricFamily, name string, labels ...string) []*dto.Metric {
	var out []*dto.Metric
	for _, m := range fams[name].GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		ok := true
		for i := 0; i+1 < len(labels); i += 2 {
			ok = ok && have[labels[i]] == labels[i+1]
		}
		if ok {
			out = append(out, m)
		}
	}
	return out
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return math.NaN()
}

// sample is the value of the one metric of family name with labels; 0
// when there is none.
func sample(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	ms := matching(fams, name, labels...)
	if len(ms) > 1 {
		panic(fmt.Sprintf("%s%v: %d series", name, labels, len(ms)))
	}
	if len(ms) == 0 {
		return 0
	}
	return value(ms[0])
}

func histogramCount(fams map[string]*dto.MetricFamily, name string, labels ...string) uint64 {
	ms := matching(fams, name, labels...)
	if len(ms) != 1 || ms[0].Histogram == nil {
		return 0
	}
	return ms[0].Histogram.GetSampleCount()
}

// storeBytes is the size of every object file under a file:// store.
func storeBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		n += info.Size()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
