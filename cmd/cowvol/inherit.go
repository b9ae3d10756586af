package main

import (
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// The descriptors one cowvol process hands another: the supervisor to the
// server it starts (ExtraFiles), and the supervisor to its own successor
// across an upgrade (exec). They are named in an environment variable,
// "name:fd,name:fd".
const (
	fdDevice = "device" // the FUSE connection (/dev/fuse)
	fdLock   = "lock"   // the data dir's lock
	fdSocket = "socket" // the control socket's listener
	fdTCP    = "tcp"    // the --listen listener
	fdReady  = "ready"  // server -> supervisor: a line when serving

	envServeFiles      = "COWVOL_SERVE_FDS"      // supervisor -> server
	envServeMode       = "COWVOL_SERVE_MODE"     // "fresh" or "takeover"
	envSupervisorFiles = "COWVOL_SUPERVISOR_FDS" // supervisor -> its successor
)

// files are descriptors by name.
type files map[string]*os.File

func (fs files) names() []string {
	names := make([]string, 0, len(fs))
	for n := range fs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// passTo hands fs to cmd: as its ExtraFiles (fd 3 on) and, named, in the
// environment variable env.
func (fs files) passTo(cmd *exec.Cmd, env string) {
	var spec []string
	for _, n := range fs.names() {
		spec = append(spec, fmt.Sprintf("%s:%d", n, 3+len(cmd.ExtraFiles)))
		cmd.ExtraFiles = append(cmd.ExtraFiles, fs[n])
	}
	cmd.Env = append(cmd.Env, env+"="+strings.Join(spec, ","))
}

// keepAcrossExec marks fs to survive an exec of this process and returns
// the environment entry that names them.
func (fs files) keepAcrossExec(env string) (string, error) {
	var spec []string
	for _, n := range fs.names() {
		fd := int(fs[n].Fd())
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0); err != nil {
			return "", fmt.Errorf("keep %s across exec: %w", n, err)
		}
		spec = append(spec, fmt.Sprintf("%s:%d", n, fd))
	}
	return env + "=" + strings.Join(spec, ","), nil
}

// inherited returns the descriptors named in the environment variable env
// (nil if it is unset), close-on-exec again, and unsets it.
func inherited(env string) (files, error) {
	spec, ok := os.LookupEnv(env)
	if !ok {
		return nil, nil
	}
	os.Unsetenv(env)
	fs := files{}
	for _, item := range strings.Split(spec, ",") {
		name, num, ok := strings.Cut(item, ":")
		fd, err := strconv.Atoi(num)
		if !ok || err != nil || fd < 3 {
			return nil, fmt.Errorf("%s: bad entry %q", env, item)
		}
		unix.CloseOnExec(fd)
		fs[name] = os.NewFile(uintptr(fd), name)
	}
	return fs, nil
}

// closeAll closes every descriptor.
func (fs files) closeAll() {
	for _, f := range fs {
		f.Close()
	}
}
