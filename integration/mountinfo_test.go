package integration

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// mountEntry is one line of /proc/self/mountinfo.
type mountEntry struct {
	MountPoint string
	FSType     string
	Source     string
}

// mounts parses /proc/self/mountinfo (proc(5)): field 5 is the mount point,
// then optional fields up to "-", then fstype and source. Paths escape space,
// tab, newline and backslash as \ooo octal.
func mounts() ([]mountEntry, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []mountEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		e := mountEntry{MountPoint: unescapeMountinfo(fields[4])}
		for i := 5; i < len(fields); i++ {
			if fields[i] == "-" && i+2 < len(fields) {
				e.FSType = fields[i+1]
				e.Source = unescapeMountinfo(fields[i+2])
				break
			}
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// mountAt returns the topmost mount at dir, if dir is a mount point.
func mountAt(dir string) (mountEntry, bool, error) {
	dir = resolveDir(filepath.Clean(dir))
	ms, err := mounts()
	if err != nil {
		return mountEntry{}, false, err
	}
	for i := len(ms) - 1; i >= 0; i-- {
		if ms[i].MountPoint == dir {
			return ms[i], true, nil
		}
	}
	return mountEntry{}, false, nil
}

// resolveDir resolves the symbolic links in dir as far as it can. A dead
// FUSE mount answers ENOTCONN to stat, so a link to one is read with
// readlink, which does not look behind it.
func resolveDir(dir string) string {
	for range 40 {
		if real, err := filepath.EvalSymlinks(dir); err == nil {
			return real
		}
		target, err := os.Readlink(dir)
		if err != nil {
			return dir
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(dir), target)
		}
		dir = target
	}
	return dir
}

// isMountpoint reports whether dir is a mount point, failing the test if
// /proc/self/mountinfo cannot be read.
func isMountpoint(t testing.TB, dir string) bool {
	t.Helper()
	_, ok, err := mountAt(dir)
	if err != nil {
		t.Fatalf("reading /proc/self/mountinfo: %v", err)
	}
	return ok
}
