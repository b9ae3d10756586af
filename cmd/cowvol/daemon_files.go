package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// daemonDevices finds the processes of the daemon listening on socket
// (those holding its listening socket: the supervisor and its server) and
// returns the devices of the files and directories they hold open (its
// data dir, its state dir), each with the pid of one process holding it.
// Without /proc, or without such processes, it fails: the caller cannot
// then tell which file systems are safe to freeze.
func daemonDevices(socket string) (map[[2]uint32]int, error) {
	abs, err := filepath.Abs(socket)
	if err != nil {
		return nil, fmt.Errorf("--freeze: the daemon's socket %s: %w", socket, err)
	}
	path, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, fmt.Errorf("--freeze: the daemon's socket %s: %w", socket, err)
	}
	inodes, err := listeningSocketInodes("/proc/net/unix", path, abs, socket)
	if err != nil {
		return nil, fmt.Errorf("--freeze: %w", err)
	}
	pids, err := processesHolding(inodes)
	if err != nil {
		return nil, fmt.Errorf("--freeze: %w", err)
	}
	if len(pids) == 0 {
		return nil, fmt.Errorf("--freeze: no process in /proc holds the daemon's socket %s (run create-snapshot --freeze as root, "+
			"on the daemon's host): without it cowvol cannot check that the file systems to freeze do not hold the daemon's data", path)
	}
	held := make(map[[2]uint32]int)
	for _, pid := range pids {
		fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		if err != nil {
			return nil, fmt.Errorf("--freeze: the daemon's open files: %w", err)
		}
		for _, fd := range fds {
			var st unix.Stat_t
			if unix.Stat(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()), &st) != nil {
				continue // closed meanwhile
			}
			if t := st.Mode & unix.S_IFMT; t != unix.S_IFREG && t != unix.S_IFDIR {
				continue
			}
			dev := [2]uint32{unix.Major(st.Dev), unix.Minor(st.Dev)}
			if _, ok := held[dev]; !ok {
				held[dev] = pid
			}
		}
	}
	return held, nil
}

// listeningSocketInodes are the inodes of the listening unix sockets bound
// to one of paths, from /proc/net/unix ("Num RefCount Protocol Flags Type
// St Inode Path").
func listeningSocketInodes(procNetUnix string, paths ...string) (map[string]bool, error) {
	f, err := os.Open(procNetUnix)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	const acceptCon = 0x10000 // __SO_ACCEPTCON: listening
	inodes := make(map[string]bool)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 8 || !slices.Contains(paths, fields[7]) {
			continue
		}
		flags, err := strconv.ParseUint(fields[3], 16, 32)
		if err != nil || flags&acceptCon == 0 {
			continue
		}
		inodes[fields[6]] = true
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", procNetUnix, err)
	}
	return inodes, nil
}

// processesHolding are the pids of the processes with a descriptor of one
// of the sockets (by inode).
func processesHolding(inodes map[string]bool) ([]int, error) {
	if len(inodes) == 0 {
		return nil, nil
	}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		if err != nil {
			continue // gone, or not ours to read
		}
		for _, fd := range fds {
			link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
			if ino, ok := strings.CutPrefix(link, "socket:["); err == nil && ok && inodes[strings.TrimSuffix(ino, "]")] {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids, nil
}
