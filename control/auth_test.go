package control

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cowvol/cowvol/cow"
)

func TestPolicyAccess(t *testing.T) {
	p := Policy{AllowUIDs: []uint32{1000}, AllowGIDs: []uint32{2000}, ReadOnlyGIDs: []uint32{3000}}
	self := uint32(os.Geteuid())
	for _, tc := range []struct {
		name   string
		caller Caller
		want   Access
	}{
		{"root", Caller{Unix: true, UID: 0, GID: 0}, AccessFull},
		{"the daemon's own user", Caller{Unix: true, UID: self, GID: 7}, AccessFull},
		{"allowed uid", Caller{Unix: true, UID: 1000, GID: 1000}, AccessFull},
		{"allowed primary gid", Caller{Unix: true, UID: 1001, GID: 2000}, AccessFull},
		{"allowed supplementary gid", Caller{Unix: true, UID: 1001, GID: 1001, Groups: []uint32{5, 2000}}, AccessFull},
		{"read-only primary gid", Caller{Unix: true, UID: 1002, GID: 3000}, AccessReadOnly},
		{"read-only supplementary gid", Caller{Unix: true, UID: 1002, GID: 1002, Groups: []uint32{3000}}, AccessReadOnly},
		{"allowed and read-only: the wider wins", Caller{Unix: true, UID: 1002, GID: 3000, Groups: []uint32{2000}}, AccessFull},
		{"stranger", Caller{Unix: true, UID: 65534, GID: 65534, Groups: []uint32{65534}}, AccessNone},
		{"sigv4 full key", Caller{AccessKeyID: "AKIAEXAMPLE00001", KeyAccess: AccessFull}, AccessFull},
		{"sigv4 read-only key", Caller{AccessKeyID: "AKIAEXAMPLE00002", KeyAccess: AccessReadOnly}, AccessReadOnly},
		{"no identity at all", Caller{}, AccessNone},
	} {
		if self == tc.caller.UID && tc.name == "stranger" {
			continue // the test runs as uid 65534
		}
		if got := p.access(tc.caller); got != tc.want {
			t.Errorf("%s: access %v, want %v", tc.name, got, tc.want)
		}
	}
	if got := (Policy{}).access(Caller{Unix: true, UID: 1000, GID: 1000}); got != AccessNone && self != 1000 {
		t.Errorf("the empty policy gives uid 1000 %v, want none", got)
	}
}

// TestAuthorization sends every operation, with and without DryRun, as
// callers of each access level, and checks who is refused, who gets
// DryRunOperation, and that a refused request changes nothing.
func TestAuthorization(t *testing.T) {
	eng, err := cow.Open(cow.Options{DataDir: t.TempDir(), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	vol, err := eng.CreateVolume(context.Background(), cow.CreateVolumeParams{Size: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := eng.CreateSnapshot(context.Background(), cow.CreateSnapshotParams{VolumeID: vol.ID})
	if err != nil {
		t.Fatal(err)
	}
	// Completed, so that a dry run of CopySnapshot would succeed.
	for si, _ := eng.SnapshotInfo(snap.ID); si.State != cow.SnapshotCompleted; si, _ = eng.SnapshotInfo(snap.ID) {
		time.Sleep(5 * time.Millisecond)
	}
	srv := NewServer(eng, Options{Logger: quietLogger(), Policy: Policy{ReadOnlyGIDs: []uint32{3000}}})
	as := func(c Caller) http.Handler {
		return srv.handler(func(*http.Request, []byte) (Caller, *APIError) { return c, nil })
	}
	stranger := Caller{Unix: true, UID: 4242, GID: 4242, PID: 99}
	reader := Caller{Unix: true, UID: 4243, GID: 4243, Groups: []uint32{3000}}
	root := Caller{Unix: true}

	requests := []struct {
		action   string
		params   string
		readOnly bool
		// unsupported: what a full-access caller gets instead of
		// DryRunOperation (the real call is refused too).
		unsupported string
	}{
		{"CreateVolume", "Size=1&AvailabilityZone=us-east-1a", false, ""},
		{"DescribeVolumes", "", true, ""},
		{"DeleteVolume", "VolumeId=" + vol.ID, false, ""},
		{"DescribeVolumeStatus", "", true, ""},
		{"CreateSnapshot", "VolumeId=" + vol.ID, false, ""},
		{"DescribeSnapshots", "", true, ""},
		{"DeleteSnapshot", "SnapshotId=" + snap.ID, false, ""},
		{"CopySnapshot", "SourceSnapshotId=" + snap.ID, false, ""},
		{"CreateSnapshots", "VolumeId.1=" + vol.ID, false, ""},
		{"DescribeVolumeAttribute", "VolumeId=" + vol.ID + "&Attribute=autoEnableIO", true, ""},
		{"DescribeSnapshotAttribute", "SnapshotId=" + snap.ID + "&Attribute=createVolumePermission", true, ""},
		{"ModifySnapshotAttribute", "SnapshotId=" + snap.ID + "&Attribute=createVolumePermission&OperationType=add&UserId.1=111122223333",
			false, ""},
		{"LockSnapshot", "SnapshotId=" + snap.ID + "&LockMode=governance&LockDuration=1", false, ""},
		{"UnlockSnapshot", "SnapshotId=" + snap.ID, false, ""},
		{"DescribeLockedSnapshots", "", true, ""},
		{"CreateTags", "ResourceId.1=" + vol.ID + "&Tag.1.Key=k", false, ""},
		{"DeleteTags", "ResourceId.1=" + vol.ID + "&Tag.1.Key=k", false, ""},
		{"DescribeTags", "", true, ""},
		{"DescribeAvailabilityZones", "", true, ""},
		{"DescribeRegions", "", true, ""},
		{"ModifyVolume", "VolumeId=" + vol.ID + "&Size=2", false, ""},
		{"DescribeVolumesModifications", "", true, ""},
		// This server has no Host: attaching is refused.
		{"AttachVolume", "VolumeId=" + vol.ID + "&InstanceId=i-0123456789abcdef0&Device=/dev/sdf", false, CodeUnsupportedOperation},
		{"DetachVolume", "VolumeId=" + vol.ID, false, CodeUnsupportedOperation},
		{"ListSnapshotsInRecycleBin", "", true, ""},
		// Not in the recycle bin: a dry run says so, as the real call would.
		{"RestoreSnapshotFromRecycleBin", "SnapshotId=" + snap.ID, false, CodeInvalidSnapshotNotFound},
		// This engine has no archive store: archiving is refused.
		{"ModifySnapshotTier", "SnapshotId=" + snap.ID + "&StorageTier=archive", false, CodeInvalidParameterValue},
		{"RestoreSnapshotTier", "SnapshotId=" + snap.ID + "&TemporaryRestoreDays=1", false, CodeInvalidParameterValue},
		{"DescribeSnapshotTierStatus", "", true, ""},
		{"EnableFastSnapshotRestores", "AvailabilityZone.1=us-east-1a&SourceSnapshotId.1=" + snap.ID, false, ""},
		{"DisableFastSnapshotRestores", "AvailabilityZone.1=us-east-1a&SourceSnapshotId.1=" + snap.ID, false, ""},
		{"DescribeFastSnapshotRestores", "", true, ""},
	}
	if len(requests) != len(srv.actions) {
		t.Fatalf("the test covers %d actions, the server has %d", len(requests), len(srv.actions))
	}
	for _, rq := range requests {
		if srv.actions[rq.action].readOnly != rq.readOnly {
			t.Errorf("%s: readOnly %v, want %v", rq.action, srv.actions[rq.action].readOnly, rq.readOnly)
		}
		for _, dry := range []bool{false, true} {
			body := "Action=" + rq.action + v
			if rq.params != "" {
				body += "&" + rq.params
			}
			if dry {
				body += "&DryRun=true"
			}
			for _, tc := range []struct {
				who    string
				caller Caller
				status int
				code   string
			}{
				{"stranger", stranger, http.StatusForbidden, CodeUnauthorizedOperation},
				{"reader", reader, http.StatusForbidden, CodeUnauthorizedOperation},
				{"root", root, http.StatusPreconditionFailed, CodeDryRunOperation},
			} {
				if tc.who == "reader" && rq.readOnly {
					tc.status, tc.code = http.StatusOK, ""
					if dry {
						tc.status, tc.code = http.StatusPreconditionFailed, CodeDryRunOperation
					}
				}
				if tc.who == "root" && !dry {
					continue // the real thing: below, once the refusals are checked
				}
				if tc.who == "root" && rq.unsupported != "" {
					tc.status, tc.code = http.StatusBadRequest, rq.unsupported
				}
				w := httptest.NewRecorder()
				r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				as(tc.caller).ServeHTTP(w, r)
				got := w.Body.String()
				if w.Code != tc.status || (tc.code != "" && !strings.Contains(got, "<Code>"+tc.code+"</Code>")) {
					t.Errorf("%s as %s (DryRun %v): %d %s, want %d %s", rq.action, tc.who, dry, w.Code, got, tc.status, tc.code)
				}
				if tc.code == CodeUnauthorizedOperation && !strings.Contains(got, "uid "+strconv.FormatUint(uint64(tc.caller.UID), 10)) {
					t.Errorf("%s as %s: the refusal does not say who was refused: %s", rq.action, tc.who, got)
				}
			}
		}
	}
	// Nothing the refused or dry-run requests asked for happened.
	vols, _ := eng.DescribeVolumes(context.Background())
	snaps, _ := eng.DescribeSnapshots(context.Background())
	if len(vols) != 1 || vols[0].ID != vol.ID || len(snaps) != 1 || snaps[0].ID != snap.ID {
		t.Errorf("after refused and dry-run requests: volumes %v, snapshots %v; want only %s and %s", vols, snaps, vol.ID, snap.ID)
	}
}

// TestPeerCredentials checks the kernel's word reaches the handler: over a
// real unix socket, the caller is this process.
func TestPeerCredentials(t *testing.T) {
	path := socketDir(t) + "/p.sock"
	ln, err := ListenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan Caller, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		caller, err := peerCallerOf(c)
		if err != nil {
			t.Errorf("peer credentials: %v", err)
		}
		got <- caller
	}()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	caller := <-got
	groups, _ := os.Getgroups()
	if !caller.Unix || caller.UID != uint32(os.Getuid()) || caller.GID != uint32(os.Getgid()) || int(caller.PID) != os.Getpid() {
		t.Errorf("peer %+v, want uid %d gid %d pid %d", caller, os.Getuid(), os.Getgid(), os.Getpid())
	}
	if len(caller.Groups) != len(groups) {
		t.Errorf("peer groups %v, want %v", caller.Groups, groups)
	}
}

// peerCallerOf is what peerContext puts in a connection's context.
func peerCallerOf(c net.Conn) (Caller, error) {
	return callerFrom(peerContext(context.Background(), c))
}

// TestProfiling: with Profiling on, /debug/pprof/ answers full-access peers
// of the unix socket, and no one else.
func TestProfiling(t *testing.T) {
	env := newTestEnvWith(t, cow.Options{}, Options{Profiling: true})
	resp, err := env.raw.Get("http://cowvol/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), "goroutine profile:") {
		t.Errorf("goroutine profile as root: %d %.200s", resp.StatusCode, b)
	}

	// A request without a unix peer (as on TCP) is refused.
	srv := NewServer(env.engine, Options{Logger: quietLogger(), Profiling: true})
	w := httptest.NewRecorder()
	srv.handler(rootCaller).ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/debug/pprof/heap", nil))
	if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), CodeUnauthorizedOperation) {
		t.Errorf("profile without a unix peer: %d %s", w.Code, w.Body)
	}
	// Off, the path is just a request without an Action.
	srv = NewServer(env.engine, Options{Logger: quietLogger()})
	w = httptest.NewRecorder()
	srv.handler(rootCaller).ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/debug/pprof/heap", nil))
	if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), CodeMissingAction) {
		t.Errorf("profile with profiling off: %d %s", w.Code, w.Body)
	}
}
