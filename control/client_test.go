package control

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// stallingServer listens on a unix socket, reads each request and
// answers with reply (nothing if empty), then holds the connection open
// without another byte until the test ends.
func stallingServer(t *testing.T, reply string) string {
	t.Helper()
	sock := filepath.Join(socketDir(t), "stall.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := http.ReadRequest(bufio.NewReader(c)); err == nil && reply != "" {
					c.Write([]byte(reply))
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return sock
}

// TestClientReadTimeout: a daemon that accepts and never answers, or
// stalls in the middle of its answer, fails the call with *TimeoutError
// naming the socket, the operation and the bound, for EC2 and KMS calls.
func TestClientReadTimeout(t *testing.T) {
	const bound = 100 * time.Millisecond
	calls := []struct {
		op   string
		call func(*Client) error
	}{
		{"DescribeVolumes", func(c *Client) error {
			_, err := c.DescribeVolumes(context.Background(), DescribeVolumesInput{})
			return err
		}},
		{"ListKeys", func(c *Client) error {
			_, err := c.DescribeKeys(context.Background(), nil)
			return err
		}},
	}
	for _, srv := range []struct{ name, reply string }{
		{"no answer", ""},
		{"headers, then nothing", "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n<Describe"},
	} {
		sock := stallingServer(t, srv.reply)
		for _, call := range calls {
			t.Run(srv.name+"/"+call.op, func(t *testing.T) {
				c := NewClientWith(sock, ClientOptions{ConnectTimeout: time.Second, ReadTimeout: bound})
				defer c.Close()
				done := make(chan error, 1)
				go func() { done <- call.call(c) }()
				var err error
				select {
				case err = <-done:
				case <-time.After(30 * time.Second):
					t.Fatal("the call did not return")
				}
				var te *TimeoutError
				if !errors.As(err, &te) || te.Connect || te.Op != call.op || te.After != bound || te.Socket != sock {
					t.Fatalf("err = %#v, want a read *TimeoutError of %s after %v", err, call.op, bound)
				}
				if msg := err.Error(); !strings.Contains(msg, sock) || !strings.Contains(msg, call.op) || !strings.Contains(msg, "100ms") {
					t.Errorf("message %q names not the socket, the operation and the bound", msg)
				}
			})
		}
	}
}

// TestClientCallerDeadline: a call bounded by its context alone (no read
// timeout) ends with the context's error, not a *TimeoutError.
func TestClientCallerDeadline(t *testing.T) {
	c := NewClientWith(stallingServer(t, ""), ClientOptions{})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := c.CreateSnapshot(ctx, CreateSnapshotInput{VolumeID: "vol-0123456789abcdef0"})
	var te *TimeoutError
	if !errors.Is(err, context.DeadlineExceeded) || errors.As(err, &te) {
		t.Fatalf("err = %#v, want context.DeadlineExceeded", err)
	}
}

// TestClientReadTimeoutSpansNoIdleTime: the read timeout bounds each
// request, not the client's life: calls spaced by more than the bound
// all succeed against a daemon that answers.
func TestClientReadTimeoutSpansNoIdleTime(t *testing.T) {
	const bound = 100 * time.Millisecond
	c := NewClientWith(newTestEnv(t).socket, ClientOptions{ConnectTimeout: time.Second, ReadTimeout: bound})
	defer c.Close()
	start := time.Now()
	for i := 0; time.Since(start) < 3*bound; i++ {
		if _, err := c.DescribeVolumes(context.Background(), DescribeVolumesInput{}); err != nil {
			t.Fatalf("call %d, %v after the first: %v", i, time.Since(start), err)
		}
		time.Sleep(bound / 2)
	}
}
