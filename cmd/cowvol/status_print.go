package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// printStatus writes r as the status screen.
func printStatus(w io.Writer, socket string, r statusReport) {
	health := "healthy"
	if !r.Healthy {
		health = fmt.Sprintf("%d PROBLEMS", len(r.Problems))
	}
	fmt.Fprintf(w, "cowvol daemon at %s: %s\n", socket, health)
	fmt.Fprintf(w, "  version:   %s\n", r.Version)
	if r.DataDir.SizeBytes > 0 {
		fmt.Fprintf(w, "  data dir:  %s free of %s (%.0f%% used)\n",
			bytesIEC(r.DataDir.AvailableBytes), bytesIEC(r.DataDir.SizeBytes), 100*r.DataDir.UsedRatio)
	}
	for _, s := range r.SnapshotStores {
		state := "reachable"
		if !s.Reachable {
			state = "NOT REACHABLE"
		}
		fmt.Fprintf(w, "  snapshot store %s: %s (probe %s)\n", s.Store, state, formatDuration(time.Duration(s.Seconds*float64(time.Second))))
	}
	if r.SnapshotsInError > 0 {
		fmt.Fprintf(w, "  snapshots in state error: %d\n", r.SnapshotsInError)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "VOLUME\tSTATE\tSIZE\tUSED\tATTACHED\tSTATUS\n")
	for _, v := range r.Volumes {
		attached := "no"
		if v.Attached {
			attached = fmt.Sprintf("yes (%d open)", v.OpenHandles)
		}
		st := v.Status
		if v.Hydrating {
			st += ", hydrating"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", v.VolumeID, v.State, bytesIEC(v.SizeBytes), bytesIEC(v.AllocatedBytes), attached, st)
	}
	if len(r.Volumes) == 0 {
		fmt.Fprintf(tw, "(none)\t\t\t\t\t\n")
	}
	tw.Flush()
	if len(r.PendingSnapshots) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
		fmt.Fprintf(tw, "PENDING SNAPSHOT\tVOLUME\tPROGRESS\tFOR\n")
		for _, s := range r.PendingSnapshots {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.SnapshotID, s.VolumeID, s.Progress,
				formatDuration(time.Duration(s.PendingSeconds*float64(time.Second))))
		}
		tw.Flush()
	}
	if len(r.Problems) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Problems:")
		for _, p := range r.Problems {
			fmt.Fprintf(w, "  - %s\n", p)
		}
	}
}

// bytesIEC is n in binary units, one decimal.
func bytesIEC(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}
