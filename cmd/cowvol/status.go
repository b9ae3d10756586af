package main

import (
	"bytes"
	"fmt"
	"slices"
	"sort"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/urfave/cli/v2"

	"github.com/cowvol/cowvol/control"
)

// `cowvol status` puts the daemon's health on one screen: its volumes
// (state, size, space used, whether attached, health), the snapshots
// being flushed with their progress, whether each snapshot store answers,
// the data dir's free space. It reads DescribeVolumes and the daemon's
// /metrics (the store probe, the data dir, per-volume figures), so it
// needs read-only access at least.

// dataDirFullRatio is when the data dir counts as a problem (as the alert
// rule in contrib/prometheus says).
const dataDirFullRatio = 0.90

func statusCommand() *cli.Command {
	return &cli.Command{
		Name: "status",
		Usage: "the daemon's health on one screen: volumes, attachments, snapshots being flushed, the snapshot store, " +
			"the data dir's free space (--output json: as JSON); exits 1 when something is wrong",
		Action: status,
	}
}

// statusReport is what `cowvol status --output json` prints.
type statusReport struct {
	Healthy          bool                `json:"Healthy"`
	Problems         []string            `json:"Problems"`
	Version          string              `json:"Version"`
	DataDir          dataDirStatus       `json:"DataDir"`
	SnapshotStores   []storeStatus       `json:"SnapshotStores"`
	Volumes          []volumeStatus      `json:"Volumes"`
	PendingSnapshots []pendingSnapStatus `json:"PendingSnapshots"`
	SnapshotsInError int                 `json:"SnapshotsInError"`
}

type dataDirStatus struct {
	SizeBytes      int64   `json:"SizeBytes"`
	AvailableBytes int64   `json:"AvailableBytes"`
	UsedRatio      float64 `json:"UsedRatio"`
}

type storeStatus struct {
	Store     string  `json:"Store"`
	Reachable bool    `json:"Reachable"`
	Seconds   float64 `json:"ProbeSeconds"`
}

type volumeStatus struct {
	VolumeID       string `json:"VolumeId"`
	State          string `json:"State"`
	SizeBytes      int64  `json:"SizeBytes"`
	AllocatedBytes int64  `json:"AllocatedBytes"`
	Attached       bool   `json:"Attached"`
	OpenHandles    int    `json:"OpenHandles"`
	Status         string `json:"Status"`
	Hydrating      bool   `json:"Hydrating"`
}

type pendingSnapStatus struct {
	SnapshotID     string  `json:"SnapshotId"`
	VolumeID       string  `json:"VolumeId"`
	Progress       string  `json:"Progress"`
	PendingSeconds float64 `json:"PendingSeconds"`
}

func status(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	cl := client(c)
	defer cl.Close()
	vols, err := cl.DescribeVolumes(c.Context, control.DescribeVolumesInput{})
	if err != nil {
		return opError("DescribeVolumes", err)
	}
	text, err := cl.Metrics(c.Context)
	if err != nil {
		return opError("GetMetrics", err)
	}
	var parser expfmt.TextParser
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(text))
	if err != nil {
		return fmt.Errorf("the daemon's metrics: %w", err)
	}
	r := buildStatus(vols.Volumes, metricSet(fams))
	if outputExplicit(c) {
		if err := printResult(c, r); err != nil {
			return err
		}
	} else {
		printStatus(c.App.Writer, globalString(c, "socket"), r)
	}
	if !r.Healthy {
		return cli.Exit("", exitFailure)
	}
	return nil
}

// outputExplicit reports whether --output was given (or COWVOL_OUTPUT
// set): then status prints as it says, else the screen.
func outputExplicit(c *cli.Context) bool {
	for _, cc := range c.Lineage() {
		if slices.Contains(cc.LocalFlagNames(), "output") {
			return true
		}
	}
	return false
}

// buildStatus puts the volumes and the metrics together and finds the
// problems.
func buildStatus(vols []control.Volume, m metricSet) statusReport {
	r := statusReport{Problems: []string{}, Volumes: []volumeStatus{}, PendingSnapshots: []pendingSnapStatus{}, SnapshotStores: []storeStatus{}}
	if bi := m.series("cowvol_build_info"); len(bi) > 0 {
		r.Version = bi[0].labels["version"] + " revision " + bi[0].labels["revision"]
	}
	if up, ok := m.value("cowvol_engine_up"); !ok || up != 1 {
		r.Problems = append(r.Problems, "the engine did not answer the metrics' queries of its volumes and snapshots")
	}
	size, _ := m.value("cowvol_data_dir_fs_size_bytes")
	avail, _ := m.value("cowvol_data_dir_fs_avail_bytes")
	r.DataDir = dataDirStatus{SizeBytes: int64(size), AvailableBytes: int64(avail)}
	if size > 0 {
		r.DataDir.UsedRatio = 1 - avail/size
		if r.DataDir.UsedRatio > dataDirFullRatio {
			r.Problems = append(r.Problems, fmt.Sprintf("the data dir's file system is %.0f%% full", 100*r.DataDir.UsedRatio))
		}
	}
	for _, s := range m.series("cowvol_snapshot_store_up") {
		st := storeStatus{Store: s.labels["store"], Reachable: s.v == 1}
		st.Seconds, _ = m.value("cowvol_snapshot_store_probe_duration_seconds", "store", st.Store)
		if !st.Reachable {
			r.Problems = append(r.Problems, "the "+st.Store+" snapshot store does not answer")
		}
		r.SnapshotStores = append(r.SnapshotStores, st)
	}
	for _, v := range vols {
		r.Volumes = append(r.Volumes, volumeOf(v, m))
		if r.Volumes[len(r.Volumes)-1].Status != "ok" {
			r.Problems = append(r.Problems, "volume "+v.VolumeID+" is impaired (cowvol describe-volume-status --volume-ids "+v.VolumeID+")")
		}
	}
	for _, s := range m.series("cowvol_snapshot_progress_ratio") {
		p := pendingSnapStatus{SnapshotID: s.labels["snapshot"], VolumeID: s.labels["volume"], Progress: fmt.Sprintf("%.0f%%", 100*s.v)}
		p.PendingSeconds, _ = m.value("cowvol_snapshot_pending_seconds", "snapshot", p.SnapshotID)
		r.PendingSnapshots = append(r.PendingSnapshots, p)
	}
	sort.Slice(r.PendingSnapshots, func(i, j int) bool { return r.PendingSnapshots[i].SnapshotID < r.PendingSnapshots[j].SnapshotID })
	errs, _ := m.value("cowvol_snapshots", "state", "error")
	if r.SnapshotsInError = int(errs); r.SnapshotsInError > 0 {
		r.Problems = append(r.Problems, fmt.Sprintf("%d snapshots in state error (cowvol describe-snapshots --filter status=error)", r.SnapshotsInError))
	}
	r.Healthy = len(r.Problems) == 0
	return r
}

func volumeOf(v control.Volume, m metricSet) volumeStatus {
	id := v.VolumeID
	vs := volumeStatus{VolumeID: id, State: v.Status, SizeBytes: v.SizeBytes, Status: "ok"}
	alloc, _ := m.value("cowvol_volume_allocated_bytes", "volume", id)
	open, _ := m.value("cowvol_volume_open_handles", "volume", id)
	vs.AllocatedBytes, vs.OpenHandles, vs.Attached = int64(alloc), int(open), open > 0
	if imp, _ := m.value("cowvol_volume_impaired", "volume", id); imp == 1 {
		vs.Status = "impaired"
	}
	hyd, _ := m.value("cowvol_volume_hydrating", "volume", id)
	vs.Hydrating = hyd == 1
	return vs
}

// metricSet is parsed metrics, looked up by name and labels.
type metricSet map[string]*dto.MetricFamily

type series struct {
	labels map[string]string
	v      float64
}

func (m metricSet) series(name string) []series {
	var out []series
	for _, mt := range m[name].GetMetric() {
		s := series{labels: map[string]string{}}
		for _, l := range mt.GetLabel() {
			s.labels[l.GetName()] = l.GetValue()
		}
		switch {
		case mt.Gauge != nil:
			s.v = mt.Gauge.GetValue()
		case mt.Counter != nil:
			s.v = mt.Counter.GetValue()
		case mt.Untyped != nil:
			s.v = mt.Untyped.GetValue()
		}
		out = append(out, s)
	}
	return out
}

// value is the first series of name with the label pairs given.
func (m metricSet) value(name string, labels ...string) (float64, bool) {
next:
	for _, s := range m.series(name) {
		for i := 0; i+1 < len(labels); i += 2 {
			if s.labels[labels[i]] != labels[i+1] {
				continue next
			}
		}
		return s.v, true
	}
	return 0, false
}

// formatDuration rounds d for the screen.
func formatDuration(d time.Duration) string {
	switch {
	case d >= time.Minute:
		return d.Round(time.Second).String()
	case d >= time.Second:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Microsecond).String()
}
