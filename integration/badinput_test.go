package integration

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// Bad input gets a clear error, changes nothing, and never takes the daemon down.
func TestBadInputChangesNothing(t *testing.T) {
	requirePrereqs(t)
	d := startDaemon(t)

	cases := []struct {
		name string
		args []string
		// code, if set, is the EC2 error code the daemon must answer with
		// (then the CLI exits 254 and prints "An error occurred (code) ...").
		code string
		// mention: the error message must contain one of these (any case).
		mention []string
	}{
		{"create-volume of size 0", []string{"create-volume", "--size", "0"}, "", []string{"size"}},
		{"create-volume of size -1", []string{"create-volume", "--size", "-1"}, "", []string{"size"}},
		{"create-volume of size abc", []string{"create-volume", "--size", "abc"}, "", []string{"size", "abc"}},
		{"create-volume of 65 TiB", []string{"create-volume", "--size", "65TiB"}, "", []string{"size", "large", "max", "64"}},
		{"create-volume with block size 3000", []string{"create-volume", "--size", "1000", "--block-size", "3000"}, "", []string{"block"}},
		{"create-volume without a size", []string{"create-volume"}, "", []string{"size"}},
		{"create-volume with a 300-character tag value", []string{"create-volume", "--size", "1GiB", "--tag", "k=" + strings.Repeat("v", 300)},
			"", []string{"tag", "value", "length", "256"}},
		{"delete-volume of an unknown volume", []string{"delete-volume", "--volume-id", "vol-00000000000000000"}, "InvalidVolume.NotFound", nil},
		{"delete-volume of vol-xyz", []string{"delete-volume", "--volume-id", "vol-xyz"}, "InvalidVolumeID.Malformed", nil},
		{"delete-volume of ../etc", []string{"delete-volume", "--volume-id", "../etc"}, "InvalidVolumeID.Malformed", nil},
		{"delete-volume without an id", []string{"delete-volume"}, "", []string{"volume"}},
		{"describe-volumes of vol-xyz", []string{"describe-volumes", "--volume-ids", "vol-xyz"}, "InvalidVolumeID.Malformed", nil},
		{"describe-volumes of an unknown volume", []string{"describe-volumes", "--volume-ids", "vol-00000000000000000"}, "InvalidVolume.NotFound", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			stdout, stderr, code := d.cli(t, c.args...)
			if code == 0 {
				t.Fatalf("exit 0, want an error; stdout: %s", stdout)
			}
			if code < 0 {
				t.Fatalf("the CLI did not finish: %s", stderr)
			}
			if strings.TrimSpace(stderr) == "" {
				t.Errorf("exit %d with nothing on stderr", code)
			}
			if strings.Contains(stderr, "panic:") || strings.Contains(stderr, "goroutine ") {
				t.Errorf("the CLI panicked:\n%s", stderr)
			}
			if strings.Contains(stderr, "An error occurred (") && code != awsErrorExit {
				t.Errorf("EC2 error with exit %d, want %d", code, awsErrorExit)
			}
			if c.code != "" {
				want := "An error occurred (" + c.code + ")"
				if code != awsErrorExit || !strings.Contains(stderr, want) {
					t.Errorf("exit %d, stderr %q; want exit %d and %q", code, stderr, awsErrorExit, want)
				}
			}
			if len(c.mention) > 0 && !containsAnyFold(stderr, c.mention) {
				t.Errorf("error %q mentions none of %q", strings.TrimSpace(stderr), c.mention)
			}
		})
	}

	t.Run("raw requests on the socket get EC2 errors", func(t *testing.T) {
		for _, rc := range []struct {
			name, body, code string
		}{
			{"unknown Action", "Action=MakeCoffee&Version=2016-11-15", "InvalidAction"},
			{"CreateVolume without Size", "Action=CreateVolume&Version=2016-11-15", "MissingParameter"},
			{"CreateVolume Size=-5", "Action=CreateVolume&Version=2016-11-15&Size=-5", "InvalidParameterValue"},
			{"DeleteVolume of ../../etc", "Action=DeleteVolume&Version=2016-11-15&VolumeId=" + url.QueryEscape("../../etc"), "InvalidVolumeID.Malformed"},
			{"16 MiB request", "Action=DescribeVolumes&Version=2016-11-15&Junk=" + strings.Repeat("x", 16<<20), ""},
		} {
			status, body, err := postSocket(d.Socket, rc.body)
			if err != nil {
				// Closing the connection on an oversized request is fine.
				if rc.code == "" {
					t.Logf("%s: %v", rc.name, err)
					continue
				}
				t.Errorf("%s: %v", rc.name, err)
				continue
			}
			if status < 400 || status >= 500 {
				t.Errorf("%s: HTTP %d, want 4xx; body %.300s", rc.name, status, body)
			}
			if rc.code != "" && !strings.Contains(body, "<Code>"+rc.code+"</Code>") {
				t.Errorf("%s: body %.300s, want <Code>%s</Code>", rc.name, body, rc.code)
			}
		}
	})

	step(t, "nothing was created and the daemon is still up", func(t *testing.T) {
		if !d.running() {
			t.Fatal("daemon exited")
		}
		if vs := d.describeVolumes(t); len(vs) != 0 {
			t.Errorf("describe-volumes lists %+v after only bad requests, want none", vs)
		}
		if strings.Contains(d.output(), "panic:") {
			t.Errorf("daemon log has a panic")
		}
	})
}

// postSocket POSTs a form-encoded EC2 Query body to the control socket and
// returns the HTTP status and body.
func postSocket(socket, body string) (int, string, error) {
	client := &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dl net.Dialer
			return dl.DialContext(ctx, "unix", socket)
		}},
	}
	defer client.CloseIdleConnections()
	resp, err := client.Post("http://cowvol/", "application/x-www-form-urlencoded", strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b), err
}

func containsAnyFold(s string, subs []string) bool {
	low := strings.ToLower(s)
	for _, sub := range subs {
		if strings.Contains(low, strings.ToLower(sub)) {
			return true
		}
	}
	return false
}
