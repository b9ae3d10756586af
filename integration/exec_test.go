package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cmdTimeout bounds every external command a test runs, so a wedged FUSE
// daemon shows up as a failure with logs rather than a hung test binary.
const cmdTimeout = 2 * time.Minute

// result is what an external command did.
type result struct {
	Stdout, Stderr string
	Code           int // exit code; -1 when it could not start, was killed or timed out
	Err            error
}

func (r result) String() string {
	return fmt.Sprintf("exit %d: %s", r.Code, strings.TrimSpace(r.Stderr+" "+r.Stdout))
}

// run runs name with args and returns its output; it never fails the test.
func run(timeout time.Duration, env []string, name string, args ...string) result {
	return runAs(nil, timeout, env, name, args...)
}

// runAs is run as another user and groups (nil: as the test itself).
func runAs(cred *syscall.Credential, timeout time.Duration, env []string, name string, args ...string) result {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if env != nil {
		cmd.Env = env
	}
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	r := result{Stdout: stdout.String(), Stderr: stderr.String(), Err: err}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case ctx.Err() != nil:
		r.Code = -1
		r.Err = errors.Join(err, ctx.Err())
	case errors.As(err, &exitErr):
		r.Code = exitErr.ExitCode()
	default:
		r.Code = -1
	}
	return r
}

// mustRun runs a required system tool (see tool) and fails the test unless it exits 0.
func mustRun(t testing.TB, name string, args ...string) string {
	t.Helper()
	r := run(cmdTimeout, nil, tool(t, name), args...)
	t.Logf("$ %s %s -> exit %d", name, strings.Join(args, " "), r.Code)
	if r.Code != 0 {
		t.Fatalf("%s %s: %v\nstdout: %s\nstderr: %s", name, strings.Join(args, " "), r.Err, r.Stdout, r.Stderr)
	}
	return r.Stdout
}
