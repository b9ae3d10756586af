package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/cowvol/cowvol/control"
	"github.com/cowvol/cowvol/cow"
	"github.com/cowvol/cowvol/kms"
)

// startDaemon serves a real engine on a control socket in a temporary
// directory (short: socket paths are limited to 108 bytes).
func startDaemon(t *testing.T) string {
	t.Helper()
	return startDaemonWith(t, cow.Options{})
}

// startDaemonWith is startDaemon with engine options (DataDir and Logger
// are set here).
func startDaemonWith(t *testing.T, opts cow.Options) string {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	opts.DataDir, opts.Logger = t.TempDir(), quiet
	keys, err := kms.OpenLocal(filepath.Join(t.TempDir(), "keyring"), "us-east-1", control.DefaultAccountID)
	if err != nil {
		t.Fatal(err)
	}
	opts.Keys = keys
	eng, err := cow.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	keys.OnChange(eng.KeysChanged)
	dir, err := os.MkdirTemp("", "cvcli")
	if err != nil {
		t.Fatal(err)
	}
	socket := filepath.Join(dir, "cowvol.sock")
	ln, err := control.ListenUnix(socket)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- control.NewServer(eng, control.Options{Logger: quiet, Keys: keys}).Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		eng.Close()
		os.RemoveAll(dir)
	})
	return socket
}

// run runs the CLI in-process and returns its output and exit code.
func run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	old := cli.OsExiter
	cli.OsExiter = func(c int) { code = c }
	defer func() { cli.OsExiter = old }()
	_ = newApp(&out, &errOut).Run(append([]string{"cowvol"}, args...))
	return out.String(), errOut.String(), code
}

func runOK(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := run(t, args...)
	if code != 0 || errOut != "" {
		t.Fatalf("cowvol %s: exit %d, stderr %q", strings.Join(args, " "), code, errOut)
	}
	return out
}

func keys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func TestVolumeVerbs(t *testing.T) {
	sock := startDaemon(t)
	s := []string{"--socket", sock}

	out := runOK(t, append(s, "create-volume", "--size", "4GiB", "--tag", "env=prod", "--tag", "expr=a=b,c")...)
	if !strings.HasPrefix(out, "{\n    \"AvailabilityZone\": \"us-east-1a\",\n") {
		t.Errorf("not aws-style JSON:\n%s", out)
	}
	var big map[string]any
	if err := json.Unmarshal([]byte(out), &big); err != nil {
		t.Fatal(err)
	}
	wantKeys := []string{"AvailabilityZone", "BlockSize", "CreateTime", "Encrypted", "MultiAttachEnabled", "Size",
		"SizeBytes", "SnapshotId", "State", "Tags", "VolumeId", "VolumeType"}
	if got := keys(big); !reflect.DeepEqual(got, wantKeys) {
		t.Errorf("create-volume keys = %v, want %v", got, wantKeys)
	}
	wantTags := []any{
		map[string]any{"Key": "env", "Value": "prod"},
		map[string]any{"Key": "expr", "Value": "a=b,c"},
	}
	if big["Size"] != 4.0 || big["SizeBytes"] != float64(4<<30) || big["BlockSize"] != 65536.0 || big["State"] != "available" ||
		big["VolumeType"] != "standard" || big["Encrypted"] != false || big["SnapshotId"] != "" ||
		!reflect.DeepEqual(big["Tags"], wantTags) {
		t.Errorf("create-volume output: %v", big)
	}
	bigID := big["VolumeId"].(string)

	var small map[string]any
	json.Unmarshal([]byte(runOK(t, append(s, "create-volume", "--size", "512MiB", "--block-size", "4KiB")...)), &small)
	if small["Size"] != 1.0 || small["SizeBytes"] != float64(512<<20) || small["BlockSize"] != 4096.0 || small["Tags"] != nil {
		t.Errorf("512MiB volume: %v", small)
	}
	smallID := small["VolumeId"].(string)
	var plain map[string]any
	json.Unmarshal([]byte(runOK(t, append(s, "create-volume", "--size", "2")...)), &plain)
	if plain["Size"] != 2.0 || plain["SizeBytes"] != float64(2<<30) {
		t.Errorf("--size 2: %v", plain)
	}
	plainID := plain["VolumeId"].(string)

	describe := func(args ...string) (ids []string, next string) {
		t.Helper()
		var res struct {
			Volumes []map[string]any
			// NextToken is absent unless there is more.
			NextToken *string
		}
		out := runOK(t, append(append(s, "describe-volumes"), args...)...)
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatal(err)
		}
		for _, v := range res.Volumes {
			if a, ok := v["Attachments"].([]any); !ok || len(a) != 0 {
				t.Errorf("Attachments = %v, want []", v["Attachments"])
			}
			ids = append(ids, v["VolumeId"].(string))
		}
		if res.NextToken != nil {
			next = *res.NextToken
			if next == "" {
				t.Error("empty NextToken printed")
			}
		}
		return ids, next
	}
	all := []string{bigID, smallID, plainID}
	sort.Strings(all)
	if ids, next := describe(); !reflect.DeepEqual(ids, all) || next != "" {
		t.Errorf("describe-volumes = %v %q, want %v", ids, next, all)
	}
	if ids, _ := describe("--volume-ids", bigID, plainID); len(ids) != 2 {
		t.Errorf("--volume-ids a b: %v", ids)
	}
	if ids, _ := describe("--volume-ids", bigID+","+smallID); len(ids) != 2 {
		t.Errorf("--volume-ids a,b: %v", ids)
	}
	if ids, _ := describe("--filter", "tag:env=prod,dev"); !reflect.DeepEqual(ids, []string{bigID}) {
		t.Errorf("--filter tag:env: %v", ids)
	}
	if ids, _ := describe("--filters", "Name=size,Values=1,2", "--filter", "volume-id=vol-*"); len(ids) != 2 {
		t.Errorf("--filters size: %v", ids)
	}
	if out := runOK(t, append(s, "describe-volumes", "--filter", "status=in-use")...); out != "{\n    \"Volumes\": []\n}\n" {
		t.Errorf("no volumes: %q", out)
	}
	for range 4 {
		runOK(t, append(s, "create-volume", "--size", "1")...)
	}
	page1, next := describe("--max-results", "5")
	page2, last := describe("--max-results", "5", "--next-token", next)
	if len(page1) != 5 || next == "" || len(page2) != 2 || last != "" {
		t.Errorf("pages: %v %q, %v %q", page1, next, page2, last)
	}

	out, errOut, code := run(t, append(s, "delete-volume", "--volume-id", bigID)...)
	if out != "" || errOut != "" || code != 0 {
		t.Errorf("delete-volume: %q %q %d", out, errOut, code)
	}
	if ids, _ := describe("--volume-ids", smallID); !reflect.DeepEqual(ids, []string{smallID}) {
		t.Errorf("after delete: %v", ids)
	}

	// COWVOL_SOCKET names the socket too.
	t.Setenv("COWVOL_SOCKET", sock)
	runOK(t, "describe-volumes")
}

func TestErrors(t *testing.T) {
	sock := startDaemon(t)
	s := []string{"--socket", sock}
	gone := filepath.Join(t.TempDir(), "none.sock")
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string // exact, or a prefix when it ends with "..."
	}{
		{"not found", append(s, "delete-volume", "--volume-id", "vol-00000000000000000"), 254,
			"An error occurred (InvalidVolume.NotFound) when calling the DeleteVolume operation: The volume 'vol-00000000000000000' does not exist.\n"},
		{"malformed id", append(s, "describe-volumes", "--volume-ids", "vol-1"), 254,
			"An error occurred (InvalidVolumeID.Malformed) when calling the DescribeVolumes operation: Invalid id: \"vol-1\" (expecting \"vol-...\")\n"},
		{"dry run", append(s, "create-volume", "--size", "1GiB", "--dry-run"), 254,
			"An error occurred (DryRunOperation) when calling the CreateVolume operation: Request would have succeeded, but DryRun flag is set.\n"},
		{"bad block size", append(s, "create-volume", "--size", "1GiB", "--block-size", "3000"), 254,
			"An error occurred (InvalidParameterValue) when calling the CreateVolume operation: invalid block size..."},
		{"bad filter", append(s, "describe-volumes", "--filter", "colour=red"), 254,
			"An error occurred (InvalidParameterValue) when calling the DescribeVolumes operation: The filter 'colour' is invalid\n"},
		{"bad size", append(s, "create-volume", "--size", "4GB"), 252, "cowvol: --size: invalid size \"4GB\": use binary units (KiB, MiB, GiB, TiB)\n"},
		{"no size", append(s, "create-volume"), 252, "cowvol: create-volume: --size is required (e.g. --size 4GiB)\n"},
		{"bad tag", append(s, "create-volume", "--size", "1", "--tag", "novalue"), 252, "cowvol: --tag: \"novalue\" is not KEY=VALUE\n"},
		{"no volume id", append(s, "delete-volume"), 252, "cowvol: delete-volume: --volume-id is required\n"},
		{"unknown flag", append(s, "delete-volume", "--volume", "x"), 252, "cowvol: delete-volume: unknown flag --volume (did you mean --volume-id?)\n"},
		{"stray argument", append(s, "delete-volume", "--volume-id", "vol-00000000000000000", "extra"), 252, "cowvol: delete-volume: unexpected argument \"extra\"\n"},
		{"bad --filters", append(s, "describe-volumes", "--filters", "status=x"), 252, "cowvol: --filters: \"status=x\" is not Name=NAME,Values=V1,V2\n"},
		{"unknown command", append(s, "frobnicate"), 252, "cowvol: unknown command \"frobnicate\" (see cowvol --help)\n"},
		{"no daemon", []string{"--socket", gone, "describe-volumes"}, 255, "cannot reach the cowvol daemon at " + gone + ": dial unix " + gone + ": connect: no such file or directory (is `cowvol daemon` running?)\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := run(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tt.code, errOut)
			}
			if out != "" {
				t.Errorf("stdout %q, want nothing", out)
			}
			if prefix, ok := strings.CutSuffix(tt.stderr, "..."); ok {
				if !strings.HasPrefix(errOut, prefix) {
					t.Errorf("stderr %q, want prefix %q", errOut, prefix)
				}
			} else if errOut != tt.stderr {
				t.Errorf("stderr %q\nwant   %q", errOut, tt.stderr)
			}
		})
	}
}

// TestDaemonRejectsBadGCGrace: a negative or too short --gc-grace stops
// the daemon at once with a message naming the flag and the floor.
func TestDaemonRejectsBadGCGrace(t *testing.T) {
	for _, v := range []string{"-5m", "0s", "10s"} {
		_, errOut, code := run(t, "daemon", "--data-dir", t.TempDir(), "--mount", t.TempDir(), "--gc-grace", v)
		if code == 0 || !strings.Contains(errOut, "--gc-grace") || !strings.Contains(errOut, "at least 1m") {
			t.Errorf("--gc-grace %s: exit %d, stderr %q", v, code, errOut)
		}
	}
}

// TestDaemonRejectsBadMemoryLimit: a --memory-limit that is not a size, or
// too small to run on, stops the daemon at once, saying why.
func TestDaemonRejectsBadMemoryLimit(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	for _, tt := range []struct{ value, says string }{
		{"lots", "invalid size"},
		{"-1", "invalid size"},
		{"8MiB", "below the 32MiB"},
		{"1GB", "binary units"},
	} {
		_, errOut, code := run(t, "daemon", "--data-dir", t.TempDir(), "--mount", t.TempDir(), "--memory-limit", tt.value)
		if code == 0 || !strings.Contains(errOut, "--memory-limit") || !strings.Contains(errOut, tt.says) {
			t.Errorf("--memory-limit %s: exit %d, stderr %q", tt.value, code, errOut)
		}
	}
}
