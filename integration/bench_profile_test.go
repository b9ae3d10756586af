package integration

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"
)

// benchProfileEnv names a file: when set, benchmarks that support it start
// their daemon with --pprof and save a CPU profile of the phase they
// measure there (go tool pprof bin/cowvol FILE).
const benchProfileEnv = "COWVOL_BENCH_CPUPROFILE"

// profileArgs are the daemon flags a profiled benchmark adds.
func profileArgs() []string {
	if os.Getenv(benchProfileEnv) == "" {
		return nil
	}
	return []string{"--pprof"}
}

// startCPUProfile fetches a CPU profile of secs seconds from the daemon on
// socket into the file named by COWVOL_BENCH_CPUPROFILE, in the
// background; the returned function waits for it. Without the variable
// it does nothing.
func startCPUProfile(b testing.TB, socket string, secs int) (wait func()) {
	path := os.Getenv(benchProfileEnv)
	if path == "" {
		return func() {}
	}
	done := make(chan error, 1)
	go func() { done <- fetchCPUProfile(socket, secs, path) }()
	return func() {
		if err := <-done; err != nil {
			b.Logf("cpu profile: %v", err)
		}
	}
}

func fetchCPUProfile(socket string, secs int, path string) error {
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", socket)
	}}, Timeout: time.Duration(secs+30) * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://cowvol/debug/pprof/profile?seconds=%d", secs))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %s", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
