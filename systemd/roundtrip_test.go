package systemd

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestFDStoreRoundTrip plays systemd around two generations of a
// supervisor, each a separate process: the first listens on a unix
// socket, stores the listener (StoreFDs), says READY=1 and dies; a client
// connects while no supervisor runs; the test, as systemd, starts the
// second with the stored fd as fd 3 and LISTEN_* set; the second takes it
// from Files() and answers the client that was waiting in the backlog.
func TestFDStoreRoundTrip(t *testing.T) {
	switch os.Getenv("COWVOL_SYSTEMD_ROUNDTRIP") {
	case "first":
		firstSupervisor()
		return
	case "second":
		secondSupervisor()
		return
	}
	m := newFakeManager(t, false)
	sock := filepath.Join(t.TempDir(), "cowvol.sock")

	first := exec.Command(os.Args[0], "-test.run=^TestFDStoreRoundTrip$")
	first.Env = append(os.Environ(), "COWVOL_SYSTEMD_ROUNDTRIP=first", "COWVOL_TEST_SOCKET="+sock)
	if out, err := first.CombinedOutput(); err == nil || first.ProcessState.ExitCode() != 3 {
		t.Fatalf("first supervisor: %v (want exit status 3, its crash)\n%s", err, out)
	}
	msg, fds := m.recv()
	if msg != "FDSTORE=1\nFDNAME=control" || len(fds) != 1 {
		t.Fatalf("stored %q with %d fds", msg, len(fds))
	}
	if msg, _ := m.recv(); msg != "READY=1\nSTATUS=serving" {
		t.Fatalf("then sent %q", msg)
	}
	dup, err := unix.Dup(fds[0]) // fds are closed by m at the end of the test
	if err != nil {
		t.Fatal(err)
	}
	stored := os.NewFile(uintptr(dup), "stored control")
	defer stored.Close()

	// No supervisor runs: the client still connects, into the backlog.
	client, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatalf("connect while the supervisor is dead: %v", err)
	}
	defer client.Close()
	if _, err := fmt.Fprintln(client, "ping"); err != nil {
		t.Fatal(err)
	}

	second := exec.Command("/bin/sh", "-c", `export LISTEN_PID=$$; exec "$0" "$@"`, os.Args[0], "-test.run=^TestFDStoreRoundTrip$")
	second.Env = append(ChildEnv(os.Environ()), "COWVOL_SYSTEMD_ROUNDTRIP=second", "LISTEN_FDS=1", "LISTEN_FDNAMES=control")
	second.ExtraFiles = []*os.File{stored}
	if out, err := second.CombinedOutput(); err != nil {
		t.Fatalf("second supervisor: %v\n%s", err, out)
	}
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	answer, err := bufio.NewReader(client).ReadString('\n')
	if err != nil || answer != "pong\n" {
		t.Fatalf("client got %q, %v; want the second supervisor's pong", answer, err)
	}
}

// firstSupervisor listens, hands the listener to the store, says it is
// ready and crashes (exit 3), without serving anyone.
func firstSupervisor() {
	ln, err := net.Listen("unix", os.Getenv("COWVOL_TEST_SOCKET"))
	if err != nil {
		fail(err)
	}
	ul := ln.(*net.UnixListener)
	ul.SetUnlinkOnClose(false)
	f, err := ul.File()
	if err != nil {
		fail(err)
	}
	if err := StoreFDs("control", f); err != nil {
		fail(err)
	}
	if err := Ready("serving"); err != nil {
		fail(err)
	}
	os.Exit(3)
}

// secondSupervisor takes the listener back from Files and answers one
// client's line with pong.
func secondSupervisor() {
	files, err := Files()
	if err != nil {
		fail(err)
	}
	if len(files["control"]) != 1 {
		fail(fmt.Errorf("passed %v", files))
	}
	ln, err := net.FileListener(files["control"][0])
	if err != nil {
		fail(err)
	}
	files["control"][0].Close()
	defer ln.Close()
	c, err := ln.Accept()
	if err != nil {
		fail(err)
	}
	defer c.Close()
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "ping\n" {
		fail(fmt.Errorf("read %q, %v", line, err))
	}
	if _, err := fmt.Fprintln(c, "pong"); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
