// Package miniotest starts a real MinIO server on loopback for tests: one
// per test, in a temporary directory, stopped by its PID in t.Cleanup. Tests
// import it; nothing else may.
//
// The binary is $COWVOL_MINIO, else `minio` on PATH, else $GOBIN or
// $GOPATH/bin (where `go install github.com/minio/minio@<pinned>` puts it;
// `make prereqs`, tools/prereqs.sh, does). When it is missing the test skips, unless
// COWVOL_REQUIRE_ROOT is set: then it fails.
package miniotest

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Credentials of every server this package starts.
const (
	AccessKey = "cowvoltest"
	SecretKey = "cowvoltest-secret-key"
)

// Version is the pinned MinIO module version `make prereqs` installs.
const Version = "v0.0.0-20260212201848-7aac2a2c5b7c"

// Binary finds the MinIO binary.
func Binary() (string, error) {
	if p := os.Getenv("COWVOL_MINIO"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("COWVOL_MINIO=%s: %w", p, err)
		}
		return p, nil
	}
	if p, err := exec.LookPath("minio"); err == nil {
		return p, nil
	}
	var dirs []string
	if d := os.Getenv("GOBIN"); d != "" {
		dirs = append(dirs, d)
	}
	if d := os.Getenv("GOPATH"); d != "" {
		dirs = append(dirs, filepath.Join(d, "bin"))
	}
	if h, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(h, "go", "bin"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, "minio")
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("minio not found (set COWVOL_MINIO, or go install github.com/minio/minio@%s)", Version)
}

// Server is one MinIO process.
type Server struct {
	t       testing.TB
	bin     string
	dir     string
	addr    string // 127.0.0.1:port
	console string
	logPath string

	// mu guards the fields that follow.
	mu     sync.Mutex
	cmd    *exec.Cmd
	waitCh chan error // the exit status of cmd
}

// Start starts a MinIO server for t and stops it in t.Cleanup. It also sets
// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_REGION for the test, so
// in-process clients find the credentials through the standard chain.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartIn(t, "")
}

// StartIn is Start with the server's objects in dataDir (for a test that
// puts them on a file system of its own: a small one it fills up); empty
// means a temporary directory.
func StartIn(t testing.TB, dataDir string) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		if os.Getenv("COWVOL_REQUIRE_ROOT") != "" {
			t.Fatalf("COWVOL_REQUIRE_ROOT is set and MinIO is missing: %v", err)
		}
		t.Skipf("skipping: %v", err)
	}
	dir := t.TempDir()
	if dataDir == "" {
		dataDir = filepath.Join(dir, "data")
	}
	s := &Server{t: t, bin: bin, dir: dataDir, logPath: filepath.Join(dir, "minio.log"),
		addr: freeAddr(t), console: freeAddr(t)}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			if b, err := os.ReadFile(s.logPath); err == nil {
				t.Logf("minio log:\n%s", lastBytes(b, 4000))
			}
		}
	})
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
	if tt, ok := t.(interface{ Setenv(k, v string) }); ok {
		tt.Setenv("AWS_ACCESS_KEY_ID", AccessKey)
		tt.Setenv("AWS_SECRET_ACCESS_KEY", SecretKey)
		tt.Setenv("AWS_REGION", "us-east-1")
	}
	return s
}

func lastBytes(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

func freeAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Endpoint is the server's base URL.
func (s *Server) Endpoint() string { return "http://" + s.addr }

// DataDir is the directory the server keeps its objects in (tests search
// it for what must not be stored in the clear).
func (s *Server) DataDir() string { return s.dir }

// URL is the snapshot-store URL of bucket/prefix on this server.
func (s *Server) URL(bucket, prefix string) string {
	u := "s3://" + bucket
	if prefix != "" {
		u += "/" + prefix
	}
	return u + "?endpoint=" + s.Endpoint() + "&region=us-east-1"
}

// Env is the environment a daemon needs to reach the server.
func (s *Server) Env() []string {
	return []string{"AWS_ACCESS_KEY_ID=" + AccessKey, "AWS_SECRET_ACCESS_KEY=" + SecretKey, "AWS_REGION=us-east-1",
		// No shared config or credentials files of the host's user.
		"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null"}
}

func (s *Server) start() error {
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(s.bin, "server", "--quiet", "--address", s.addr, "--console-address", s.console, s.dir)
	cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+AccessKey, "MINIO_ROOT_PASSWORD="+SecretKey,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off", "MINIO_CI_CD=on")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start minio: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	s.mu.Lock()
	s.cmd = cmd
	s.mu.Unlock()
	deadline := time.Now().Add(startTimeout)
	client := &http.Client{Timeout: 5 * time.Second}
	for {
		select {
		case err := <-exited:
			b, _ := os.ReadFile(s.logPath)
			s.mu.Lock()
			s.cmd = nil
			s.mu.Unlock()
			return fmt.Errorf("minio exited at start: %v\n%s", err, lastBytes(b, 2000))
		default:
		}
		status, err := s.readiness(client)
		if err == nil && status == http.StatusOK {
			// Keep the exit status reaped: Stop waits on exited.
			s.mu.Lock()
			s.waitCh = exited
			s.mu.Unlock()
			return nil
		}
		if time.Now().After(deadline) {
			s.stopLocked(cmd, exited)
			return fmt.Errorf("minio at %s not ready after %v: last answer %d, %v", s.addr, startTimeout, status, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startTimeout bounds how long a server may take to become ready.
const startTimeout = 60 * time.Second

// readinessPath is MinIO's cluster health check: 200 only once its object
// layer, bucket metadata and IAM are initialized and the drives have write
// quorum. /minio/health/live (and /ready) answer 200 as soon as the HTTP
// server listens, while S3 requests still get 503 "Server not
// initialized": seen on a loaded machine as a test's first request failing.
const readinessPath = "/minio/health/cluster"

// readiness asks the server whether it is ready for S3 requests.
func (s *Server) readiness(client *http.Client) (int, error) {
	resp, err := client.Get(s.Endpoint() + readinessPath)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// Stop kills the server (by its PID) and waits for it; the data stays for
// Restart. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, ch := s.cmd, s.waitCh
	s.cmd, s.waitCh = nil, nil
	s.mu.Unlock()
	if cmd != nil {
		s.stopLocked(cmd, ch)
	}
}

func (s *Server) stopLocked(cmd *exec.Cmd, exited chan error) {
	cmd.Process.Signal(syscall.SIGKILL)
	if exited != nil {
		<-exited
	}
}

// Restart starts the server again on the same address and data.
func (s *Server) Restart() error {
	s.Stop()
	return s.start()
}

// PID is the server process's ID, or 0 when stopped.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}
