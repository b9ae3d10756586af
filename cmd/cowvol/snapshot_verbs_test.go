package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cowvol/cowvol/control"
	"github.com/cowvol/cowvol/cow"
	"github.com/cowvol/cowvol/cow/snapstore"
)

// failingStore is a snapshot store whose Puts fail while fail is set, so
// snapshots stay pending (or end in error past the FlushDeadline).
type failingStore struct {
	*snapstore.Dir
	fail atomic.Bool
}

func newFailingStore(t *testing.T) *failingStore {
	t.Helper()
	d, err := snapstore.OpenDir(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	fs := &failingStore{Dir: d}
	fs.fail.Store(true)
	return fs
}

func (s *failingStore) Put(ctx context.Context, key string, data []byte) error {
	if s.fail.Load() {
		return errors.New("injected: store unavailable")
	}
	return s.Dir.Put(ctx, key, data)
}

// cliCase is one command line and what it must do.
type cliCase struct {
	args     []string
	code     int
	inStderr string
}

func runCases(t *testing.T, sock string, cases []cliCase) {
	t.Helper()
	for _, tt := range cases {
		out, errOut, code := run(t, append([]string{"--socket", sock}, tt.args...)...)
		if code != tt.code || !strings.Contains(errOut, tt.inStderr) {
			t.Errorf("cowvol %v: exit %d, stdout %q, stderr %q; want exit %d containing %q", tt.args, code, out, errOut, tt.code, tt.inStderr)
		}
		if tt.code != 0 && out != "" {
			t.Errorf("cowvol %v failed yet printed %q", tt.args, out)
		}
	}
}

func TestSnapshotVerbs(t *testing.T) {
	sock := startDaemon(t)
	var vol struct{ VolumeId string }
	json.Unmarshal([]byte(runOK(t, "--socket", sock, "create-volume", "--size", "1GiB")), &vol)

	// create-snapshot prints the snapshot as aws does.
	var snap map[string]any
	out := runOK(t, "--socket", sock, "create-snapshot", "--volume-id", vol.VolumeId, "--description", "nightly", "--tag", "k=a,b")
	if err := json.Unmarshal([]byte(out), &snap); err != nil {
		t.Fatalf("create-snapshot: %v\n%s", err, out)
	}
	want := []string{"Description", "Encrypted", "OwnerId", "Progress", "SnapshotId", "StartTime", "State", "StorageTier",
		"Tags", "VolumeId", "VolumeSize"}
	// An empty volume's snapshot may complete before the answer.
	if snap["State"] == "completed" {
		want = append([]string{"CompletionTime"}, want...)
	}
	if got := keys(snap); !reflect.DeepEqual(got, want) {
		t.Errorf("create-snapshot keys %v, want %v", got, want)
	}
	wantTags := []any{map[string]any{"Key": "k", "Value": "a,b"}}
	if snap["Description"] != "nightly" || snap["Encrypted"] != false || snap["OwnerId"] != "000000000000" ||
		snap["VolumeId"] != vol.VolumeId || snap["VolumeSize"] != 1.0 || snap["StorageTier"] != "standard" ||
		!reflect.DeepEqual(snap["Tags"], wantTags) {
		t.Errorf("create-snapshot printed %v", snap)
	}
	id := snap["SnapshotId"].(string)

	// wait prints nothing on stdout and plain progress lines on stderr
	// (not a terminal here).
	out, errOut, code := run(t, "--socket", sock, "wait", "snapshot-completed", "--snapshot-ids", id)
	if code != 0 || out != "" || !strings.Contains(errOut, id+" completed 100%\n") {
		t.Errorf("wait: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	// create-snapshot --wait prints the completed snapshot.
	out, progress, code := run(t, "--socket", sock, "create-snapshot", "--volume-id", vol.VolumeId, "--wait")
	var done map[string]any
	if err := json.Unmarshal([]byte(out), &done); err != nil || code != 0 {
		t.Fatalf("create-snapshot --wait: exit %d, %v", code, err)
	}
	if !strings.Contains(progress, "completed 100%") {
		t.Errorf("create-snapshot --wait showed no progress on stderr: %q", progress)
	}
	want = []string{"CompletionTime", "Description", "Encrypted", "FullSnapshotSizeInBytes", "OwnerId", "Progress",
		"SnapshotId", "StartTime", "State", "StorageTier", "VolumeId", "VolumeSize"}
	if got := keys(done); !reflect.DeepEqual(got, want) {
		t.Errorf("create-snapshot --wait keys %v, want %v", got, want)
	}
	if done["State"] != "completed" || done["Progress"] != "100%" || done["FullSnapshotSizeInBytes"] != 0.0 {
		t.Errorf("create-snapshot --wait printed %v", done)
	}
	id2 := done["SnapshotId"].(string)

	// describe-snapshots: filters, owners, IDs, pages.
	describe := func(args ...string) []string {
		t.Helper()
		var res struct {
			Snapshots []map[string]any
			NextToken string
		}
		out := runOK(t, append([]string{"--socket", sock, "describe-snapshots"}, args...)...)
		if err := json.Unmarshal([]byte(out), &res); err != nil || res.Snapshots == nil {
			t.Fatalf("describe-snapshots %v: %v\n%s", args, err, out)
		}
		var ids []string
		for _, s := range res.Snapshots {
			ids = append(ids, s["SnapshotId"].(string))
		}
		if res.NextToken != "" {
			ids = append(ids, "next:"+res.NextToken)
		}
		return ids
	}
	both := []string{id, id2}
	if id2 < id {
		both = []string{id2, id}
	}
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{nil, both},
		{[]string{"--filter", "tag:k=a*"}, []string{id}},
		{[]string{"--filter", "tag:k=x,a?b"}, []string{id}}, // values x and a?b
		{[]string{"--filter", "description=nightly", "--owner-ids", "self"}, []string{id}},
		{[]string{"--filters", "Name=status,Values=pending,error"}, nil},
		{[]string{"--filters", "Name=volume-id,Values=" + vol.VolumeId, "--filter", "tag-key=k"}, []string{id}},
		{[]string{"--owner-ids", "amazon"}, nil},
		{[]string{"--owner-ids", "amazon,self"}, both},
		{[]string{"--snapshot-ids", id, id2}, both},
		{[]string{"--snapshot-ids", id2 + "," + id}, both},
	} {
		if got := describe(tt.args...); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("describe-snapshots %v: %v, want %v", tt.args, got, tt.want)
		}
	}
	// Pages of 5 over 7 snapshots.
	for range 5 {
		if _, errOut, code := run(t, "--socket", sock, "create-snapshot", "--volume-id", vol.VolumeId, "--wait"); code != 0 {
			t.Fatalf("create-snapshot --wait: exit %d, %s", code, errOut)
		}
	}
	first := describe("--max-results", "5")
	if len(first) != 6 || !strings.HasPrefix(first[5], "next:") {
		t.Fatalf("first page: %v", first)
	}
	if rest := describe("--max-results", "5", "--next-token", strings.TrimPrefix(first[5], "next:")); len(rest) != 2 {
		t.Errorf("second page: %v", rest)
	}

	// create-volume --snapshot-id takes the snapshot's size.
	var rv map[string]any
	json.Unmarshal([]byte(runOK(t, "--socket", sock, "create-volume", "--snapshot-id", id)), &rv)
	if rv["SnapshotId"] != id || rv["Size"] != 1.0 || rv["SizeBytes"] != float64(1<<30) || rv["State"] != "available" {
		t.Errorf("create-volume --snapshot-id printed %v", rv)
	}
	json.Unmarshal([]byte(runOK(t, "--socket", sock, "create-volume", "--snapshot-id", id, "--size", "2GiB")), &rv)
	if rv["SnapshotId"] != id || rv["Size"] != 2.0 {
		t.Errorf("create-volume --snapshot-id --size 2GiB printed %v", rv)
	}

	if out := runOK(t, "--socket", sock, "delete-snapshot", "--snapshot-id", id); out != "" {
		t.Errorf("delete-snapshot printed %q", out)
	}

	runCases(t, sock, []cliCase{
		{[]string{"create-snapshot"}, exitUsage, "--volume-id is required"},
		{[]string{"create-snapshot", "--volume-id", vol.VolumeId, "--tag", "novalue"}, exitUsage, "KEY=VALUE"},
		{[]string{"create-snapshot", "--volume-id", "vol-00000000000000000"}, exitAPIError,
			"An error occurred (InvalidVolume.NotFound) when calling the CreateSnapshot operation: The volume 'vol-00000000000000000' does not exist.\n"},
		{[]string{"create-snapshot", "--volume-id", "vol-1"}, exitAPIError, "(InvalidVolumeID.Malformed) when calling the CreateSnapshot operation"},
		{[]string{"create-snapshot", "--volume-id", vol.VolumeId, "--description", strings.Repeat("d", 256)}, exitAPIError, "(InvalidParameterValue)"},
		{[]string{"create-snapshot", "--volume-id", vol.VolumeId, "--outpost-arn", "arn:aws:outposts:us-east-1:123456789012:outpost/op-0123456789abcdef0"},
			exitAPIError, "same Outpost as the volume"},
		{[]string{"create-snapshot", "--volume-id", vol.VolumeId, "--dry-run"}, exitAPIError,
			"An error occurred (DryRunOperation) when calling the CreateSnapshot operation: Request would have succeeded, but DryRun flag is set."},
		// A --freeze that is not the volume's mount point is refused before
		// anything is frozen or snapshotted, dry run or not.
		{[]string{"create-snapshot", "--volume-id", vol.VolumeId, "--dry-run", "--freeze", "/nonexistent/mount"}, exitUsage,
			"cowvol: create-snapshot: --freeze /nonexistent/mount: no such directory"},
		{[]string{"create-snapshot", "--volume-id", vol.VolumeId, "--freeze", "/nonexistent/mount"}, exitUsage,
			"cowvol: create-snapshot: --freeze /nonexistent/mount: no such directory"},
		{[]string{"delete-snapshot"}, exitUsage, "--snapshot-id is required"},
		{[]string{"delete-snapshot", "--snapshot-id", id}, exitAPIError,
			"An error occurred (InvalidSnapshot.NotFound) when calling the DeleteSnapshot operation: The snapshot '" + id + "' does not exist."},
		{[]string{"delete-snapshot", "--snapshot-id", id2, "--dry-run"}, exitAPIError, "(DryRunOperation)"},
		{[]string{"describe-snapshots", "--snapshot-ids", id}, exitAPIError, "(InvalidSnapshot.NotFound) when calling the DescribeSnapshots operation"},
		{[]string{"describe-snapshots", "--filter", "colour=red"}, exitAPIError, "(InvalidParameterValue)"},
		{[]string{"describe-snapshots", "--filters", "status=completed"}, exitUsage, "Name=NAME,Values="},
		{[]string{"describe-snapshots", "--max-results", "3"}, exitAPIError, "maxResults"},
		{[]string{"create-volume", "--snapshot-id", id}, exitAPIError, "(InvalidSnapshot.NotFound) when calling the CreateVolume operation"},
		{[]string{"create-volume", "--snapshot-id", id2, "--size", "512MiB"}, exitAPIError, "(InvalidParameterValue)"},
		{[]string{"wait", "snapshot-completed", "--snapshot-ids", id}, exitWaiter,
			"Waiter SnapshotCompleted failed: An error occurred (InvalidSnapshot.NotFound): The snapshot '" + id + "' does not exist.\n"},
		{[]string{"wait", "snapshot-completed"}, exitUsage, "--snapshot-ids is required"},
		{[]string{"wait"}, 0, ""},
	})
	// The refused create-snapshot calls made nothing.
	if got := describe("--filter", "volume-id="+vol.VolumeId); len(got) != 6 {
		t.Errorf("%d snapshots after the refused calls, want 6: %v", len(got), got)
	}
}

// TestSnapshotVerbsPending: with a store that refuses every object,
// snapshots stay pending; the waiter times out, creating a volume from
// one fails, and with a flush deadline they end in error.
func TestSnapshotVerbsPending(t *testing.T) {
	sock := startDaemonWith(t, cow.Options{SnapshotStore: newFailingStore(t)})
	var vol struct{ VolumeId string }
	json.Unmarshal([]byte(runOK(t, "--socket", sock, "create-volume", "--size", "1GiB")), &vol)
	var snap map[string]any
	json.Unmarshal([]byte(runOK(t, "--socket", sock, "create-snapshot", "--volume-id", vol.VolumeId)), &snap)
	want := []string{"Description", "Encrypted", "OwnerId", "Progress", "SnapshotId", "StartTime", "State", "StorageTier",
		"VolumeId", "VolumeSize"}
	if got := keys(snap); !reflect.DeepEqual(got, want) || snap["State"] != "pending" || snap["Progress"] != "0%" {
		t.Errorf("pending create-snapshot printed %v", snap)
	}
	id := snap["SnapshotId"].(string)
	start := time.Now()
	out, errOut, code := run(t, "--socket", sock, "wait", "snapshot-completed", "--snapshot-ids", id, "--interval", "20ms", "--timeout", "300ms")
	if code != exitWaiter || out != "" || errOut != id+" pending 0%\nWaiter SnapshotCompleted failed: Max attempts exceeded\n" {
		t.Errorf("wait on a pending snapshot: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 5*time.Second {
		t.Errorf("wait --timeout 300ms took %v", d)
	}
	runCases(t, sock, []cliCase{
		{[]string{"create-volume", "--snapshot-id", id}, exitAPIError,
			"An error occurred (IncorrectState) when calling the CreateVolume operation: Snapshot '" + id + "' is not 'completed'.\n"},
		{[]string{"delete-volume", "--volume-id", vol.VolumeId}, exitAPIError, "(IncorrectState) when calling the DeleteVolume operation: Volume " + vol.VolumeId + " has 1 pending snapshot(s)"},
	})
	for range cow.MaxPendingSnapshots - 1 {
		runOK(t, "--socket", sock, "create-snapshot", "--volume-id", vol.VolumeId)
	}
	runCases(t, sock, []cliCase{
		{[]string{"create-snapshot", "--volume-id", vol.VolumeId}, exitAPIError, "(ConcurrentSnapshotLimitExceeded) when calling the CreateSnapshot operation"},
	})
}

func TestWaitSnapshotError(t *testing.T) {
	sock := startDaemonWith(t, cow.Options{SnapshotStore: newFailingStore(t), FlushDeadline: 20 * time.Millisecond})
	var vol struct{ VolumeId string }
	json.Unmarshal([]byte(runOK(t, "--socket", sock, "create-volume", "--size", "1GiB")), &vol)
	out, errOut, code := run(t, "--socket", sock, "create-snapshot", "--volume-id", vol.VolumeId, "--wait", "--description", "x")
	if code != exitWaiter || out != "" ||
		!strings.Contains(errOut, "Waiter SnapshotCompleted failed: Waiter encountered a terminal failure state: snapshot snap-") ||
		!strings.Contains(errOut, "injected: store unavailable") {
		t.Fatalf("create-snapshot --wait of a failing snapshot: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	var res struct{ Snapshots []map[string]any }
	json.Unmarshal([]byte(runOK(t, "--socket", sock, "describe-snapshots", "--filter", "status=error")), &res)
	if len(res.Snapshots) != 1 || !strings.Contains(res.Snapshots[0]["StateMessage"].(string), "injected") ||
		res.Snapshots[0]["CompletionTime"] != nil || res.Snapshots[0]["FullSnapshotSizeInBytes"] != nil {
		t.Errorf("describe-snapshots of a failed snapshot: %v", res.Snapshots)
	}
	id := res.Snapshots[0]["SnapshotId"].(string)
	runCases(t, sock, []cliCase{
		{[]string{"wait", "snapshot-completed", "--snapshot-ids", id}, exitWaiter,
			"Waiter SnapshotCompleted failed: Waiter encountered a terminal failure state: snapshot " + id + " is in state error"},
	})
}

// TestWhileFrozenAlwaysThaws: the file system is thawed whatever the
// snapshot call does, and nothing runs when the freeze fails.
func TestWhileFrozenAlwaysThaws(t *testing.T) {
	for _, tt := range []struct {
		name      string
		freezeErr error
		fnErr     error
		thawErr   error
		wantRun   bool
		wantThaw  bool
		wantErr   error
	}{
		{"success", nil, nil, nil, true, true, nil},
		{"the call fails", nil, errors.New("daemon said no"), nil, true, true, errors.New("daemon said no")},
		{"the thaw fails", nil, nil, errors.New("EINVAL"), true, true, errors.New("EINVAL")},
		{"the call and the thaw fail", nil, errors.New("daemon said no"), errors.New("EINVAL"), true, true, errors.New("daemon said no\nEINVAL")},
		{"the freeze fails", errors.New("EOPNOTSUPP"), nil, nil, false, false, errors.New("EOPNOTSUPP")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var ran bool
			var frozen, thaws int
			fz := fsFreezer{
				freeze: func(string) (*os.File, error) {
					if tt.freezeErr != nil {
						return nil, tt.freezeErr
					}
					frozen++
					return os.Open(os.DevNull)
				},
				thaw: func(f *os.File) error {
					thaws++
					f.Close()
					return tt.thawErr
				},
				exit: func(code int) { t.Errorf("exit(%d) without a signal", code) },
			}
			err := fz.whileFrozen([]string{"/mnt/x"}, func() error {
				ran = true
				if frozen != 1 || thaws != 0 {
					t.Errorf("the call ran with %d freezes and %d thaws", frozen, thaws)
				}
				return tt.fnErr
			})
			if ran != tt.wantRun || (thaws == 1) != tt.wantThaw || thaws > 1 {
				t.Errorf("ran %v, %d thaws; want ran %v, thawed %v", ran, thaws, tt.wantRun, tt.wantThaw)
			}
			if (err == nil) != (tt.wantErr == nil) || (err != nil && err.Error() != tt.wantErr.Error()) {
				t.Errorf("err %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// TestWhileFrozenSignal: SIGINT or SIGTERM during the call thaws the file
// system before the process exits.
func TestWhileFrozenSignal(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			var thaws atomic.Int32
			exited := make(chan int, 1)
			fz := fsFreezer{
				freeze: func(string) (*os.File, error) { return os.Open(os.DevNull) },
				thaw:   func(f *os.File) error { thaws.Add(1); return f.Close() },
				exit: func(code int) {
					if thaws.Load() != 1 {
						t.Errorf("exit before the thaw")
					}
					exited <- code
				},
			}
			err := fz.whileFrozen([]string{"/mnt/x"}, func() error {
				if err := syscall.Kill(os.Getpid(), sig); err != nil {
					t.Fatal(err)
				}
				select {
				case code := <-exited:
					if code != exitSignalled {
						t.Errorf("exit code %d, want %d", code, exitSignalled)
					}
				case <-time.After(10 * time.Second):
					t.Error("no exit after the signal")
				}
				return nil
			})
			if err != nil || thaws.Load() != 1 {
				t.Errorf("err %v, %d thaws; want one", err, thaws.Load())
			}
		})
	}
}

// TestProgressDisplay: plain lines only on change; on a terminal, one bar
// per snapshot, redrawn in place.
func TestProgressDisplay(t *testing.T) {
	snaps := func(p1, p2 string) []control.Snapshot {
		return []control.Snapshot{
			{SnapshotID: "snap-1", Status: "pending", Progress: p1},
			{SnapshotID: "snap-2", Status: "pending", Progress: p2},
		}
	}
	var plain strings.Builder
	p := newProgress(&plain)
	p.show(snaps("0%", "0%"))
	p.show(snaps("0%", "0%"))
	p.show(snaps("40%", "0%"))
	if want := "snap-1 pending 0%\nsnap-2 pending 0%\nsnap-1 pending 40%\n"; plain.String() != want {
		t.Errorf("plain progress %q, want %q", plain.String(), want)
	}

	var tty strings.Builder
	p = &progress{w: &tty, tty: true, last: map[string]string{}}
	p.show(snaps("0%", "50%"))
	p.show(snaps("100%", "50%"))
	lines := strings.Split(tty.String(), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[2], "\033[2A\r\033[K") ||
		!strings.Contains(lines[1], "snap-2 ["+strings.Repeat("#", 20)+strings.Repeat(".", 20)+"]  50% pending") ||
		!strings.Contains(lines[2], "snap-1 ["+strings.Repeat("#", 40)+"] 100% pending") {
		t.Errorf("terminal progress:\n%q", tty.String())
	}
}

// TestCreateSnapshotFreeze: create-snapshot --freeze freezes before the
// call and thaws after it, whether the call succeeds or fails.
func TestCreateSnapshotFreeze(t *testing.T) {
	sock := startDaemon(t)
	var vol struct{ VolumeId string }
	json.Unmarshal([]byte(runOK(t, "--socket", sock, "create-volume", "--size", "1GiB")), &vol)
	var events []string
	old := snapshotFreezer
	t.Cleanup(func() { snapshotFreezer = old })
	snapshotFreezer = fsFreezer{
		freeze: func(dir string) (*os.File, error) { events = append(events, "freeze "+dir); return os.Open(os.DevNull) },
		thaw:   func(f *os.File) error { events = append(events, "thaw"); return f.Close() },
	}
	out := runOK(t, "--socket", sock, "create-snapshot", "--volume-id", vol.VolumeId, "--freeze", "/mnt/x")
	if !strings.Contains(out, `"SnapshotId": "snap-`) || strings.Join(events, ",") != "freeze /mnt/x,thaw" {
		t.Errorf("create-snapshot --freeze: %q, events %v", out, events)
	}
	events = nil
	runCases(t, sock, []cliCase{{[]string{"create-snapshot", "--volume-id", "vol-00000000000000000", "--freeze", "/mnt/x"},
		exitAPIError, "InvalidVolume.NotFound"}})
	if strings.Join(events, ",") != "freeze /mnt/x,thaw" {
		t.Errorf("failed create-snapshot --freeze: events %v", events)
	}

	// Several mount points: checked, then frozen in order and thawed in
	// reverse; a failed freeze thaws those frozen and takes no snapshot.
	dirOf := map[*os.File]string{}
	failOn := ""
	snapshotFreezer = fsFreezer{
		check: func(dirs []string, sc freezeScope) error {
			events = append(events, "check "+strings.Join(dirs, " ")+" of "+strings.Join(sc.volumeIDs, " "))
			if sc.socket != sock {
				t.Errorf("checked against socket %s, want %s", sc.socket, sock)
			}
			return nil
		},
		freeze: func(dir string) (*os.File, error) {
			if dir == failOn {
				return nil, errors.New("freeze " + dir + ": EBUSY")
			}
			events = append(events, "freeze "+dir)
			f, err := os.Open(os.DevNull)
			dirOf[f] = dir
			return f, err
		},
		thaw: func(f *os.File) error { events = append(events, "thaw "+dirOf[f]); return f.Close() },
	}
	snaps := func() int {
		var out struct{ Snapshots []any }
		json.Unmarshal([]byte(runOK(t, "--socket", sock, "describe-snapshots", "--filter", "volume-id="+vol.VolumeId)), &out)
		return len(out.Snapshots)
	}
	before := snaps()
	events = nil
	runOK(t, "--socket", sock, "create-snapshot", "--volume-id", vol.VolumeId, "--freeze", "/mnt/a", "--freeze", "/mnt/b")
	if got := strings.Join(events, ","); got != "check /mnt/a /mnt/b of "+vol.VolumeId+",freeze /mnt/a,freeze /mnt/b,thaw /mnt/b,thaw /mnt/a" {
		t.Errorf("two --freeze: events %s", got)
	}
	events, failOn = nil, "/mnt/b"
	runCases(t, sock, []cliCase{{[]string{"create-snapshot", "--volume-id", vol.VolumeId, "--freeze", "/mnt/a", "--freeze", "/mnt/b"},
		exitFailure, "freeze /mnt/b: EBUSY"}})
	if got := strings.Join(events, ","); got != "check /mnt/a /mnt/b of "+vol.VolumeId+",freeze /mnt/a,thaw /mnt/a" {
		t.Errorf("second freeze fails: events %s", got)
	}
	if n := snaps(); n != before+1 {
		t.Errorf("%d snapshots, want %d: the failed freeze took one", n, before+1)
	}

	// create-snapshots: checked against every volume it snapshots, all
	// frozen around the one call, all thawed; a refused check freezes
	// nothing and snapshots nothing.
	var other struct{ VolumeId string }
	json.Unmarshal([]byte(runOK(t, "--socket", sock, "create-volume", "--size", "1GiB")), &other)
	events, failOn = nil, ""
	out = runOK(t, "--socket", sock, "create-snapshots", "--volume-ids", vol.VolumeId+","+other.VolumeId, "--freeze", "/mnt/a", "--freeze", "/mnt/b")
	if got := strings.Join(events, ","); got != "check /mnt/a /mnt/b of "+vol.VolumeId+" "+other.VolumeId+",freeze /mnt/a,freeze /mnt/b,thaw /mnt/b,thaw /mnt/a" ||
		strings.Count(out, `"SnapshotId": "snap-`) != 2 {
		t.Errorf("create-snapshots with two --freeze: %s, events %s", out, got)
	}
	check := snapshotFreezer.check
	snapshotFreezer.check = func(dirs []string, sc freezeScope) error {
		return sc.targetError(dirs[0], "not a mount point")
	}
	events, before = nil, snaps()
	runCases(t, sock, []cliCase{{[]string{"create-snapshots", "--volume-ids", vol.VolumeId, "--freeze", "/mnt/a"},
		exitUsage, "create-snapshots: --freeze /mnt/a: not a mount point"}})
	if len(events) != 0 || snaps() != before {
		t.Errorf("refused --freeze: events %v, %d snapshots, want none and %d", events, snaps(), before)
	}
	snapshotFreezer.check = check
}
