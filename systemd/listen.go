package systemd

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// The variables systemd sets for a service it passes fds to.
const (
	EnvListenPID     = "LISTEN_PID"     // the pid the fds are for
	EnvListenFDs     = "LISTEN_FDS"     // how many: fds 3, 4, ... 3+n-1
	EnvListenFDNames = "LISTEN_FDNAMES" // their names, ':'-separated
)

const (
	// listenFDsStart is the first passed fd (SD_LISTEN_FDS_START).
	listenFDsStart = 3
	// maxListenFDs bounds LISTEN_FDS, far above any FileDescriptorStoreMax
	// cowvol uses, so that a garbage value cannot make Files walk the fd
	// table.
	maxListenFDs = 4096
	// UnknownName is the name of a passed fd when systemd sent no
	// LISTEN_FDNAMES (as sd_listen_fds_with_names(3) names them).
	UnknownName = "unknown"
)

// Files returns the fds systemd passed to this process, by name: socket
// units' fds under their FileDescriptorName= (default: the socket unit's
// name), fd-store fds under the FDNAME they were stored with, several fds
// under one name in fd order. They count only if LISTEN_PID is this
// process's pid (otherwise the variables were inherited from a parent and
// the fds are not ours); without LISTEN_FDNAMES every fd is named
// UnknownName. The returned files are close-on-exec, so they do not leak
// into a child unless passed on purpose, and LISTEN_PID, LISTEN_FDS and
// LISTEN_FDNAMES are removed from the environment in every case, so that
// neither a child nor a re-executed image reads them again. Call it once,
// early, before starting any other process. It returns nil and no error
// when nothing was passed.
//
// Bad variables (a LISTEN_PID or LISTEN_FDS that is not a number, a count
// out of range, a number of names that does not match the count, an fd
// that is not open) are ErrBadEnvironment; the fds that are open are still
// made close-on-exec.
func Files() (map[string][]*os.File, error) {
	defer func() {
		os.Unsetenv(EnvListenPID)
		os.Unsetenv(EnvListenFDs)
		os.Unsetenv(EnvListenFDNames)
	}()
	return listenFiles(os.LookupEnv, os.Getpid(), listenFDsStart)
}

// listenFiles is Files with its inputs explicit: lookup reads the
// environment, pid is this process's, and the passed fds are start,
// start+1, ... (3 under systemd; tests use higher numbers because the Go
// runtime owns the low ones in a test binary).
func listenFiles(lookup func(string) (string, bool), pid, start int) (map[string][]*os.File, error) {
	pidText, ok := lookup(EnvListenPID)
	if !ok {
		return nil, nil
	}
	listenPID, err := strconv.Atoi(pidText)
	if err != nil || listenPID <= 0 {
		return nil, fmt.Errorf("%w: %s=%q is not a pid", ErrBadEnvironment, EnvListenPID, pidText)
	}
	if listenPID != pid {
		return nil, nil // inherited: for another process
	}
	countText, ok := lookup(EnvListenFDs)
	if !ok {
		return nil, nil
	}
	n, err := strconv.Atoi(countText)
	if err != nil || n < 0 || n > maxListenFDs {
		return nil, fmt.Errorf("%w: %s=%q is not a count from 0 to %d", ErrBadEnvironment, EnvListenFDs, countText, maxListenFDs)
	}
	if n == 0 {
		return nil, nil
	}
	if err := closeOnExec(start, n); err != nil {
		return nil, err
	}
	names, err := fdNames(lookup, n)
	if err != nil {
		return nil, err
	}
	files := make(map[string][]*os.File, n)
	for i, name := range names {
		files[name] = append(files[name], os.NewFile(uintptr(start+i), name))
	}
	return files, nil
}

// closeOnExec sets FD_CLOEXEC on fds start..start+n-1: every one that is
// open, even when another is not (which it reports).
func closeOnExec(start, n int) error {
	var bad []string
	for fd := start; fd < start+n; fd++ {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
			bad = append(bad, fmt.Sprintf("fd %d: %v", fd, err))
			continue
		}
		unix.CloseOnExec(fd)
	}
	if bad != nil {
		return fmt.Errorf("%w: %s=%d but %s", ErrBadEnvironment, EnvListenFDs, n, strings.Join(bad, ", "))
	}
	return nil
}

// fdNames returns the n names in LISTEN_FDNAMES, or UnknownName n times
// when it is unset.
func fdNames(lookup func(string) (string, bool), n int) ([]string, error) {
	text, ok := lookup(EnvListenFDNames)
	if !ok {
		names := make([]string, n)
		for i := range names {
			names[i] = UnknownName
		}
		return names, nil
	}
	names := strings.Split(text, ":")
	if len(names) != n {
		return nil, fmt.Errorf("%w: %s=%q has %d names for %s=%d", ErrBadEnvironment, EnvListenFDNames, text, len(names), EnvListenFDs, n)
	}
	return names, nil
}
