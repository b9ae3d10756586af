package cow

import (
	"errors"
	"testing"
	"time"
)

func intp(n int) *int { return &n }

func timep(t time.Time) *time.Time { return &t }

var (
	lockT0    = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	day       = 24 * time.Hour
	testUnits = newLockUnits(0)
)

// lockAt is the lock req makes of no lock at t0 (the test fails if it cannot).
func lockAt(t *testing.T, req LockRequest) *SnapshotLock {
	t.Helper()
	l, err := testUnits.nextLock(nil, "snap-1", "123456789012", req, lockT0)
	if err != nil {
		t.Fatalf("lock %+v: %v", req, err)
	}
	return &l
}

func TestLockState(t *testing.T) {
	gov := SnapshotLock{Mode: LockGovernance, ExpiresOn: lockT0.Add(2 * day)}
	comp := SnapshotLock{Mode: LockCompliance, ExpiresOn: lockT0.Add(2 * day)}
	cool := SnapshotLock{Mode: LockCompliance, CoolOffExpiresOn: lockT0.Add(time.Hour), ExpiresOn: lockT0.Add(2 * day)}
	for _, tc := range []struct {
		name string
		l    SnapshotLock
		at   time.Time
		want LockState
	}{
		{"governance", gov, lockT0, LockStateGovernance},
		{"governance at expiry", gov, lockT0.Add(2 * day), LockStateExpired},
		{"compliance without cooling-off", comp, lockT0, LockStateCompliance},
		{"compliance in cooling-off", cool, lockT0.Add(time.Minute), LockStateComplianceCooloff},
		{"compliance at end of cooling-off", cool, lockT0.Add(time.Hour), LockStateCompliance},
		{"compliance expired", cool, lockT0.Add(3 * day), LockStateExpired},
	} {
		if got := tc.l.State(tc.at); got != tc.want {
			t.Errorf("%s: state %s, want %s", tc.name, got, tc.want)
		}
	}
}

// TestLockRequestValidation: requests wrong whatever the current lock.
func TestLockRequestValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		req  LockRequest
		want error
	}{
		{"bad mode", LockRequest{Mode: "strict", LockDuration: intp(1)}, ErrInvalidParameter},
		{"no mode", LockRequest{LockDuration: intp(1)}, ErrInvalidParameter},
		{"both duration and date", LockRequest{Mode: LockGovernance, LockDuration: intp(1), ExpirationDate: timep(lockT0.Add(3 * day))}, ErrLockParameterCombination},
		{"neither duration nor date", LockRequest{Mode: LockGovernance}, ErrLockParameterMissing},
		{"cool-off in governance", LockRequest{Mode: LockGovernance, LockDuration: intp(1), CoolOffPeriod: intp(1)}, ErrLockParameterCombination},
		{"duration 0", LockRequest{Mode: LockCompliance, LockDuration: intp(0)}, ErrInvalidParameter},
		{"duration too long", LockRequest{Mode: LockCompliance, LockDuration: intp(36501)}, ErrInvalidParameter},
		{"cool-off 0", LockRequest{Mode: LockCompliance, LockDuration: intp(1), CoolOffPeriod: intp(0)}, ErrInvalidParameter},
		{"cool-off 73", LockRequest{Mode: LockCompliance, LockDuration: intp(1), CoolOffPeriod: intp(73)}, ErrInvalidParameter},
		{"date in the past", LockRequest{Mode: LockGovernance, ExpirationDate: timep(lockT0.Add(-time.Hour))}, ErrInvalidParameter},
		{"date under a day away", LockRequest{Mode: LockGovernance, ExpirationDate: timep(lockT0.Add(23 * time.Hour))}, ErrInvalidParameter},
		{"date over 36500 days away", LockRequest{Mode: LockGovernance, ExpirationDate: timep(lockT0.Add(36501 * day))}, ErrInvalidParameter},
		{"duration 36500", LockRequest{Mode: LockGovernance, LockDuration: intp(36500)}, nil},
		{"date a day away", LockRequest{Mode: LockGovernance, ExpirationDate: timep(lockT0.Add(day))}, nil},
		{"compliance, cool-off 72", LockRequest{Mode: LockCompliance, LockDuration: intp(5), CoolOffPeriod: intp(72)}, nil},
	} {
		_, err := testUnits.nextLock(nil, "snap-1", "123456789012", tc.req, lockT0)
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

// TestLockChanges: what LockSnapshot may change of a current lock, by its
// state.
func TestLockChanges(t *testing.T) {
	gov := lockAt(t, LockRequest{Mode: LockGovernance, LockDuration: intp(10)})
	cool := lockAt(t, LockRequest{Mode: LockCompliance, LockDuration: intp(10), CoolOffPeriod: intp(24)})
	comp := lockAt(t, LockRequest{Mode: LockCompliance, LockDuration: intp(10)})
	later := lockT0.Add(2 * day) // governance, compliance (cool-off over)
	during := lockT0.Add(time.Hour)
	for _, tc := range []struct {
		name       string
		cur        *SnapshotLock
		at         time.Time
		req        LockRequest
		want       error
		wantExpiry time.Time // if the change is allowed
	}{
		{"governance: shorten", gov, later, LockRequest{Mode: LockGovernance, LockDuration: intp(3)}, nil, lockT0.Add(3 * day)},
		{"governance: to compliance", gov, later, LockRequest{Mode: LockCompliance, LockDuration: intp(10)}, nil, lockT0.Add(10 * day)},
		{"governance: shorten into the past", gov, later, LockRequest{Mode: LockGovernance, LockDuration: intp(1)}, ErrInvalidParameter, time.Time{}},
		{"cool-off: shorten", cool, during, LockRequest{Mode: LockCompliance, LockDuration: intp(2)}, nil, lockT0.Add(2 * day)},
		{"cool-off: to governance", cool, during, LockRequest{Mode: LockGovernance, LockDuration: intp(10)}, nil, lockT0.Add(10 * day)},
		{"compliance: extend", comp, later, LockRequest{Mode: LockCompliance, LockDuration: intp(20)}, nil, lockT0.Add(20 * day)},
		{"compliance: extend by date", comp, later, LockRequest{Mode: LockCompliance, ExpirationDate: timep(lockT0.Add(30 * day))}, nil, lockT0.Add(30 * day)},
		{"compliance: same duration", comp, later, LockRequest{Mode: LockCompliance, LockDuration: intp(10)}, nil, lockT0.Add(10 * day)},
		{"compliance: shorten", comp, later, LockRequest{Mode: LockCompliance, LockDuration: intp(5)}, ErrSnapshotLocked, time.Time{}},
		{"compliance: earlier date", comp, later, LockRequest{Mode: LockCompliance, ExpirationDate: timep(lockT0.Add(5 * day))}, ErrSnapshotLocked, time.Time{}},
		{"compliance: to governance", comp, later, LockRequest{Mode: LockGovernance, LockDuration: intp(20)}, ErrSnapshotLocked, time.Time{}},
		{"compliance: new cool-off", comp, later, LockRequest{Mode: LockCompliance, LockDuration: intp(20), CoolOffPeriod: intp(1)}, ErrSnapshotLocked, time.Time{}},
		{"cool-off ended: shorten", cool, later, LockRequest{Mode: LockCompliance, LockDuration: intp(5)}, ErrSnapshotLocked, time.Time{}},
		{"expired compliance: relock anew", comp, lockT0.Add(11 * day), LockRequest{Mode: LockGovernance, LockDuration: intp(1)}, nil, lockT0.Add(12 * day)},
	} {
		n, err := testUnits.nextLock(tc.cur, "snap-1", "123456789012", tc.req, tc.at)
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
			continue
		}
		if err == nil && !n.ExpiresOn.Equal(tc.wantExpiry) {
			t.Errorf("%s: expires %s, want %s", tc.name, n.ExpiresOn, tc.wantExpiry)
		}
		if err == nil && tc.cur.State(tc.at) != LockStateExpired && !n.CreatedOn.Equal(tc.cur.CreatedOn) {
			t.Errorf("%s: created %s, want the lock's first creation %s", tc.name, n.CreatedOn, tc.cur.CreatedOn)
		}
	}
}

func TestUnlockAndDeleteRules(t *testing.T) {
	gov := lockAt(t, LockRequest{Mode: LockGovernance, LockDuration: intp(2)})
	cool := lockAt(t, LockRequest{Mode: LockCompliance, LockDuration: intp(2), CoolOffPeriod: intp(1)})
	for _, tc := range []struct {
		name                string
		cur                 *SnapshotLock
		at                  time.Time
		wantUnlock, wantDel error
	}{
		{"no lock", nil, lockT0, ErrNotLocked, nil},
		{"governance", gov, lockT0, nil, ErrSnapshotLocked},
		{"compliance in cooling-off", cool, lockT0.Add(time.Minute), nil, ErrSnapshotLocked},
		{"compliance after cooling-off", cool, lockT0.Add(2 * time.Hour), ErrSnapshotLocked, ErrSnapshotLocked},
		{"governance expired", gov, lockT0.Add(2 * day), ErrNotLocked, nil},
		{"compliance expired", cool, lockT0.Add(3 * day), ErrNotLocked, nil},
	} {
		if err := checkUnlock(tc.cur, "snap-1", tc.at); !errors.Is(err, tc.wantUnlock) || (tc.wantUnlock == nil) != (err == nil) {
			t.Errorf("%s: unlock: %v, want %v", tc.name, err, tc.wantUnlock)
		}
		if err := checkDelete(tc.cur, "snap-1", tc.at); !errors.Is(err, tc.wantDel) || (tc.wantDel == nil) != (err == nil) {
			t.Errorf("%s: delete: %v, want %v", tc.name, err, tc.wantDel)
		}
	}
}

// TestLockUnitsScale: a test's short day scales durations and cool-off
// hours alike.
func TestLockUnitsScale(t *testing.T) {
	u := newLockUnits(24 * time.Second)
	l, err := u.nextLock(nil, "snap-1", "123456789012", LockRequest{Mode: LockCompliance, LockDuration: intp(2), CoolOffPeriod: intp(3)}, lockT0)
	if err != nil {
		t.Fatal(err)
	}
	if !l.ExpiresOn.Equal(lockT0.Add(48*time.Second)) || !l.CoolOffExpiresOn.Equal(lockT0.Add(3*time.Second)) {
		t.Errorf("expires %s, cool-off ends %s", l.ExpiresOn, l.CoolOffExpiresOn)
	}
}

func TestLockEncodingRoundTrip(t *testing.T) {
	for _, l := range []*SnapshotLock{
		lockAt(t, LockRequest{Mode: LockGovernance, LockDuration: intp(7)}),
		lockAt(t, LockRequest{Mode: LockCompliance, ExpirationDate: timep(lockT0.Add(40 * day)), CoolOffPeriod: intp(12)}),
		pendingLockAt(t, LockRequest{Mode: LockCompliance, LockDuration: intp(7), CoolOffPeriod: intp(12)}),
		pendingLockAt(t, LockRequest{Mode: LockGovernance, ExpirationDate: timep(lockT0.Add(40 * day))}),
	} {
		b, err := encodeLock(*l)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeLock(b, "snap-1")
		if err != nil {
			t.Fatalf("decode %s: %v", b, err)
		}
		if got != *l {
			t.Errorf("round trip: %+v, want %+v", got, *l)
		}
	}
}

func TestDecodeLockRefuses(t *testing.T) {
	good := `"version":1,"snapshotId":"snap-1","ownerId":"123456789012","lockCreatedOn":"2026-01-01T00:00:00Z","lockDurationStartTime":"2026-01-01T00:00:00Z","lockExpiresOn":"2026-01-02T00:00:00Z"`
	for _, tc := range []struct{ name, doc string }{
		{"not JSON", `{`},
		{"bad mode", `{` + good + `,"lockMode":"strict"}`},
		{"other snapshot", `{"version":1,"snapshotId":"snap-2","ownerId":"123456789012","lockMode":"governance","lockCreatedOn":"2026-01-01T00:00:00Z","lockDurationStartTime":"2026-01-01T00:00:00Z","lockExpiresOn":"2026-01-02T00:00:00Z"}`},
		{"cool-off in governance", `{` + good + `,"lockMode":"governance","coolOffPeriodHours":1,"coolOffPeriodExpiresOn":"2026-01-01T01:00:00Z"}`},
		{"cool-off without end", `{` + good + `,"lockMode":"compliance","coolOffPeriodHours":1}`},
		{"duration out of range", `{` + good + `,"lockMode":"compliance","lockDurationDays":40000}`},
		{"expires before start", `{"version":1,"snapshotId":"snap-1","ownerId":"123456789012","lockMode":"governance","lockCreatedOn":"2026-01-01T00:00:00Z","lockDurationStartTime":"2026-01-01T00:00:00Z","lockExpiresOn":"2025-01-02T00:00:00Z"}`},
		{"format 2", `{` + good[len(`"version":1,`):] + `,"version":2,"lockMode":"governance"}`},
		{"awaiting start, duration and expiry", `{"version":1,"snapshotId":"snap-1","ownerId":"123456789012","lockMode":"governance","lockCreatedOn":"2026-01-01T00:00:00Z","lockDurationDays":3,"lockExpiresOn":"2026-01-09T00:00:00Z"}`},
		{"awaiting start, neither", `{"version":1,"snapshotId":"snap-1","ownerId":"123456789012","lockMode":"governance","lockCreatedOn":"2026-01-01T00:00:00Z"}`},
	} {
		if _, err := decodeLock([]byte(tc.doc), "snap-1"); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", tc.name, err)
		}
	}
	if _, err := decodeLock([]byte(`{`+good+`,"lockMode":"governance"}`), "snap-1"); err != nil {
		t.Errorf("a good lock: %v", err)
	}
}

// pendingLockAt is the lock req makes at t0 of a pending snapshot.
func pendingLockAt(t *testing.T, req LockRequest) *SnapshotLock {
	t.Helper()
	l, err := testUnits.nextLockFrom(nil, "snap-1", "123456789012", req, lockT0, time.Time{})
	if err != nil {
		t.Fatalf("lock %+v of a pending snapshot: %v", req, err)
	}
	return &l
}

// TestLockOfPendingStartsAtCompletion: a duration asked for while the
// snapshot is pending starts when it completes; until then the lock is in
// force however long the snapshot takes, and in compliance mode after the
// cooling-off period it can only be extended from what it will be at least.
func TestLockOfPendingStartsAtCompletion(t *testing.T) {
	l := pendingLockAt(t, LockRequest{Mode: LockCompliance, LockDuration: intp(3), CoolOffPeriod: intp(1)})
	if !l.DurationStart.IsZero() || !l.ExpiresOn.IsZero() {
		t.Fatalf("pending: starts %s, expires %s; want neither", l.DurationStart, l.ExpiresOn)
	}
	if st := l.State(lockT0.Add(100 * day)); st != LockStateCompliance {
		t.Errorf("pending for 100 days: state %s, want compliance", st)
	}
	if err := checkDelete(l, "snap-1", lockT0.Add(100*day)); !errors.Is(err, ErrSnapshotLocked) {
		t.Errorf("delete while pending: %v", err)
	}
	done := lockT0.Add(5 * day)
	got := testUnits.started(*l, done)
	if !got.DurationStart.Equal(done) || !got.ExpiresOn.Equal(done.Add(3*day)) {
		t.Errorf("completed at %s: starts %s, expires %s", done, got.DurationStart, got.ExpiresOn)
	}
	if again := testUnits.started(got, done.Add(day)); again != got {
		t.Errorf("a started lock changed: %+v", again)
	}
	dated := pendingLockAt(t, LockRequest{Mode: LockGovernance, ExpirationDate: timep(lockT0.Add(10 * day))})
	if got := testUnits.started(*dated, done); !got.ExpiresOn.Equal(lockT0.Add(10*day)) || !got.DurationStart.Equal(done) {
		t.Errorf("an expiration date moved with the completion: %+v", got)
	}
	later := lockT0.Add(2 * time.Hour) // the cooling-off period is over
	for _, tc := range []struct {
		name string
		req  LockRequest
		want error
	}{
		{"same duration", LockRequest{Mode: LockCompliance, LockDuration: intp(3)}, nil},
		{"longer", LockRequest{Mode: LockCompliance, LockDuration: intp(4)}, nil},
		{"shorter", LockRequest{Mode: LockCompliance, LockDuration: intp(2)}, ErrSnapshotLocked},
		{"a date within the duration", LockRequest{Mode: LockCompliance, ExpirationDate: timep(later.Add(2 * day))}, ErrSnapshotLocked},
		{"a date past it", LockRequest{Mode: LockCompliance, ExpirationDate: timep(later.Add(4 * day))}, nil},
	} {
		_, err := testUnits.nextLockFrom(l, "snap-1", "123456789012", tc.req, later, time.Time{})
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

// FuzzDecodeLock: the decoder of stored locks never panics, and what it
// accepts encodes to a lock it accepts again, unchanged.
func FuzzDecodeLock(f *testing.F) {
	l, _ := testUnits.nextLock(nil, "snap-1", "123456789012", LockRequest{Mode: LockCompliance, LockDuration: intp(3), CoolOffPeriod: intp(2)}, lockT0)
	b, _ := encodeLock(l)
	f.Add(b)
	f.Add([]byte(`{"version":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := decodeLock(b, "snap-1")
		if err != nil {
			return
		}
		again, err := encodeLock(l)
		if err != nil {
			t.Fatal(err)
		}
		l2, err := decodeLock(again, "snap-1")
		if err != nil {
			t.Fatalf("re-encoded lock refused: %v", err)
		}
		if l2.State(lockT0) != l.State(lockT0) || !l2.ExpiresOn.Equal(l.ExpiresOn) {
			t.Fatalf("re-encoded lock changed: %+v, was %+v", l2, l)
		}
	})
}
