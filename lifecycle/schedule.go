package lifecycle

import (
	"hash/fnv"
	"time"
)

// maxCatchUp bounds the scheduled times a cron schedule steps over to
// find the latest one missed (a daemon down for longer than this many
// firings serves the last one it reached).
const maxCatchUp = 100000

// timing is a CreateRule made ready to compute times.
type timing struct {
	period time.Duration // interval rules: the interval
	anchor time.Time     // interval rules: a scheduled time
	cron   *cronSpec     // cron rules
}

// newTiming prepares a validated rule.
func newTiming(r *CreateRule) (timing, error) {
	if r == nil || (r.CronExpression == "" && r.Interval <= 0) {
		return timing{}, invalidf("CreateRule: no interval and no cron expression")
	}
	if r.CronExpression != "" {
		c, err := parseCron(r.CronExpression)
		return timing{cron: c}, err
	}
	unit := time.Hour
	if r.IntervalUnit == UnitMinutes {
		unit = time.Minute
	}
	anchor := time.Unix(0, 0).UTC()
	if len(r.Times) == 1 {
		if t, err := time.Parse("15:04", r.Times[0]); err == nil {
			anchor = anchor.Add(time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute)
		}
	}
	return timing{period: time.Duration(r.Interval) * unit, anchor: anchor}, nil
}

// next returns the first scheduled time after t (zero if none).
func (tm timing) next(t time.Time) time.Time {
	if tm.cron != nil {
		return tm.cron.next(t)
	}
	return tm.atOrBefore(t).Add(tm.period)
}

// atOrBefore returns, for an interval rule, the last scheduled time not
// after t.
func (tm timing) atOrBefore(t time.Time) time.Time {
	d := t.Sub(tm.anchor)
	k := d / tm.period
	if d < 0 && d%tm.period != 0 {
		k--
	}
	return tm.anchor.Add(k * tm.period)
}

// latestDue returns the last scheduled time after from and not after
// now, or the zero time if none is: a schedule that missed several runs
// (the daemon was down) serves only the latest.
func (tm timing) latestDue(from, now time.Time) time.Time {
	n := tm.next(from)
	if n.IsZero() || n.After(now) {
		return time.Time{}
	}
	if tm.cron == nil {
		return tm.atOrBefore(now)
	}
	for i := 0; i < maxCatchUp; i++ {
		m := tm.cron.next(n)
		if m.IsZero() || m.After(now) {
			break
		}
		n = m
	}
	return n
}

// spacing is about the time between runs after t: the jitter stays a
// fraction of it.
func (tm timing) spacing(t time.Time) time.Duration {
	if tm.cron == nil {
		return tm.period
	}
	a := tm.cron.next(t)
	b := tm.cron.next(a)
	if a.IsZero() || b.IsZero() {
		return MinInterval
	}
	return b.Sub(a)
}

// jitter returns how long after a scheduled time a volume's snapshot is
// taken: a fixed offset below limit drawn from the policy, the schedule
// and the volume, so that many volumes do not fork at once and the
// offsets are the same on every run (and in tests).
func jitter(policyID, schedule, volumeID string, limit time.Duration) time.Duration {
	if limit <= 0 {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(policyID))
	h.Write([]byte{0})
	h.Write([]byte(schedule))
	h.Write([]byte{0})
	h.Write([]byte(volumeID))
	return time.Duration(h.Sum64() % uint64(limit))
}

// jitterLimit is the bound of the jitter of a schedule whose runs are
// spacing apart: a tenth of it, at most max.
func jitterLimit(spacing, max time.Duration) time.Duration {
	return min(spacing/10, max)
}
