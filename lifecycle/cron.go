package lifecycle

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Cron expressions as EventBridge (and so DLM) has them:
// cron(Minutes Hours Day-of-month Month Day-of-week Year), in UTC. A field
// is *, ?, a value, a range a-b, a step x/n (x a value, a range or *), or
// a list of these; months may be JAN-DEC and days of the week SUN-SAT
// (1-7, Sunday 1). One of day-of-month and day-of-week must be ?. The
// special values L, W and # are not supported.

// errCron is wrapped by every error of a malformed cron expression.
var errCron = errors.New("invalid cron expression")

// cronSpec is a parsed cron expression: for each field, the values it
// allows.
type cronSpec struct {
	minute, hour, dom, month, dow [61]bool // indexed by value
	anyDOM, anyDOW                bool     // the field is ? or *
	years                         map[int]bool
	anyYear                       bool
}

// cronField describes one field.
type cronField struct {
	name     string
	min, max int
	names    []string // names of min, min+1, ... if any
}

var (
	cronMinute = cronField{name: "minutes", min: 0, max: 59}
	cronHour   = cronField{name: "hours", min: 0, max: 23}
	cronDOM    = cronField{name: "day-of-month", min: 1, max: 31}
	cronMonth  = cronField{name: "month", min: 1, max: 12,
		names: []string{"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"}}
	cronDOW  = cronField{name: "day-of-week", min: 1, max: 7, names: []string{"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"}}
	cronYear = cronField{name: "year", min: 1970, max: 2199}
)

// parseCron parses "cron(...)".
func parseCron(expr string) (*cronSpec, error) {
	inner, ok := strings.CutPrefix(expr, "cron(")
	if !ok || !strings.HasSuffix(inner, ")") {
		return nil, fmt.Errorf("%w %q: expected cron(Minutes Hours Day-of-month Month Day-of-week Year)", errCron, expr)
	}
	f := strings.Fields(strings.TrimSuffix(inner, ")"))
	if len(f) != 6 {
		return nil, fmt.Errorf("%w %q: %d fields, expected 6", errCron, expr, len(f))
	}
	if (f[2] == "?") == (f[4] == "?") {
		return nil, fmt.Errorf("%w %q: exactly one of day-of-month and day-of-week must be ?", errCron, expr)
	}
	c := &cronSpec{anyDOM: f[2] == "?" || f[2] == "*", anyDOW: f[4] == "?" || f[4] == "*"}
	years := make([]bool, cronYear.max+1)
	for _, p := range []struct {
		field cronField
		text  string
		set   []bool
	}{
		{cronMinute, f[0], c.minute[:]}, {cronHour, f[1], c.hour[:]}, {cronDOM, f[2], c.dom[:]},
		{cronMonth, f[3], c.month[:]}, {cronDOW, f[4], c.dow[:]}, {cronYear, f[5], years},
	} {
		if err := p.field.parse(p.text, p.set); err != nil {
			return nil, fmt.Errorf("%w %q: %w", errCron, expr, err)
		}
	}
	c.anyYear = f[5] == "*" || f[5] == "?"
	c.years = make(map[int]bool)
	for y, ok := range years {
		if ok {
			c.years[y] = true
		}
	}
	return c, nil
}

// parse marks in set the values text allows.
func (f cronField) parse(text string, set []bool) error {
	if text == "?" {
		text = "*"
	}
	for _, part := range strings.Split(text, ",") {
		lo, hi, step := f.min, f.max, 1
		rng, stepText, hasStep := strings.Cut(part, "/")
		if hasStep {
			n, err := strconv.Atoi(stepText)
			if err != nil || n < 1 || n > f.max {
				return fmt.Errorf("%s: bad step %q", f.name, stepText)
			}
			step = n
		}
		if rng != "*" {
			a, b, isRange := strings.Cut(rng, "-")
			var err error
			if lo, err = f.value(a); err != nil {
				return err
			}
			hi = lo
			if hasStep {
				hi = f.max
			}
			if isRange {
				if hi, err = f.value(b); err != nil {
					return err
				}
				if hi < lo {
					return fmt.Errorf("%s: range %q runs backwards", f.name, rng)
				}
			}
		}
		for v := lo; v <= hi; v += step {
			set[v] = true
		}
	}
	return nil
}

// value parses one value of the field, by number or name.
func (f cronField) value(s string) (int, error) {
	for i, n := range f.names {
		if strings.EqualFold(s, n) {
			return f.min + i, nil
		}
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < f.min || v > f.max {
		return 0, fmt.Errorf("%s: %q is not a value from %d to %d (L, W and # are not supported)", f.name, s, f.min, f.max)
	}
	return v, nil
}

// dayMatches reports whether the cron allows day d.
func (c *cronSpec) dayMatches(d time.Time) bool {
	if !c.anyYear && !c.years[d.Year()] {
		return false
	}
	if !c.month[int(d.Month())] {
		return false
	}
	domOK := c.anyDOM || c.dom[d.Day()]
	dowOK := c.anyDOW || c.dow[int(d.Weekday())+1]
	return domOK && dowOK
}

// cronHorizon bounds the search for the next time: a cron that does not
// fire within it never fires (its years are past).
const cronHorizon = 366 * 6

// next returns the first time after t (UTC, to the minute) the cron
// allows, or the zero time if there is none within cronHorizon days.
func (c *cronSpec) next(t time.Time) time.Time {
	t = t.UTC().Truncate(time.Minute).Add(time.Minute)
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	for i := 0; i < cronHorizon; i, day = i+1, day.AddDate(0, 0, 1) {
		if !c.dayMatches(day) {
			continue
		}
		for h := 0; h < 24; h++ {
			if !c.hour[h] {
				continue
			}
			for m := 0; m < 60; m++ {
				if at := day.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute); c.minute[m] && !at.Before(t) {
					return at
				}
			}
		}
	}
	return time.Time{}
}

// minGap returns the shortest time between two consecutive firings of the
// cron over the next year from t (a year if it fires at most once), to
// hold it to a minimum interval.
func (c *cronSpec) minGap(t time.Time) time.Duration {
	gap := 366 * 24 * time.Hour
	prev := c.next(t)
	for i := 0; i < 2000 && !prev.IsZero(); i++ {
		n := c.next(prev)
		if n.IsZero() || n.Sub(prev) > 366*24*time.Hour {
			break
		}
		gap = min(gap, n.Sub(prev))
		prev = n
	}
	return gap
}
