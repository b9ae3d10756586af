package control

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/smithy-go"

	"github.com/cowvol/cowvol/cow"
)

var (
	adminKey  = AccessKey{Profile: "admin", AccessKeyID: "AKIAEXAMPLE00001", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", Access: AccessFull}
	readerKey = AccessKey{Profile: "auditor", AccessKeyID: "AKIAEXAMPLE00002", SecretAccessKey: "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY", Access: AccessReadOnly}
)

// startTCPServer serves a real engine on a loopback TCP port that requires
// SigV4 by adminKey or readerKey, and returns its address.
func startTCPServer(t *testing.T) (addr string, eng *cow.Engine) {
	t.Helper()
	return startTCPServerLogging(t, quietLogger())
}

// startTCPServerLogging is startTCPServer with the server's logger.
func startTCPServerLogging(t *testing.T, logger *slog.Logger) (addr string, eng *cow.Engine) {
	t.Helper()
	eng, err := cow.Open(cow.Options{DataDir: t.TempDir(), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(eng, Options{Logger: logger, AccessKeys: []AccessKey{adminKey, readerKey}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String(), eng
}

// signedRequest builds a POST of body to addr, signed by key at when
// (unsigned if key is nil).
func signedRequest(t *testing.T, addr string, key *AccessKey, body string, when time.Time) *http.Request {
	t.Helper()
	r, err := http.NewRequest(http.MethodPost, "http://"+addr+"/", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	if key == nil {
		return r
	}
	sum := sha256.Sum256([]byte(body))
	creds := aws.Credentials{AccessKeyID: key.AccessKeyID, SecretAccessKey: key.SecretAccessKey}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, r, hex.EncodeToString(sum[:]), "ec2", "us-east-1", when); err != nil {
		t.Fatal(err)
	}
	return r
}

func send(t *testing.T, r *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestSigV4(t *testing.T) {
	addr, eng := startTCPServer(t)
	describe := "Action=DescribeVolumes" + v
	create := "Action=CreateVolume&Size=1&AvailabilityZone=us-east-1a" + v
	now := time.Now()
	wrongSecret := adminKey
	wrongSecret.SecretAccessKey = "not-the-secret-at-all"
	unknown := AccessKey{AccessKeyID: "AKIAUNKNOWN000001", SecretAccessKey: adminKey.SecretAccessKey}

	for _, tc := range []struct {
		name   string
		req    func() *http.Request
		status int
		code   string
	}{
		{"signed by a full key", func() *http.Request { return signedRequest(t, addr, &adminKey, describe, now) }, 200, ""},
		{"unsigned", func() *http.Request { return signedRequest(t, addr, nil, describe, now) }, 401, CodeMissingAuthenticationToken},
		{"wrong secret", func() *http.Request { return signedRequest(t, addr, &wrongSecret, describe, now) }, 401, CodeAuthFailure},
		{"unknown key", func() *http.Request { return signedRequest(t, addr, &unknown, describe, now) }, 401, CodeAuthFailure},
		{"body changed after signing", func() *http.Request {
			r := signedRequest(t, addr, &adminKey, describe, now)
			r.Body = io.NopCloser(strings.NewReader(create[:len(describe)]))
			return r
		}, 401, CodeAuthFailure},
		{"signed header changed", func() *http.Request {
			r := signedRequest(t, addr, &adminKey, describe, now)
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			return r
		}, 401, CodeAuthFailure},
		{"clock 14 minutes behind", func() *http.Request { return signedRequest(t, addr, &adminKey, describe, now.Add(-14*time.Minute)) }, 200, ""},
		{"clock 14 minutes ahead", func() *http.Request { return signedRequest(t, addr, &adminKey, describe, now.Add(14*time.Minute)) }, 200, ""},
		{"clock 16 minutes behind", func() *http.Request { return signedRequest(t, addr, &adminKey, describe, now.Add(-16*time.Minute)) }, 400, CodeRequestExpired},
		{"clock 16 minutes ahead", func() *http.Request { return signedRequest(t, addr, &adminKey, describe, now.Add(16*time.Minute)) }, 400, CodeRequestExpired},
		{"malformed header", func() *http.Request {
			r := signedRequest(t, addr, nil, describe, now)
			r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=garbage")
			return r
		}, 400, CodeIncompleteSignature},
		{"another service", func() *http.Request {
			r := signedRequest(t, addr, nil, describe, now)
			sum := sha256.Sum256([]byte(describe))
			creds := aws.Credentials{AccessKeyID: adminKey.AccessKeyID, SecretAccessKey: adminKey.SecretAccessKey}
			v4.NewSigner().SignHTTP(context.Background(), creds, r, hex.EncodeToString(sum[:]), "s3", "us-east-1", now)
			return r
		}, 401, CodeAuthFailure},
		{"presigned", func() *http.Request {
			r := signedRequest(t, addr, nil, describe, now)
			r.URL.RawQuery = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=00"
			return r
		}, 401, CodeAuthFailure},
		{"read-only key describes", func() *http.Request { return signedRequest(t, addr, &readerKey, describe, now) }, 200, ""},
		{"read-only key creates", func() *http.Request { return signedRequest(t, addr, &readerKey, create, now) }, 403, CodeUnauthorizedOperation},
	} {
		status, body := send(t, tc.req())
		if status != tc.status || (tc.code != "" && !strings.Contains(body, "<Code>"+tc.code+"</Code>")) {
			t.Errorf("%s: %d %s, want %d %s", tc.name, status, body, tc.status, tc.code)
		}
	}
	if vols, _ := eng.DescribeVolumes(context.Background()); len(vols) != 0 {
		t.Errorf("refused requests created %d volumes", len(vols))
	}

	t.Run("the same signed request twice is answered twice", func(t *testing.T) {
		// SigV4 dates have one-second resolution: a waiter, a paginator
		// or a retry that sends the same request twice within a second
		// sends the same signature. EC2 answers both; so does cowvol.
		r := signedRequest(t, addr, &adminKey, create, time.Now())
		again := r.Clone(context.Background())
		if status, body := send(t, r); status != 200 {
			t.Fatalf("first: %d %s", status, body)
		}
		again.Body = io.NopCloser(strings.NewReader(create))
		if status, body := send(t, again); status != 200 {
			t.Errorf("the same request again: %d %s, want 200", status, body)
		}
		if vols, _ := eng.DescribeVolumes(context.Background()); len(vols) != 2 {
			t.Errorf("%d volumes after the same CreateVolume twice, want 2 (EC2 makes two without a ClientToken)", len(vols))
		}
	})

	t.Run("the AWS SDK signs as the server verifies", func(t *testing.T) {
		for _, key := range []AccessKey{adminKey, readerKey} {
			c := awsec2.New(awsec2.Options{
				Region:       "eu-west-3",
				BaseEndpoint: aws.String("http://" + addr),
				Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
					return aws.Credentials{AccessKeyID: key.AccessKeyID, SecretAccessKey: key.SecretAccessKey}, nil
				}),
				RetryMaxAttempts: 1,
			})
			out, err := c.DescribeVolumes(context.Background(), &awsec2.DescribeVolumesInput{})
			if err != nil || len(out.Volumes) != 2 {
				t.Fatalf("%s: DescribeVolumes: %v", key.Profile, err)
			}
			_, err = c.CreateVolume(context.Background(), &awsec2.CreateVolumeInput{Size: aws.Int32(1), DryRun: aws.Bool(true)})
			var ae smithy.APIError
			want := CodeDryRunOperation
			if key.Access == AccessReadOnly {
				want = CodeUnauthorizedOperation
			}
			if !errors.As(err, &ae) || ae.ErrorCode() != want {
				t.Errorf("%s: CreateVolume DryRun: %v, want %s", key.Profile, err, want)
			}
		}
	})
}

// logBuffer collects a server's log lines, safely across goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// take returns what was logged since the last take.
func (l *logBuffer) take() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.b.String()
	l.b.Reset()
	return s
}

// TestAuthFailureLogsWhy checks that the daemon's log line for every
// request it refuses says why, beyond the code the client gets.
func TestAuthFailureLogsWhy(t *testing.T) {
	var logs logBuffer
	addr, _ := startTCPServerLogging(t, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})))
	describe := "Action=DescribeVolumes" + v
	now := time.Now()
	wrongSecret := adminKey
	wrongSecret.SecretAccessKey = "not-the-secret-at-all"
	unknown := AccessKey{AccessKeyID: "AKIAUNKNOWN000001", SecretAccessKey: adminKey.SecretAccessKey}
	// withAuth is a request carrying a hand-made Authorization header.
	withAuth := func(h string) *http.Request {
		r := signedRequest(t, addr, nil, describe, now)
		r.Header.Set("X-Amz-Date", now.UTC().Format(amzDateFormat))
		r.Header.Set("Authorization", h)
		return r
	}
	scope := adminKey.AccessKeyID + "/" + now.UTC().Format("20060102") + "/us-east-1/ec2/aws4_request"
	zeros := strings.Repeat("0", 64)

	for _, tc := range []struct {
		name, code, reason string
		req                *http.Request
	}{
		{"unsigned", CodeMissingAuthenticationToken, "no Authorization header", signedRequest(t, addr, nil, describe, now)},
		{"unknown key", CodeAuthFailure, `unknown access key \"AKIAUNKNOWN000001\"`, signedRequest(t, addr, &unknown, describe, now)},
		{"wrong secret", CodeAuthFailure, "bad signature by access key " + adminKey.AccessKeyID, signedRequest(t, addr, &wrongSecret, describe, now)},
		{"expired", CodeRequestExpired, "expired: X-Amz-Date", signedRequest(t, addr, &adminKey, describe, now.Add(-20*time.Minute))},
		{"clock ahead", CodeRequestExpired, "ahead of the daemon's clock", signedRequest(t, addr, &adminKey, describe, now.Add(20*time.Minute))},
		{"wrong service", CodeAuthFailure, "wrong service", withAuth("AWS4-HMAC-SHA256 Credential=" + strings.Replace(scope, "/ec2/", "/s3/", 1) + ", SignedHeaders=host;x-amz-date, Signature=" + zeros)},
		{"host not signed", CodeIncompleteSignature, "the Host header is not among the signed headers", withAuth("AWS4-HMAC-SHA256 Credential=" + scope + ", SignedHeaders=x-amz-date, Signature=" + zeros)},
		{"malformed", CodeIncompleteSignature, "malformed Authorization header", withAuth("AWS4-HMAC-SHA256 Credential=garbage")},
		{"presigned", CodeAuthFailure, "presigned URL", func() *http.Request {
			r := signedRequest(t, addr, nil, describe, now)
			r.URL.RawQuery = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=00"
			return r
		}()},
		{"read-only key creates", CodeUnauthorizedOperation, "access key " + readerKey.AccessKeyID + " may not call CreateVolume",
			signedRequest(t, addr, &readerKey, "Action=CreateVolume&Size=1"+v, now)},
	} {
		logs.take()
		status, body := send(t, tc.req)
		if status < 400 || !strings.Contains(body, "<Code>"+tc.code+"</Code>") {
			t.Errorf("%s: %d %s, want %s", tc.name, status, body, tc.code)
			continue
		}
		line := logs.take()
		if !strings.Contains(line, "level=INFO") || !strings.Contains(line, "code="+tc.code) || !strings.Contains(line, "reason=") ||
			!strings.Contains(line, tc.reason) {
			t.Errorf("%s: log %q, want an INFO line with code=%s and a reason saying %q", tc.name, line, tc.code, tc.reason)
		}
	}
}

func TestServeTCPNeedsKeys(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	err = NewServer(panicBackend{}, Options{Logger: quietLogger()}).Serve(context.Background(), ln)
	if err == nil || !strings.Contains(err.Error(), "access keys") {
		t.Errorf("TCP without access keys: %v", err)
	}
}

// FuzzSigV4 feeds the verifier arbitrary Authorization and X-Amz-Date
// headers and bodies: it must answer every one with an EC2 error (never a
// panic), and accept none it did not see signed with a known secret.
func FuzzSigV4(f *testing.F) {
	when := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	body := "Action=DescribeVolumes&Version=2016-11-15"
	r, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:8773/", strings.NewReader(body))
	sum := sha256.Sum256([]byte(body))
	creds := aws.Credentials{AccessKeyID: adminKey.AccessKeyID, SecretAccessKey: adminKey.SecretAccessKey}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, r, hex.EncodeToString(sum[:]), "ec2", "us-east-1", when); err != nil {
		f.Fatal(err)
	}
	signed := r.Header.Get("Authorization")
	f.Add(signed, r.Header.Get("X-Amz-Date"), body)
	f.Add("AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE00001/20261125/us-east-1/ec2/aws4_request, SignedHeaders=host;x-amz-date;content-length, Signature="+strings.Repeat("0", 64), "20261125T100000Z", "")
	f.Add("AWS4-HMAC-SHA256 Credential=/////, SignedHeaders=;;;, Signature=", "", "x")
	f.Add("Basic dXNlcjpwYXNz", "20261125T100000Z", body)

	v := newSigV4Verifier([]AccessKey{adminKey, readerKey})
	v.now = func() time.Time { return when }
	f.Fuzz(func(t *testing.T, auth, date, body string) {
		r, err := http.NewRequest(http.MethodPost, "http://127.0.0.1:8773/", strings.NewReader(body))
		if err != nil {
			t.Skip()
		}
		r.Header.Set("Authorization", auth)
		r.Header.Set("X-Amz-Date", date)
		caller, e := v.verify(context.Background(), r, []byte(body))
		if e == nil {
			// Only an unchanged signed request can pass.
			if auth != signed || caller.AccessKeyID != adminKey.AccessKeyID {
				t.Fatalf("verified %q as %+v", auth, caller)
			}
			return
		}
		if e.Code == "" || e.Message == "" || e.StatusCode < 400 {
			t.Fatalf("error without code, message or status: %+v", e)
		}
	})
}
