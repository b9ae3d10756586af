package main

import (
	"encoding/xml"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cowvol/cowvol/control"
)

// silentDaemon listens on a unix socket in t.TempDir, accepts every
// connection and never answers, as a daemon wedged in a request would.
// Each accepted connection is announced on the returned channel (buffered,
// never blocking the acceptor); cleanup closes the listener and every
// connection it holds.
func silentDaemon(t *testing.T) (socket string, accepted <-chan struct{}) {
	t.Helper()
	socket = filepath.Join(t.TempDir(), "silent.sock")
	ln, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan struct{}, 100)
	var (
		mu    sync.Mutex
		conns []net.Conn
		done  = make(chan struct{})
	)
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return socket, ch
}

// cliResult is what one in-process run of the CLI did.
type cliResult struct {
	stdout, stderr string
	code           int
	took           time.Duration
}

// runBounded runs the CLI in-process and fails the test if it has not
// returned within limit (a hung client), instead of hanging the test.
func runBounded(t *testing.T, limit time.Duration, args ...string) cliResult {
	t.Helper()
	done := make(chan cliResult, 1)
	go func() {
		start := time.Now()
		out, errOut, code := run(t, args...)
		done <- cliResult{out, errOut, code, time.Since(start)}
	}()
	select {
	case r := <-done:
		return r
	case <-time.After(limit):
		t.Fatalf("cowvol %s did not return within %v", strings.Join(args, " "), limit)
		return cliResult{}
	}
}

// TestCreateSnapshotFreezeTimeout: create-snapshot --freeze against a
// daemon that accepts and never answers gives up after --freeze-timeout,
// thaws exactly once, says what happened and how to check, and exits 255;
// a thaw that fails too is reported with what to do.
func TestCreateSnapshotFreezeTimeout(t *testing.T) {
	const bound = 300 * time.Millisecond
	for _, tt := range []struct {
		name    string
		thawErr error
		want    []string
	}{
		{"thawed", nil, []string{
			"did not answer within 300ms (--freeze-timeout) while /mnt/x was frozen; cowvol stopped waiting and thawed /mnt/x.",
		}},
		{"the thaw fails", errors.New("thaw /mnt/x (FITHAW): EIO"), []string{
			"cowvol stopped waiting, but the thaw failed: thaw /mnt/x (FITHAW): EIO",
			"/mnt/x may still be frozen: thaw it with `fsfreeze --unfreeze /mnt/x`",
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sock, accepted := silentDaemon(t)
			var freezes, thaws atomic.Int32
			old := snapshotFreezer
			t.Cleanup(func() { snapshotFreezer = old })
			snapshotFreezer = fsFreezer{
				freeze: func(string) (*os.File, error) { freezes.Add(1); return os.Open(os.DevNull) },
				thaw: func(f *os.File) error {
					// The thaw comes after the daemon took the request.
					select {
					case <-accepted:
					case <-time.After(10 * time.Second):
						t.Error("thawed before the request reached the daemon")
					}
					thaws.Add(1)
					f.Close()
					return tt.thawErr
				},
				exit: func(code int) { t.Errorf("exit(%d) without a signal", code) },
			}
			r := runBounded(t, bound+20*time.Second, "--socket", sock, "create-snapshot",
				"--volume-id", "vol-0123456789abcdef0", "--freeze", "/mnt/x", "--freeze-timeout", bound.String())
			if freezes.Load() != 1 || thaws.Load() != 1 {
				t.Errorf("%d freezes, %d thaws; want one of each", freezes.Load(), thaws.Load())
			}
			if r.code != exitTimeout || r.stdout != "" || r.took < bound {
				t.Errorf("exit %d after %v, stdout %q; want exit %d after at least %v and nothing printed",
					r.code, r.took, r.stdout, exitTimeout, bound)
			}
			want := append([]string{
				"cowvol: CreateSnapshot: the cowvol daemon at " + sock + " did not answer",
				"The snapshot may or may not have been created, and if it was, perhaps after the thaw " +
					"(then it is crash-consistent, as without --freeze); check with:\n  cowvol --socket " + sock +
					" describe-snapshots --filter volume-id=vol-0123456789abcdef0\n",
			}, tt.want...)
			for _, w := range want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
				}
			}
		})
	}
}

// TestVerbsReadTimeout: every verb gives up on a daemon that accepts and
// never answers after --cli-read-timeout, exits 255 and names the
// operation, the bound and the flag; bad timeout values are usage errors.
func TestVerbsReadTimeout(t *testing.T) {
	sock, _ := silentDaemon(t)
	const vol, snap = "vol-0123456789abcdef0", "snap-0123456789abcdef0"
	for _, tt := range []struct {
		op   string
		args []string
	}{
		{"CreateVolume", []string{"create-volume", "--size", "1GiB"}},
		{"DescribeVolumes", []string{"describe-volumes"}},
		{"DeleteVolume", []string{"delete-volume", "--volume-id", vol}},
		{"CreateSnapshot", []string{"create-snapshot", "--volume-id", vol}},
		{"DescribeSnapshots", []string{"describe-snapshots"}},
		{"DeleteSnapshot", []string{"delete-snapshot", "--snapshot-id", snap}},
		{"CopySnapshot", []string{"copy-snapshot", "--source-snapshot-id", snap}},
		{"DescribeSnapshots", []string{"wait", "snapshot-completed", "--snapshot-ids", snap}},
		{"CreateKey", []string{"create-key"}},
		{"ListKeys", []string{"describe-keys"}},
		{"DisableKey", []string{"disable-key", "--key-id", "alias/db"}},
	} {
		t.Run(tt.args[0], func(t *testing.T) {
			r := runBounded(t, 20*time.Second, append([]string{"--socket", sock, "--cli-read-timeout", "200ms"}, tt.args...)...)
			want := "cowvol: read timeout: the cowvol daemon at " + sock + " did not answer " + tt.op +
				" within 200ms (--cli-read-timeout; 0: no timeout); the daemon may still carry the request out\n"
			if r.code != exitTimeout || r.stderr != want || r.stdout != "" {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d, stderr %q", r.code, r.stdout, r.stderr, exitTimeout, want)
			}
		})
	}
	runCases(t, sock, []cliCase{
		{[]string{"--cli-read-timeout", "soon", "describe-volumes"}, exitUsage,
			`cowvol: --cli-read-timeout: "soon" is neither a number of seconds nor a duration (60, 90s, 2m)`},
		{[]string{"--cli-connect-timeout", "-5", "describe-volumes"}, exitUsage, "cowvol: --cli-connect-timeout: -5 is negative"},
		{[]string{"create-snapshot", "--volume-id", vol, "--freeze", "/mnt/x", "--freeze-timeout", "0"}, exitUsage,
			"cowvol: create-snapshot: --freeze-timeout must be more than 0"},
	})
}

// TestTimeoutFlag: timeouts read as aws's (whole seconds) or as durations.
func TestTimeoutFlag(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"60", time.Minute, true},
		{"0", 0, true},
		{"90s", 90 * time.Second, true},
		{"2m", 2 * time.Minute, true},
		{"1.5", 0, false},
		{"-1", 0, false},
		{"-1s", 0, false},
		{"", 0, false},
		{"99999999999999999", 0, false},
	} {
		app := newApp(&strings.Builder{}, &strings.Builder{})
		var got time.Duration
		var err error
		app.Action = func(c *cli.Context) error { got, err = timeoutFlag(c, "cli-read-timeout"); return nil }
		app.Before = nil
		if rerr := app.Run([]string{"cowvol", "--cli-read-timeout", tt.in}); rerr != nil {
			t.Fatal(rerr)
		}
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("timeoutFlag(%q) = %v, %v; want %v, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

// TestWaitOutlastsReadTimeout: the read timeout bounds each of a waiter's
// polls, not the wait: a wait of several polls, longer in all than the
// read timeout, succeeds.
func TestWaitOutlastsReadTimeout(t *testing.T) {
	const pendingPolls = 5
	var polls atomic.Int32
	sock := filepath.Join(t.TempDir(), "fake.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		status := "pending"
		if polls.Add(1) > pendingPolls {
			status = "completed"
		}
		b, _ := xml.Marshal(control.DescribeSnapshotsResponse{SnapshotSet: control.SnapshotSet{Items: []control.Snapshot{
			{SnapshotID: "snap-0123456789abcdef0", Status: status, Progress: "50%"},
		}}})
		w.Write(b)
	})}
	served := make(chan struct{})
	go func() { defer close(served); srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-served })

	const bound, interval = 100 * time.Millisecond, 50 * time.Millisecond
	r := runBounded(t, 20*time.Second, "--socket", sock, "--cli-read-timeout", bound.String(),
		"wait", "snapshot-completed", "--snapshot-ids", "snap-0123456789abcdef0", "--interval", interval.String())
	if r.code != 0 || polls.Load() != pendingPolls+1 || r.took < pendingPolls*interval {
		t.Errorf("wait: exit %d after %v and %d polls, stderr %q; want exit 0 after %d polls", r.code, r.took, polls.Load(), r.stderr, pendingPolls+1)
	}
}
