package lifecycle

import (
	"testing"
	"time"
)

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestLatestDue(t *testing.T) {
	hourly := &CreateRule{Interval: 1, IntervalUnit: UnitHours}
	every12 := &CreateRule{Interval: 12, IntervalUnit: UnitHours, Times: []string{"09:30"}}
	minutes5 := &CreateRule{Interval: 5, IntervalUnit: UnitMinutes}
	cronDaily := &CreateRule{CronExpression: "cron(15 3 * * ? *)"}
	cronWeekdays := &CreateRule{CronExpression: "cron(0 8 ? * MON-FRI *)"}
	for _, tc := range []struct {
		name      string
		rule      *CreateRule
		from, now string
		want      string // "" none due
	}{
		{"hourly not yet", hourly, "2026-01-01T10:20:00Z", "2026-01-01T10:59:59Z", ""},
		{"hourly due", hourly, "2026-01-01T10:20:00Z", "2026-01-01T11:00:00Z", "2026-01-01T11:00:00Z"},
		{"hourly from a scheduled time", hourly, "2026-01-01T11:00:00Z", "2026-01-01T11:30:00Z", ""},
		{"hourly missed many runs once", hourly, "2026-01-01T11:00:00Z", "2026-01-03T07:45:00Z", "2026-01-03T07:00:00Z"},
		{"12h from 09:30", every12, "2026-01-01T10:00:00Z", "2026-01-01T21:29:00Z", ""},
		{"12h at 21:30", every12, "2026-01-01T10:00:00Z", "2026-01-01T21:30:00Z", "2026-01-01T21:30:00Z"},
		{"12h next morning", every12, "2026-01-01T21:30:00Z", "2026-01-02T10:00:00Z", "2026-01-02T09:30:00Z"},
		{"5 minutes", minutes5, "2026-01-01T10:01:00Z", "2026-01-01T10:07:00Z", "2026-01-01T10:05:00Z"},
		{"5 minutes missed", minutes5, "2026-01-01T10:05:00Z", "2026-01-01T11:03:00Z", "2026-01-01T11:00:00Z"},
		{"cron daily not yet", cronDaily, "2026-01-01T03:15:00Z", "2026-01-02T03:14:00Z", ""},
		{"cron daily", cronDaily, "2026-01-01T03:15:00Z", "2026-01-02T03:15:00Z", "2026-01-02T03:15:00Z"},
		{"cron daily missed a week", cronDaily, "2026-01-01T03:15:00Z", "2026-01-08T12:00:00Z", "2026-01-08T03:15:00Z"},
		// 2026-01-02 is a Friday: the weekend is skipped.
		{"cron weekdays over a weekend", cronWeekdays, "2026-01-02T08:00:00Z", "2026-01-04T23:00:00Z", ""},
		{"cron weekdays monday", cronWeekdays, "2026-01-02T08:00:00Z", "2026-01-05T08:00:00Z", "2026-01-05T08:00:00Z"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tm, err := newTiming(tc.rule)
			if err != nil {
				t.Fatal(err)
			}
			got := tm.latestDue(at(tc.from), at(tc.now))
			if tc.want == "" {
				if !got.IsZero() {
					t.Fatalf("due %v, want nothing due", got)
				}
				return
			}
			if !got.Equal(at(tc.want)) {
				t.Fatalf("due %v, want %s", got, tc.want)
			}
		})
	}
}

func TestCronNext(t *testing.T) {
	for _, tc := range []struct {
		expr, after, want string
	}{
		{"cron(0 * * * ? *)", "2026-03-01T10:00:00Z", "2026-03-01T11:00:00Z"},
		{"cron(0/20 * * * ? *)", "2026-03-01T10:05:00Z", "2026-03-01T10:20:00Z"},
		{"cron(5,35 14 * * ? *)", "2026-03-01T14:05:00Z", "2026-03-01T14:35:00Z"},
		{"cron(0 0 1 * ? *)", "2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z"},
		{"cron(0 12 ? JAN-MAR SUN 2027)", "2026-03-01T00:00:00Z", "2027-01-03T12:00:00Z"},
		{"cron(30 2 29 FEB ? *)", "2026-03-01T00:00:00Z", "2028-02-29T02:30:00Z"},
		{"cron(0 6 ? * 1 *)", "2026-03-02T00:00:00Z", "2026-03-08T06:00:00Z"}, // 1 is Sunday
	} {
		c, err := parseCron(tc.expr)
		if err != nil {
			t.Fatalf("%s: %v", tc.expr, err)
		}
		if got := c.next(at(tc.after)); !got.Equal(at(tc.want)) {
			t.Errorf("%s after %s: %v, want %s", tc.expr, tc.after, got, tc.want)
		}
	}
}

func TestCronInvalid(t *testing.T) {
	for _, expr := range []string{
		"0 * * * ? *", "cron(0 * * * ?)", "cron(0 * * * * *)", "cron(0 * ? * ? *)", "cron(60 * * * ? *)",
		"cron(0 24 * * ? *)", "cron(0 0 L * ? *)", "cron(0 0 ? * 2#1 *)", "cron(0 0 5-1 * ? *)", "cron(0/0 * * * ? *)",
		"cron(0 0 * FOO ? *)", "cron(0 0 * * ? 1969)",
	} {
		if _, err := parseCron(expr); err == nil {
			t.Errorf("%s: accepted", expr)
		}
	}
}

func TestJitter(t *testing.T) {
	limit := 6 * time.Second
	seen := map[time.Duration]bool{}
	for _, v := range []string{"vol-0000000000000001a", "vol-0000000000000002b", "vol-0000000000000003c", "vol-0000000000000004d"} {
		j := jitter("policy-0123456789abcdef0", "daily", v, limit)
		if j < 0 || j >= limit {
			t.Fatalf("%s: jitter %v outside [0, %v)", v, j, limit)
		}
		if j != jitter("policy-0123456789abcdef0", "daily", v, limit) {
			t.Fatalf("%s: jitter differs between calls", v)
		}
		seen[j] = true
	}
	if len(seen) < 2 {
		t.Fatalf("every volume has the same offset: %v", seen)
	}
	if j := jitter("p", "s", "v", 0); j != 0 {
		t.Fatalf("no limit: jitter %v", j)
	}
	if got := jitterLimit(time.Hour, DefaultMaxJitter); got != 6*time.Minute {
		t.Fatalf("hourly limit %v", got)
	}
	if got := jitterLimit(24*time.Hour, DefaultMaxJitter); got != DefaultMaxJitter {
		t.Fatalf("daily limit %v", got)
	}
}

func TestExpired(t *testing.T) {
	t0 := at("2026-01-01T00:00:00Z")
	snaps := func(n int, step time.Duration, pendingLast bool) []made {
		var out []made
		for i := 0; i < n; i++ {
			out = append(out, made{ID: string(rune('a' + i)), Start: t0.Add(time.Duration(i) * step), Settled: !(pendingLast && i == n-1)})
		}
		return out
	}
	ids := func(ms []made) string {
		s := ""
		for _, m := range ms {
			s += m.ID
		}
		return s
	}
	for _, tc := range []struct {
		name  string
		rule  *RetainRule
		snaps []made
		now   time.Time
		gone  bool
		want  string
	}{
		{"no rule", nil, snaps(5, time.Hour, false), t0, false, ""},
		{"count under", &RetainRule{Count: 5}, snaps(3, time.Hour, false), t0, false, ""},
		{"count over, oldest first", &RetainRule{Count: 2}, snaps(5, time.Hour, false), t0, false, "abc"},
		{"pending counts but is kept", &RetainRule{Count: 2}, snaps(4, time.Hour, true), t0, false, "ab"},
		{"age days", &RetainRule{Interval: 2, IntervalUnit: "DAYS"}, snaps(5, 24*time.Hour, false), t0.Add(72 * time.Hour), false, "ab"},
		{"age weeks none", &RetainRule{Interval: 1, IntervalUnit: "WEEKS"}, snaps(5, 24*time.Hour, false), t0.Add(72 * time.Hour), false, ""},
		{"age months", &RetainRule{Interval: 1, IntervalUnit: "MONTHS"}, snaps(3, 24*time.Hour, false), at("2026-02-02T00:00:00Z"), false, "ab"},
		{"age years", &RetainRule{Interval: 1, IntervalUnit: "YEARS"}, snaps(2, 24*time.Hour, false), at("2027-01-01T00:00:00Z"), false, "a"},
		{"all expired", &RetainRule{Interval: 1, IntervalUnit: "DAYS"}, snaps(3, time.Hour, false), t0.Add(30 * 24 * time.Hour), false, "abc"},
		{"volume gone keeps its last", &RetainRule{Interval: 1, IntervalUnit: "DAYS"}, snaps(3, time.Hour, false), t0.Add(30 * 24 * time.Hour), true, "ab"},
		{"volume gone, count", &RetainRule{Count: 1}, snaps(3, time.Hour, false), t0, true, "ab"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ids(expired(tc.rule, tc.snaps, tc.now, tc.gone)); got != tc.want {
				t.Fatalf("expired %q, want %q", got, tc.want)
			}
		})
	}
}

func FuzzParseCron(f *testing.F) {
	for _, s := range []string{"cron(0 * * * ? *)", "cron(0/20 1-5,7 ? JAN-MAR MON 2026-2030)", "cron(5 4 29 FEB ? *)"} {
		f.Add(s)
	}
	from := at("2026-06-01T12:34:00Z")
	f.Fuzz(func(t *testing.T, expr string) {
		c, err := parseCron(expr)
		if err != nil {
			return
		}
		if n := c.next(from); !n.IsZero() && !n.After(from) {
			t.Fatalf("%s: next %v is not after %v", expr, n, from)
		}
	})
}
