package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"

	"github.com/cowvol/cowvol/control"
)

const healthyMetrics = `cowvol_build_info{goversion="go1",revision="abc",version="v1"} 1
cowvol_engine_up 1
cowvol_data_dir_fs_size_bytes 1000
cowvol_data_dir_fs_avail_bytes 400
cowvol_snapshot_store_up{store="regional"} 1
cowvol_snapshot_store_probe_duration_seconds{store="regional"} 0.002
cowvol_volume_allocated_bytes{volume="vol-1"} 4096
cowvol_volume_open_handles{volume="vol-1"} 1
cowvol_volume_impaired{volume="vol-1"} 0
cowvol_volume_hydrating{volume="vol-1"} 0
cowvol_snapshot_progress_ratio{snapshot="snap-1",volume="vol-1"} 0.42
cowvol_snapshot_pending_seconds{snapshot="snap-1",volume="vol-1"} 3
cowvol_snapshots{state="error"} 0
`

func TestBuildStatus(t *testing.T) {
	vols := []control.Volume{{VolumeID: "vol-1", Status: "in-use", SizeBytes: 1 << 30}}
	tests := []struct {
		name         string
		replace      [2]string
		wantHealthy  bool
		wantProblems []string
	}{
		{"healthy", [2]string{}, true, nil},
		{"store down", [2]string{`cowvol_snapshot_store_up{store="regional"} 1`, `cowvol_snapshot_store_up{store="regional"} 0`},
			false, []string{"the regional snapshot store does not answer"}},
		{"data dir full", [2]string{"cowvol_data_dir_fs_avail_bytes 400", "cowvol_data_dir_fs_avail_bytes 50"},
			false, []string{"the data dir's file system is 95% full"}},
		{"impaired", [2]string{`cowvol_volume_impaired{volume="vol-1"} 0`, `cowvol_volume_impaired{volume="vol-1"} 1`},
			false, []string{"volume vol-1 is impaired"}},
		{"engine down", [2]string{"cowvol_engine_up 1", "cowvol_engine_up 0"},
			false, []string{"the engine did not answer"}},
		{"snapshot in error", [2]string{`cowvol_snapshots{state="error"} 0`, `cowvol_snapshots{state="error"} 2`},
			false, []string{"2 snapshots in state error"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := healthyMetrics
			if tt.replace[0] != "" {
				text = strings.Replace(text, tt.replace[0], tt.replace[1], 1)
			}
			var p expfmt.TextParser
			fams, err := p.TextToMetricFamilies(strings.NewReader(text))
			if err != nil {
				t.Fatal(err)
			}
			r := buildStatus(vols, metricSet(fams))
			if r.Healthy != tt.wantHealthy {
				t.Errorf("healthy %v, want %v (problems %q)", r.Healthy, tt.wantHealthy, r.Problems)
			}
			for _, w := range tt.wantProblems {
				if !strings.Contains(strings.Join(r.Problems, "\n"), w) {
					t.Errorf("problems %q lack %q", r.Problems, w)
				}
			}
			if len(r.Volumes) != 1 || !r.Volumes[0].Attached || r.Volumes[0].AllocatedBytes != 4096 {
				t.Errorf("volumes %+v", r.Volumes)
			}
			if len(r.PendingSnapshots) != 1 || r.PendingSnapshots[0].Progress != "42%" || r.PendingSnapshots[0].PendingSeconds != 3 {
				t.Errorf("pending snapshots %+v", r.PendingSnapshots)
			}
			var screen bytes.Buffer
			printStatus(&screen, "/run/cowvol/cowvol.sock", r)
			for _, w := range append([]string{"vol-1", "snap-1", "42%", "yes (1 open)"}, tt.wantProblems...) {
				if !strings.Contains(screen.String(), w) {
					t.Errorf("screen lacks %q:\n%s", w, screen.String())
				}
			}
		})
	}
}

func TestBytesIEC(t *testing.T) {
	tests := []struct {
		n    int64
		want string
	}{{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {20 << 20, "20.0 MiB"}, {3 << 40, "3.0 TiB"}}
	for _, tt := range tests {
		if got := bytesIEC(tt.n); got != tt.want {
			t.Errorf("bytesIEC(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}
