package control

import (
	"context"
	"encoding/xml"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cowvol/cowvol/cow"
)

// lockDay is the tests' lock day: a cooling-off hour is 250ms. Long
// enough that a lock of many days, or a cooling-off period of 72 hours,
// outlasts the checks made under it even on a loaded machine.
const lockDay = 6 * time.Second

func intPtr(n int) *int { return &n }

// TestSnapshotLockErrors: refused lock requests answer EC2's codes and
// change nothing.
func TestSnapshotLockErrors(t *testing.T) {
	env := newTestEnvWith(t, cow.Options{LockDay: lockDay}, Options{})
	vol := env.create(t, CreateVolumeInput{Size: 1})
	snap := env.snapshot(t, CreateSnapshotInput{VolumeID: vol.VolumeID})
	env.waitCompleted(t, snap.SnapshotID)
	const missingSnap = "snap-00000000000000000"
	lock := "Action=LockSnapshot&SnapshotId=" + snap.SnapshotID
	tests := []struct {
		name, body string
		status     int
		code, msg  string
	}{
		{"no id", "Action=LockSnapshot&LockMode=governance&LockDuration=1", 400, CodeMissingParameter, "SnapshotId"},
		{"malformed id", "Action=LockSnapshot&SnapshotId=snap-x&LockMode=governance&LockDuration=1", 400, CodeInvalidSnapshotIDMalformed, "snap-x"},
		{"unknown snapshot", "Action=LockSnapshot&SnapshotId=" + missingSnap + "&LockMode=governance&LockDuration=1", 400, CodeInvalidSnapshotNotFound, missingSnap},
		{"no mode", lock + "&LockDuration=1", 400, CodeMissingParameter, "LockMode"},
		{"bad mode", lock + "&LockMode=strict&LockDuration=1", 400, CodeInvalidParameterValue, "LockMode"},
		{"no duration or date", lock + "&LockMode=governance", 400, CodeMissingParameter, "LockDuration or ExpirationDate"},
		{"duration and date", lock + "&LockMode=governance&LockDuration=1&ExpirationDate=2099-01-01T00:00:00.000Z", 400, CodeInvalidParameterCombination, "LockDuration and ExpirationDate"},
		{"duration 0", lock + "&LockMode=governance&LockDuration=0", 400, CodeInvalidParameterValue, "LockDuration"},
		{"duration 36501", lock + "&LockMode=governance&LockDuration=36501", 400, CodeInvalidParameterValue, "LockDuration"},
		{"negative duration", lock + "&LockMode=governance&LockDuration=-1", 400, CodeInvalidParameterValue, "LockDuration"},
		{"duration beyond int32", lock + "&LockMode=compliance&LockDuration=99999999999999", 400, CodeInvalidParameterValue, "Value (99999999999999) for parameter LockDuration"},
		{"cool-off beyond int32", lock + "&LockMode=compliance&LockDuration=1&CoolOffPeriod=4294967296", 400, CodeInvalidParameterValue, "Value (4294967296) for parameter CoolOffPeriod"},
		{"cool-off in governance", lock + "&LockMode=governance&LockDuration=1&CoolOffPeriod=1", 400, CodeInvalidParameterCombination, "CoolOffPeriod"},
		{"cool-off 73", lock + "&LockMode=compliance&LockDuration=1&CoolOffPeriod=73", 400, CodeInvalidParameterValue, "CoolOffPeriod"},
		{"cool-off 0", lock + "&LockMode=compliance&LockDuration=1&CoolOffPeriod=0", 400, CodeInvalidParameterValue, "CoolOffPeriod"},
		{"date not a date", lock + "&LockMode=governance&ExpirationDate=tomorrow", 400, CodeInvalidParameterValue, "ExpirationDate"},
		{"date in the past", lock + "&LockMode=governance&ExpirationDate=2001-01-01T00:00:00.000Z", 400, CodeInvalidParameterValue, "ExpirationDate"},
		{"unknown parameter", lock + "&LockMode=governance&LockDuration=1&Force=true", 400, CodeUnknownParameter, "Force"},
		{"dry run", lock + "&LockMode=governance&LockDuration=1&DryRun=true", 412, CodeDryRunOperation, ""},
		{"unlock: not locked", "Action=UnlockSnapshot&SnapshotId=" + snap.SnapshotID, 400, CodeIncorrectState, "not locked"},
		{"unlock: no id", "Action=UnlockSnapshot", 400, CodeMissingParameter, "SnapshotId"},
		{"unlock: unknown", "Action=UnlockSnapshot&SnapshotId=" + missingSnap, 400, CodeInvalidSnapshotNotFound, missingSnap},
		{"describe: bad filter", "Action=DescribeLockedSnapshots&Filter.1.Name=status&Filter.1.Value.1=x", 400, CodeInvalidParameterValue, "status"},
		{"describe: unknown", "Action=DescribeLockedSnapshots&SnapshotId.1=" + missingSnap, 400, CodeInvalidSnapshotNotFound, missingSnap},
		{"describe: max results low", "Action=DescribeLockedSnapshots&MaxResults=4", 400, CodeInvalidParameterValue, "maxResults"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, body := env.post(t, tt.body+v)
			var er errorResponse
			if err := xml.Unmarshal([]byte(body), &er); err != nil || len(er.Errors) != 1 || er.Errors[0].Code != tt.code {
				t.Fatalf("%s: %d %s\nwant %d %s", tt.body, status, body, tt.status, tt.code)
			}
			if status != tt.status || !strings.Contains(er.Errors[0].Message, tt.msg) {
				t.Errorf("%s: %d %s\nwant %d %s containing %q", tt.body, status, body, tt.status, tt.code, tt.msg)
			}
		})
	}
	out, err := env.client.DescribeLockedSnapshots(context.Background(), DescribeLockedSnapshotsInput{})
	if err != nil || len(out.Snapshots) != 0 {
		t.Fatalf("after the refused requests: locks %+v, %v; want none", out.Snapshots, err)
	}
}

// TestSnapshotLockLifecycle: governance (unlock, then delete), compliance
// in its cooling-off period (shortened, unlocked), compliance after it
// (extend only, no unlock, no delete), and deletion once a lock expired.
func TestSnapshotLockLifecycle(t *testing.T) {
	env := newTestEnvWith(t, cow.Options{LockDay: lockDay}, Options{})
	ctx := context.Background()
	vol := env.create(t, CreateVolumeInput{Size: 1})
	snap := env.snapshot(t, CreateSnapshotInput{VolumeID: vol.VolumeID})
	env.waitCompleted(t, snap.SnapshotID)
	id := snap.SnapshotID
	c := env.client

	gov, err := c.LockSnapshot(ctx, LockSnapshotInput{SnapshotID: id, LockMode: "governance", LockDuration: intPtr(100)})
	if err != nil || gov.LockState != "governance" || gov.LockDuration != 100 || gov.SnapshotID != id {
		t.Fatalf("lock governance: %+v, %v", gov, err)
	}
	checkAPIError(t, "delete, governance", c.DeleteSnapshot(ctx, id, false), http.StatusBadRequest, CodeSnapshotLocked, id)
	if err := c.UnlockSnapshot(ctx, id, false); err != nil {
		t.Fatalf("unlock governance: %v", err)
	}

	cool, err := c.LockSnapshot(ctx, LockSnapshotInput{SnapshotID: id, LockMode: "compliance", LockDuration: intPtr(100), CoolOffPeriod: intPtr(72)})
	if err != nil || cool.LockState != "compliance-cooloff" || cool.CoolOffPeriod != 72 || cool.CoolOffPeriodExpiresOn == nil {
		t.Fatalf("lock compliance with cooling-off: %+v, %v", cool, err)
	}
	if short, err := c.LockSnapshot(ctx, LockSnapshotInput{SnapshotID: id, LockMode: "compliance", LockDuration: intPtr(50), CoolOffPeriod: intPtr(72)}); err != nil || short.LockDuration != 50 {
		t.Fatalf("shorten during cooling-off: %+v, %v", short, err)
	}
	if err := c.UnlockSnapshot(ctx, id, false); err != nil {
		t.Fatalf("unlock during cooling-off: %v", err)
	}

	comp, err := c.LockSnapshot(ctx, LockSnapshotInput{SnapshotID: id, LockMode: "compliance", LockDuration: intPtr(100)})
	if err != nil || comp.LockState != "compliance" {
		t.Fatalf("lock compliance: %+v, %v", comp, err)
	}
	checkAPIError(t, "unlock, compliance", c.UnlockSnapshot(ctx, id, false), http.StatusBadRequest, CodeSnapshotLocked, "cannot be unlocked")
	_, err = c.LockSnapshot(ctx, LockSnapshotInput{SnapshotID: id, LockMode: "governance", LockDuration: intPtr(1)})
	checkAPIError(t, "to governance, compliance", err, http.StatusBadRequest, CodeSnapshotLocked, "mode")
	checkAPIError(t, "delete, compliance", c.DeleteSnapshot(ctx, id, false), http.StatusBadRequest, CodeSnapshotLocked, "compliance")
	if ext, err := c.LockSnapshot(ctx, LockSnapshotInput{SnapshotID: id, LockMode: "compliance", LockDuration: intPtr(200)}); err != nil || !ext.LockExpiresOn.After(comp.LockExpiresOn.Time) {
		t.Fatalf("extend compliance: %+v, %v", ext, err)
	}
	_, err = c.LockSnapshot(ctx, LockSnapshotInput{SnapshotID: id, LockMode: "compliance", LockDuration: intPtr(150)})
	checkAPIError(t, "shorten, compliance", err, http.StatusBadRequest, CodeSnapshotLocked, "only be extended")

	out, err := c.DescribeLockedSnapshots(ctx, DescribeLockedSnapshotsInput{Filters: []Filter{{Name: "lock-state", Values: []string{"compliance"}}}})
	if err != nil || len(out.Snapshots) != 1 || out.Snapshots[0].SnapshotID != id || out.Snapshots[0].LockDuration != 200 ||
		out.Snapshots[0].OwnerID != DefaultAccountID {
		t.Fatalf("describe compliance locks: %+v, %v", out.Snapshots, err)
	}

	// Another snapshot, locked in compliance mode for one (short) day:
	// deletable once the lock has expired.
	snap2 := env.snapshot(t, CreateSnapshotInput{VolumeID: vol.VolumeID})
	env.waitCompleted(t, snap2.SnapshotID)
	id = snap2.SnapshotID
	if _, err := c.LockSnapshot(ctx, LockSnapshotInput{SnapshotID: id, LockMode: "compliance", LockDuration: intPtr(1)}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		out, err := c.DescribeLockedSnapshots(ctx, DescribeLockedSnapshotsInput{SnapshotIDs: []string{id}})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Snapshots) == 1 && out.Snapshots[0].LockState == "expired" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the lock never expired: %+v", out.Snapshots)
		}
	}
	if err := c.DeleteSnapshot(ctx, id, false); err != nil {
		t.Fatalf("delete after expiry: %v", err)
	}
}

// TestSnapshotLockStates: a pending snapshot can be locked (and then not
// deleted); a failed one cannot be locked.
func TestSnapshotLockStates(t *testing.T) {
	store := lockOnlyStore{newFailingStore(t)} // snapshots stay pending
	env := newTestEnvWith(t, cow.Options{SnapshotStore: store, FlushDeadline: time.Hour, LockDay: lockDay}, Options{})
	ctx := context.Background()
	vol := env.create(t, CreateVolumeInput{Size: 1})
	pending := env.snapshot(t, CreateSnapshotInput{VolumeID: vol.VolumeID})
	if si, err := env.engine.SnapshotInfo(pending.SnapshotID); err != nil || si.State != cow.SnapshotPending {
		t.Fatalf("snapshot %+v, %v; want pending", si, err)
	}
	if _, err := env.client.LockSnapshot(ctx, LockSnapshotInput{SnapshotID: pending.SnapshotID, LockMode: "governance", LockDuration: intPtr(100)}); err != nil {
		t.Fatalf("lock a pending snapshot: %v", err)
	}
	checkAPIError(t, "delete a locked snapshot", env.client.DeleteSnapshot(ctx, pending.SnapshotID, false), 400, CodeSnapshotLocked, pending.SnapshotID)
	if err := env.client.UnlockSnapshot(ctx, pending.SnapshotID, false); err != nil {
		t.Fatal(err)
	}
	if err := env.client.DeleteSnapshot(ctx, pending.SnapshotID, false); err != nil {
		t.Fatalf("delete once unlocked: %v", err)
	}
}

func TestSnapshotLockFailedSnapshot(t *testing.T) {
	store := newFailingStore(t)
	env := newTestEnvWith(t, cow.Options{SnapshotStore: store, FlushDeadline: 20 * time.Millisecond}, Options{})
	vol := env.create(t, CreateVolumeInput{Size: 1})
	s := env.snapshot(t, CreateSnapshotInput{VolumeID: vol.VolumeID})
	env.waitState(t, s.SnapshotID, cow.SnapshotError)
	_, err := env.client.LockSnapshot(context.Background(), LockSnapshotInput{SnapshotID: s.SnapshotID, LockMode: "governance", LockDuration: intPtr(1)})
	checkAPIError(t, "lock a failed snapshot", err, 400, CodeIncorrectState, "not pending or completed")
}

// lockOnlyStore is a failingStore that stores lock objects only.
type lockOnlyStore struct{ *failingStore }

func (s lockOnlyStore) Put(ctx context.Context, key string, data []byte) error {
	if strings.HasSuffix(key, "/lock") {
		return s.Dir.Put(ctx, key, data)
	}
	return s.failingStore.Put(ctx, key, data)
}
