package integration

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// The users of the file-permission tests, and the --volume-group.
const volumeGroupID = 5566

var (
	unprivileged = &syscall.Credential{Uid: 65534, Gid: 65534}                                // nobody
	volumeMember = &syscall.Credential{Uid: 4545, Gid: 4545, Groups: []uint32{volumeGroupID}} // a member of --volume-group
)

// What the tools print (strerror) for the errnos a refusal returns.
const (
	errAccess = "Permission denied"       // EACCES: the mode does not let this user open the file
	errPerm   = "Operation not permitted" // EPERM: chmod by a non-owner, or any change of attributes
	errROFS   = "Read-only file system"   // EROFS: a snapshot file opened for writing
)

// fileOp is something a user does to a file in the mount, with the
// standard tools.
type fileOp struct {
	name string
	argv func(file string) []string
}

var (
	opRead   = fileOp{"read (head -c 64KiB)", func(f string) []string { return []string{"head", "-c", "65536", f} }}
	opOpenRW = fileOp{"open for read and write", func(f string) []string { return []string{"sh", "-c", `exec 3<>"$1"`, "sh", f} }}
	opDD     = fileOp{"write (dd conv=notrunc)", func(f string) []string {
		return []string{"dd", "if=/dev/zero", "of=" + f, "bs=4096", "count=1", "conv=notrunc", "status=none"}
	}}
	opPunch = fileOp{"fallocate --punch-hole", func(f string) []string {
		return []string{"fallocate", "--punch-hole", "--offset", "0", "--length", "65536", f}
	}}
	opTruncate = fileOp{"truncate -s 0", func(f string) []string { return []string{"truncate", "-s", "0", f} }}
	opChmod    = fileOp{"chmod 0666", func(f string) []string { return []string{"chmod", "0666", f} }}
)

// everyOp is every operation a user outside the volume group is refused.
var everyOp = []fileOp{opRead, opOpenRW, opDD, opPunch, opTruncate, opChmod}

// permFiles are the files of the tests, by kind: "volume", "encrypted
// volume", "snapshot", "encrypted snapshot", with the 64 KiB each starts with.
type permFiles struct {
	path    map[string]string
	content map[string][]byte
}

// kinds are the kinds of permFiles, in the order the tests go through them.
var kinds = []string{"volume", "encrypted volume", "snapshot", "encrypted snapshot"}

// permCase is one operation by one user on one kind of file.
type permCase struct {
	who  *syscall.Credential // nil: root
	kind string
	op   fileOp
	want string // "": the operation succeeds; else the error the tool reports
	then func(t *testing.T)
}

// TestVolumeFilePermissions: with --volume-group, volume files are 0660 and
// snapshot files 0440 in that group, owned by the daemon's user (root
// here), and the kernel holds everyone to that: a user outside the group
// cannot open any of them (nor read an encrypted volume's plaintext), a
// member reads and writes volumes and reads snapshots, and no one, root
// included, changes their attributes or writes to a snapshot.
func TestVolumeFilePermissions(t *testing.T) {
	d := startDaemon(t, withMountDir(reachableDir(t)), withDaemonArgs("--volume-group", fmt.Sprint(volumeGroupID)))
	files := makePermFiles(t, d)

	step(t, "anyone lists the directories and sees each file's owner, group and mode", func(t *testing.T) {
		wantModes(t, d, files, map[string]string{
			"volume": "660 0 5566", "encrypted volume": "660 0 5566",
			"snapshot": "440 0 5566", "encrypted snapshot": "440 0 5566",
		})
	})

	step(t, "a user outside the group is refused every operation on every file", func(t *testing.T) {
		refusedEverything(t, files, unprivileged)
	})

	step(t, "the refusals changed nothing", func(t *testing.T) {
		for _, kind := range kinds {
			requireContent(t, files.path[kind], files.content[kind])
		}
	})

	step(t, "root attaches a volume to a loop device", func(t *testing.T) {
		l := attachLoop(t, files.path["volume"])
		requireContent(t, l.Dev, files.content["volume"])
	})

	var cases []permCase
	for _, kind := range []string{"volume", "encrypted volume"} {
		file := files.path[kind]
		cases = append(cases,
			permCase{volumeMember, kind, opRead, "", nil},
			permCase{volumeMember, kind, opOpenRW, "", nil},
			permCase{volumeMember, kind, opTruncate, errPerm, nil},
			permCase{volumeMember, kind, opChmod, errPerm, nil},
			permCase{volumeMember, kind, opDD, "", func(t *testing.T) {
				want := append(make([]byte, 4096), files.content[kind][4096:]...)
				requireContent(t, file, want)
			}},
			permCase{volumeMember, kind, opPunch, "", func(t *testing.T) {
				requireContent(t, file, make([]byte, 65536))
			}},
		)
	}
	for _, kind := range []string{"snapshot", "encrypted snapshot"} {
		cases = append(cases,
			permCase{volumeMember, kind, opRead, "", nil},
			permCase{volumeMember, kind, opOpenRW, errAccess, nil},
			permCase{volumeMember, kind, opDD, errAccess, nil},
			permCase{volumeMember, kind, opPunch, errAccess, nil},
			permCase{volumeMember, kind, opTruncate, errAccess, nil},
			permCase{volumeMember, kind, opChmod, errPerm, nil},
		)
	}
	step(t, "a member of the group reads and writes volumes and reads snapshots, and changes no attribute", func(t *testing.T) {
		runPermCases(t, files, cases)
		for _, kind := range []string{"snapshot", "encrypted snapshot"} {
			requireContent(t, files.path[kind], files.content[kind])
		}
	})

	step(t, "root writes no snapshot and changes no attribute either, and the daemon says why", func(t *testing.T) {
		runPermCases(t, files, []permCase{
			{nil, "volume", opChmod, errPerm, nil},
			{nil, "volume", opTruncate, errPerm, nil},
			{nil, "snapshot", opChmod, errPerm, nil},
			{nil, "snapshot", opDD, errROFS, nil},
			{nil, "snapshot", opPunch, errROFS, nil},
		})
		wantModes(t, d, files, map[string]string{"volume": "660 0 5566", "snapshot": "440 0 5566"})
		if out := d.output(); !strings.Contains(out, "refused a change of attributes") || !strings.Contains(out, "mode 0666") {
			t.Errorf("the daemon's log does not say it refused chmod 0666")
		}
	})
}

// TestVolumeFilePermissionsWithoutGroup: without --volume-group volume
// files are 0600 and snapshot files 0400: nobody but root (and the
// daemon's user, root here) opens them.
func TestVolumeFilePermissionsWithoutGroup(t *testing.T) {
	d := startDaemon(t, withMountDir(reachableDir(t)))
	files := makePermFiles(t, d)

	step(t, "anyone lists the directories and sees each file's owner, group and mode", func(t *testing.T) {
		wantModes(t, d, files, map[string]string{
			"volume": "600 0 0", "encrypted volume": "600 0 0",
			"snapshot": "400 0 0", "encrypted snapshot": "400 0 0",
		})
	})

	for _, who := range []*syscall.Credential{unprivileged, volumeMember} {
		step(t, whoName(who)+" is refused every operation on every file", func(t *testing.T) {
			refusedEverything(t, files, who)
		})
	}

	step(t, "root reads and writes them", func(t *testing.T) {
		runPermCases(t, files, []permCase{
			{nil, "encrypted volume", opRead, "", nil},
			{nil, "encrypted snapshot", opRead, "", nil},
			{nil, "volume", opDD, "", func(t *testing.T) {
				requireContent(t, files.path["volume"], append(make([]byte, 4096), files.content["volume"][4096:]...))
			}},
		})
	})
}

// reachableDir is a fresh directory other users may enter (t.TempDir's
// parent is private), removed at cleanup, after the daemon's own cleanup.
func reachableDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "cvmnt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// makePermFiles creates a volume and an encrypted volume, writes 64 KiB of
// recognisable plaintext at the start of each, and snapshots both.
func makePermFiles(t *testing.T, d *daemon) permFiles {
	t.Helper()
	files := permFiles{path: map[string]string{}, content: map[string][]byte{}}
	var enc volume
	d.mustJSON(t, d.mustCLI(t, "create-volume", "--size", "64MiB", "--encrypted"), &enc)
	for kind, id := range map[string]string{"volume": d.createVolume(t, "64MiB").VolumeId, "encrypted volume": enc.VolumeId} {
		content := bytes.Repeat([]byte("plaintext of "+id+"\n"), 65536)[:65536]
		writeAt(t, d.volumePath(id), content, 0)
		snapKind := strings.Replace(kind, "volume", "snapshot", 1)
		files.path[kind], files.content[kind] = d.volumePath(id), content
		files.path[snapKind], files.content[snapKind] = d.snapshotPath(d.createSnapshot(t, id, "--wait").SnapshotId), content
	}
	return files
}

// wantModes checks, as an unprivileged user, that the mount root and
// snapshots/ are listable (0755) and list the files, and that each file of
// the given kinds shows "mode uid gid" as want says.
func wantModes(t *testing.T, d *daemon, files permFiles, want map[string]string) {
	t.Helper()
	for _, dir := range []string{d.MountDir, filepath.Join(d.MountDir, "snapshots")} {
		r := runAs(unprivileged, cmdTimeout, nil, "stat", "-c", "%a", dir)
		if r.Code != 0 || strings.TrimSpace(r.Stdout) != "755" {
			t.Errorf("stat %s as uid 65534: %v; want mode 755", dir, r)
		}
		r = runAs(unprivileged, cmdTimeout, nil, "ls", dir)
		for _, kind := range kinds {
			if filepath.Dir(files.path[kind]) == dir && !strings.Contains(r.Stdout, filepath.Base(files.path[kind])) {
				t.Errorf("ls %s as uid 65534: %v; want it to list %s", dir, r, filepath.Base(files.path[kind]))
			}
		}
	}
	for kind, w := range want {
		r := runAs(unprivileged, cmdTimeout, nil, "stat", "-c", "%a %u %g", files.path[kind])
		if r.Code != 0 || strings.TrimSpace(r.Stdout) != w {
			t.Errorf("stat -c '%%a %%u %%g' of the %s as uid 65534: %v; want %q", kind, r, w)
		}
	}
}

// refusedEverything checks that who is refused every operation on every
// file, and reads nothing.
func refusedEverything(t *testing.T, files permFiles, who *syscall.Credential) {
	t.Helper()
	var cases []permCase
	for _, kind := range kinds {
		for _, op := range everyOp {
			want := errAccess
			if op.name == opChmod.name {
				want = errPerm // chmod needs no open; only the owner may
			}
			cases = append(cases, permCase{who, kind, op, want, nil})
		}
	}
	runPermCases(t, files, cases)
}

// runPermCases runs each case in order: a refused operation must fail
// with its error and print nothing of the file; a read that succeeds must
// return the file's content.
func runPermCases(t *testing.T, files permFiles, cases []permCase) {
	t.Helper()
	for _, c := range cases {
		argv := c.op.argv(files.path[c.kind])
		r := runAs(c.who, cmdTimeout, nil, argv[0], argv[1:]...)
		what := fmt.Sprintf("%s of the %s as %s", c.op.name, c.kind, whoName(c.who))
		switch {
		case c.want == "" && r.Code != 0:
			t.Errorf("%s: %s; want it to succeed", what, brief(r))
		case c.want == "" && c.op.name == opRead.name && r.Stdout != string(files.content[c.kind]):
			t.Errorf("%s: read %d bytes, not the file's content", what, len(r.Stdout))
		case c.want != "" && (r.Code == 0 || !strings.Contains(r.Stderr, c.want)):
			t.Errorf("%s: %s; want it refused: %s", what, brief(r), c.want)
		case c.want != "" && r.Stdout != "":
			t.Errorf("%s was refused but printed %d bytes of it", what, len(r.Stdout))
		default:
			t.Logf("%s: %s", what, outcome(r))
			if c.then != nil {
				c.then(t)
			}
		}
	}
}

// brief describes how a command ended without what it printed on stdout
// (a file's content).
func brief(r result) string {
	return fmt.Sprintf("exit %d, %d bytes on stdout, stderr %q", r.Code, len(r.Stdout), strings.TrimSpace(r.Stderr))
}

// outcome is how a case ended, for the log.
func outcome(r result) string {
	if r.Code == 0 {
		return "done"
	}
	return "refused: " + strings.TrimSpace(r.Stderr)
}

// whoName names a test user.
func whoName(c *syscall.Credential) string {
	switch {
	case c == nil:
		return "root"
	case len(c.Groups) > 0:
		return fmt.Sprintf("uid %d (groups %v)", c.Uid, c.Groups)
	default:
		return fmt.Sprintf("uid %d", c.Uid)
	}
}

// writeAt writes data at off in file and syncs it, failing the test on error.
func writeAt(t testing.TB, file string, data []byte, off int64) {
	t.Helper()
	f, err := os.OpenFile(file, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(data, off); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

// requireContent fails the test unless file (as root) starts with want.
func requireContent(t testing.TB, file string, want []byte) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := make([]byte, len(want))
	if _, err := f.ReadAt(got, 0); err != nil {
		t.Fatalf("read %s: %v", file, err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s does not start with the %d bytes it should hold", file, len(want))
	}
}
