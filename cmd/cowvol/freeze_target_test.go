package main

import (
	"net"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseMountInfoLine(t *testing.T) {
	for line, want := range map[string]mountEntry{
		"36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw,errors=continue": {
			major: 98, minor: 0, mountPoint: "/mnt/parent", fsType: "ext3", source: "/dev/root"},
		"120 25 7:3 / /srv/my\\040data rw,relatime shared:60 - ext4 /dev/loop3 rw": {
			major: 7, minor: 3, mountPoint: "/srv/my data", fsType: "ext4", source: "/dev/loop3"},
		"88 25 0:52 / /mnt/cowvol rw,nosuid,nodev,relatime - fuse.cowvol cowvol rw,user_id=0,group_id=0,default_permissions": {
			major: 0, minor: 52, mountPoint: "/mnt/cowvol", fsType: "fuse.cowvol", source: "cowvol"},
	} {
		got, ok := parseMountInfoLine(line)
		if !ok || !reflect.DeepEqual(got, want) {
			t.Errorf("%q: %+v, %v; want %+v", line, got, ok, want)
		}
	}
	for _, bad := range []string{"", "36 35 98:0 /mnt1", "36 35 x:y / /m rw - ext4 /dev/x rw", "36 35 7:0 / /m rw shared:1 ext4 /dev/x rw"} {
		if _, ok := parseMountInfoLine(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestListeningSocketInodes(t *testing.T) {
	table := "Num       RefCount Protocol Flags    Type St Inode Path\n" +
		"0000000000000000: 00000002 00000000 00010000 0001 01 41231 /run/cowvol/cowvol.sock\n" +
		"0000000000000000: 00000003 00000000 00000000 0001 03 41240 /run/cowvol/cowvol.sock\n" +
		"0000000000000000: 00000002 00000000 00010000 0001 01 50000 /run/other.sock\n" +
		"0000000000000000: 00000002 00000000 00010000 0001 01 50001\n"
	path := filepath.Join(t.TempDir(), "unix")
	if err := os.WriteFile(path, []byte(table), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := listeningSocketInodes(path, "/run/cowvol/cowvol.sock")
	if err != nil || !reflect.DeepEqual(got, map[string]bool{"41231": true}) {
		t.Errorf("listening inodes %v, %v; want only 41231 (the connected one is not listening)", got, err)
	}
}

// TestDaemonDevices: the processes holding a listening socket are found,
// and the devices of the files they keep open: here, this test process.
func TestDaemonDevices(t *testing.T) {
	dir, err := os.MkdirTemp("", "cvfz")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "d.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f, err := os.Create(filepath.Join(t.TempDir(), "held"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	held, err := daemonDevices(sock)
	if err != nil {
		t.Fatal(err)
	}
	if pid, ok := held[[2]uint32{unix.Major(st.Dev), unix.Minor(st.Dev)}]; !ok || pid != os.Getpid() {
		t.Errorf("devices held %v: want %d:%d held by pid %d", held, unix.Major(st.Dev), unix.Minor(st.Dev), os.Getpid())
	}
	if _, err := daemonDevices(filepath.Join(dir, "nobody.sock")); err == nil {
		t.Error("a socket nobody listens on: no error")
	}
}
