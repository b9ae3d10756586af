package control

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestListenUnix(t *testing.T) {
	dir := socketDir(t)

	// Creates the parent directory (0755) and a 0666 socket: the server authorizes by peer credentials.
	path := filepath.Join(dir, "a", "b.sock")
	ln, err := ListenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o666 || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("socket: %v %v", fi.Mode(), err)
	}
	if di, err := os.Stat(filepath.Dir(path)); err != nil || di.Mode().Perm() != 0o755 {
		t.Fatalf("parent dir: %v %v", di.Mode(), err)
	}

	// A live socket is not taken over.
	if _, err := ListenUnix(path); err == nil || !strings.Contains(err.Error(), "another daemon is listening on "+path) {
		t.Fatalf("second listen: %v", err)
	}
	ln.Close()

	// A stale socket (its listener gone without unlinking) is replaced.
	stale := filepath.Join(dir, "stale.sock")
	l, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	if _, err := os.Stat(stale); err != nil {
		t.Fatal(err)
	}
	ln, err = ListenUnix(stale)
	if err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	ln.Close()

	// Anything else is never removed.
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ListenUnix(file); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("regular file: %v", err)
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "precious" {
		t.Fatalf("regular file touched: %q %v", b, err)
	}
	sub := filepath.Join(dir, "subdir")
	os.Mkdir(sub, 0o700)
	if _, err := ListenUnix(sub); err == nil {
		t.Fatal("directory accepted")
	}
}

func TestServeStopsOnCancel(t *testing.T) {
	path := filepath.Join(socketDir(t), "s.sock")
	ln, err := ListenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- NewServer(panicBackend{}, Options{Logger: quietLogger()}).Serve(ctx, ln) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve = %v", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("socket left behind: %v", err)
	}
}
