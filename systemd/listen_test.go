package systemd

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// passedFDs dups files to consecutive free fds from a high number, without
// close-on-exec, as systemd passes them from fd 3, and returns the first.
// The Go runtime owns the low fds of a test binary, hence the high ones.
// The dups are closed at the end of the test unless adopted.
type passedFDs struct {
	t       *testing.T
	start   int
	n       int
	adopted map[int]bool
}

func passFDs(t *testing.T, files ...*os.File) *passedFDs {
	t.Helper()
	p := &passedFDs{t: t, n: len(files), adopted: map[int]bool{}}
	for base := 300; base < 1000 && p.start == 0; base += 50 {
		free := true
		for fd := base; fd < base+len(files)+1; fd++ {
			if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil {
				free = false
			}
		}
		if free {
			p.start = base
		}
	}
	if p.start == 0 {
		t.Fatal("no free fd range")
	}
	for i, f := range files {
		rc, err := f.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var derr error
		if err := rc.Control(func(fd uintptr) { derr = unix.Dup3(int(fd), p.start+i, 0) }); err != nil || derr != nil {
			t.Fatal(err, derr)
		}
	}
	t.Cleanup(func() {
		for fd := p.start; fd < p.start+p.n; fd++ {
			if !p.adopted[fd] {
				unix.Close(fd)
			}
		}
	})
	return p
}

// adopt closes the files listenFiles returned for our fds; the test must
// not close those fds again.
func (p *passedFDs) adopt(files map[string][]*os.File) {
	for _, fs := range files {
		for _, f := range fs {
			p.adopted[int(f.Fd())] = true
			f.Close()
		}
	}
}

func (p *passedFDs) cloexec(i int) bool {
	flags, err := unix.FcntlInt(uintptr(p.start+i), unix.F_GETFD, 0)
	if err != nil {
		p.t.Fatal(err)
	}
	return flags&unix.FD_CLOEXEC != 0
}

// TestListenFiles checks the parsing of LISTEN_PID, LISTEN_FDS and
// LISTEN_FDNAMES on fds placed where the environment says.
func TestListenFiles(t *testing.T) {
	const pid = 4242
	tests := []struct {
		name    string
		env     map[string]string
		passed  int              // fds actually open from start
		want    map[string][]int // name -> indexes of the passed fds
		wantErr error
		cloexec bool // whether the passed fds end close-on-exec
	}{
		{name: "nothing passed", env: map[string]string{}, passed: 2},
		{name: "fds for another pid", env: map[string]string{"LISTEN_PID": "4243", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "a:b"}, passed: 2},
		{name: "pid not a number", env: map[string]string{"LISTEN_PID": "me", "LISTEN_FDS": "1"}, passed: 1, wantErr: ErrBadEnvironment},
		{name: "pid zero", env: map[string]string{"LISTEN_PID": "0", "LISTEN_FDS": "1"}, passed: 1, wantErr: ErrBadEnvironment},
		{name: "no count", env: map[string]string{"LISTEN_PID": "4242"}, passed: 1},
		{name: "zero fds", env: map[string]string{"LISTEN_PID": "4242", "LISTEN_FDS": "0"}, passed: 1},
		{name: "count not a number", env: map[string]string{"LISTEN_PID": "4242", "LISTEN_FDS": "two"}, passed: 2, wantErr: ErrBadEnvironment},
		{name: "negative count", env: map[string]string{"LISTEN_PID": "4242", "LISTEN_FDS": "-1"}, passed: 1, wantErr: ErrBadEnvironment},
		{name: "huge count", env: map[string]string{"LISTEN_PID": "4242", "LISTEN_FDS": "100000"}, passed: 1, wantErr: ErrBadEnvironment},
		{name: "count beyond the open fds", env: map[string]string{"LISTEN_PID": "4242", "LISTEN_FDS": "3"}, passed: 2, wantErr: ErrBadEnvironment, cloexec: true},
		{name: "names missing", env: map[string]string{"LISTEN_PID": "4242", "LISTEN_FDS": "2"}, passed: 2,
			want: map[string][]int{UnknownName: {0, 1}}, cloexec: true},
		{name: "too few names", env: map[string]string{"LISTEN_PID": "4242", "LISTEN_FDS": "3", "LISTEN_FDNAMES": "fuse:control"}, passed: 3,
			wantErr: ErrBadEnvironment, cloexec: true},
		{name: "too many names", env: map[string]string{"LISTEN_PID": "4242", "LISTEN_FDS": "1", "LISTEN_FDNAMES": "fuse:control"}, passed: 1,
			wantErr: ErrBadEnvironment, cloexec: true},
		{name: "named", env: map[string]string{"LISTEN_PID": "4242", "LISTEN_FDS": "4", "LISTEN_FDNAMES": "control:fuse:lock:control"}, passed: 4,
			want: map[string][]int{"control": {0, 3}, "fuse": {1}, "lock": {2}}, cloexec: true},
		{name: "empty name", env: map[string]string{"LISTEN_PID": "4242", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "fuse:"}, passed: 2,
			want: map[string][]int{"fuse": {0}, "": {1}}, cloexec: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var originals []*os.File
			for range tt.passed {
				_, w := pipe(t)
				originals = append(originals, w)
			}
			p := passFDs(t, originals...)
			lookup := func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }
			files, err := listenFiles(lookup, pid, p.start)
			defer p.adopt(files)
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			}
			for i := range tt.passed {
				if got := p.cloexec(i); got != tt.cloexec {
					t.Errorf("passed fd %d close-on-exec %v, want %v", i, got, tt.cloexec)
				}
			}
			if len(files) != len(tt.want) {
				t.Fatalf("got %d names (%v), want %d", len(files), keys(files), len(tt.want))
			}
			for name, idx := range tt.want {
				got := files[name]
				if len(got) != len(idx) {
					t.Fatalf("%q: %d files, want %d", name, len(got), len(idx))
				}
				for j, i := range idx {
					if int(got[j].Fd()) != p.start+i || got[j].Name() != name {
						t.Errorf("%q[%d] is fd %d named %q, want fd %d", name, j, got[j].Fd(), got[j].Name(), p.start+i)
					}
					if idOfFile(t, got[j]) != idOfFile(t, originals[i]) {
						t.Errorf("%q[%d] is not the passed file", name, j)
					}
				}
			}
		})
	}
}

func keys(m map[string][]*os.File) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// filesReport is what the helper process says about what Files gave it.
type filesReport struct {
	Names    map[string][]fileID
	CloExec  []bool            // fds 3, 4, 5
	Env      map[string]string // LISTEN_* left in the environment
	Leaked   string            // fds 3-5 a child shell still had
	ErrorMsg string
}

// TestFilesFromExec runs Files where systemd would: in a process started
// with fds 3, 4, 5 and LISTEN_PID set to its own pid (by a shell that
// exports $$ and execs the helper).
func TestFilesFromExec(t *testing.T) {
	if os.Getenv("COWVOL_SYSTEMD_FILES_HELPER") == "1" {
		filesHelper()
		return
	}
	_, w1 := pipe(t)
	_, w2 := pipe(t)
	lock, err := os.CreateTemp(t.TempDir(), "lock")
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	cmd := exec.Command("/bin/sh", "-c", `export LISTEN_PID=$$; exec "$0" "$@"`, os.Args[0], "-test.run=^TestFilesFromExec$")
	cmd.Env = append(os.Environ(), "COWVOL_SYSTEMD_FILES_HELPER=1", "LISTEN_FDS=3", "LISTEN_FDNAMES=control:fuse:control")
	cmd.ExtraFiles = []*os.File{w1, lock, w2}
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	line := out
	if i := strings.Index(string(out), "\n"); i >= 0 {
		line = out[:i]
	}
	var rep filesReport
	if err := json.Unmarshal(line, &rep); err != nil {
		t.Fatalf("helper said %q: %v", out, err)
	}
	if rep.ErrorMsg != "" {
		t.Fatal(rep.ErrorMsg)
	}
	want := map[string][]fileID{
		"control": {idOfFile(t, w1), idOfFile(t, w2)},
		"fuse":    {idOfFile(t, lock)},
	}
	if fmt.Sprint(rep.Names) != fmt.Sprint(want) {
		t.Errorf("files %v, want %v", rep.Names, want)
	}
	for i, c := range rep.CloExec {
		if !c {
			t.Errorf("fd %d not close-on-exec", 3+i)
		}
	}
	if len(rep.Env) != 0 {
		t.Errorf("left in the environment: %v", rep.Env)
	}
	if rep.Leaked != "" {
		t.Errorf("a child still had fds %s", rep.Leaked)
	}
}

// filesHelper is the helper process of TestFilesFromExec: it prints a
// filesReport as JSON on the first line of stdout.
func filesHelper() {
	rep := filesReport{Names: map[string][]fileID{}, Env: map[string]string{}}
	defer func() {
		b, _ := json.Marshal(rep)
		fmt.Printf("%s\n", b)
	}()
	files, err := Files()
	if err != nil {
		rep.ErrorMsg = err.Error()
		return
	}
	for name, fs := range files {
		for _, f := range fs {
			var st unix.Stat_t
			if err := unix.Fstat(int(f.Fd()), &st); err != nil {
				rep.ErrorMsg = err.Error()
				return
			}
			rep.Names[name] = append(rep.Names[name], fileID{st.Dev, st.Ino})
		}
	}
	for fd := 3; fd <= 5; fd++ {
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		rep.CloExec = append(rep.CloExec, err == nil && flags&unix.FD_CLOEXEC != 0)
	}
	for _, k := range []string{EnvListenPID, EnvListenFDs, EnvListenFDNames} {
		if v, ok := os.LookupEnv(k); ok {
			rep.Env[k] = v
		}
	}
	out, err := exec.Command("/bin/sh", "-c", `for f in 3 4 5; do [ -e /proc/$$/fd/$f ] && printf '%s ' $f; done; true`).Output()
	if err != nil {
		rep.ErrorMsg = err.Error()
	}
	rep.Leaked = strings.TrimSpace(string(out))
}
