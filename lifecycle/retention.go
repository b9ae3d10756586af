package lifecycle

import (
	"slices"
	"strings"
	"time"
)

// made is a snapshot a schedule made, as retention sees it.
type made struct {
	ID       string
	VolumeID string
	Start    time.Time
	// Settled: completed or failed, so it may be deleted (a pending
	// snapshot is kept until it settles).
	Settled bool
}

// retainUntil returns when a snapshot taken at start expires under a
// rule of retention by age.
func retainUntil(rule *RetainRule, start time.Time) time.Time {
	n := rule.Interval
	switch rule.IntervalUnit {
	case "DAYS":
		return start.AddDate(0, 0, n)
	case "WEEKS":
		return start.AddDate(0, 0, 7*n)
	case "MONTHS":
		return start.AddDate(0, n, 0)
	case "YEARS":
		return start.AddDate(n, 0, 0)
	}
	return time.Time{}
}

// expired returns, oldest first, the snapshots of one volume and one
// schedule that rule no longer keeps at now: beyond the newest Count, or
// older than the retention interval. Pending snapshots are never returned
// (they count towards Count). keepLast keeps the newest whatever its age
// (the volume is gone: DLM keeps its last snapshot).
func expired(rule *RetainRule, snaps []made, now time.Time, keepLast bool) []made {
	if rule == nil {
		return nil
	}
	s := slices.Clone(snaps)
	slices.SortFunc(s, func(a, b made) int {
		if c := a.Start.Compare(b.Start); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	var out []made
	for i, m := range s {
		if !m.Settled {
			continue
		}
		newer := len(s) - 1 - i
		switch {
		case keepLast && newer == 0:
		case rule.Count > 0 && newer >= rule.Count:
			out = append(out, m)
		case rule.Count == 0 && !retainUntil(rule, m.Start).After(now):
			out = append(out, m)
		}
	}
	return out
}
