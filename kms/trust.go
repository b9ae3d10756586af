package kms

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
)

// ErrUnsafeKeyring: the keyring, a key file, or a directory or symlink on
// the way to them could be read or replaced by someone other than root and
// the daemon's user. The error is an *UnsafePathError.
var ErrUnsafeKeyring = errors.New("keyring not private")

// UnsafePathError says which path makes the keyring unsafe, why, and
// what to do.
type UnsafePathError struct {
	Path    string      // the offending path
	Owner   uint32      // its owner's uid
	Mode    fs.FileMode // its mode
	Problem string      // e.g. "is a directory writable by others"
	Advice  string      // why it matters and what to do
}

func (e *UnsafePathError) Error() string {
	return fmt.Sprintf("%s %s (owner %s, mode %s): %s", e.Path, e.Problem, owner(e.Owner), octal(e.Mode), e.Advice)
}

// Is makes errors.Is(err, ErrUnsafeKeyring) hold.
func (e *UnsafePathError) Is(target error) bool { return target == ErrUnsafeKeyring }

// maxSymlinks bounds the symlinks a path may pass through, as Linux does.
const maxSymlinks = 40

// resolveTrusted resolves the absolute path dir as the kernel would,
// following symlinks, and checks that nobody but root and the daemon's
// euid could replace anything it passes through, as ssh and sudo check
// their files: every directory and symlink on the way is owned by one of
// them, and no directory is writable by group or others unless it is
// sticky (/tmp: others cannot rename or remove what they do not own).
// It returns the resolved path. If a component does not exist, the walk
// stops there: it returns the path resolved so far joined with the rest,
// and an error wrapping fs.ErrNotExist.
func resolveTrusted(dir string) (string, error) {
	rest := splitPath(dir)
	cur := "/"
	if err := checkDir(cur); err != nil {
		return "", err
	}
	for hops := 0; len(rest) > 0; {
		name := rest[0]
		rest = rest[1:]
		switch name {
		case ".":
			continue
		case "..": // cur holds no symlinks, so its parent is lexical
			cur = filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, name)
		fi, err := os.Lstat(next)
		if errors.Is(err, fs.ErrNotExist) {
			return filepath.Join(append([]string{next}, rest...)...), err
		}
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			if err := checkDirInfo(next, fi); err != nil {
				return "", err
			}
			cur = next
			continue
		}
		if err := checkOwner(next, fi, "symlink"); err != nil {
			return "", err
		}
		if hops++; hops > maxSymlinks {
			return "", fmt.Errorf("%s: more than %d symlinks", dir, maxSymlinks)
		}
		target, err := os.Readlink(next)
		if err != nil {
			return "", err
		}
		if filepath.IsAbs(target) {
			cur = "/"
		}
		rest = append(splitPath(target), rest...)
	}
	return cur, nil
}

// splitPath splits p into its names, dropping empty ones.
func splitPath(p string) []string {
	var names []string
	for _, n := range strings.Split(p, "/") {
		if n != "" {
			names = append(names, n)
		}
	}
	return names
}

// checkDir checks the directory at path (not a symlink) as resolveTrusted
// does.
func checkDir(path string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	return checkDirInfo(path, fi)
}

func checkDirInfo(path string, fi fs.FileInfo) error {
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", path)
	}
	if err := checkOwner(path, fi, "directory"); err != nil {
		return err
	}
	if w := fi.Mode().Perm() & 0o022; w != 0 && fi.Mode()&fs.ModeSticky == 0 {
		who := map[fs.FileMode]string{0o020: "group", 0o002: "others", 0o022: "group and others"}[w]
		return &UnsafePathError{Path: path, Owner: uid(fi), Mode: fi.Mode(),
			Problem: "is a directory writable by " + who,
			Advice: fmt.Sprintf("whoever can write it could swap the keyring or anything on the way to it; "+
				"remove the write bits (chmod go-w %s) or keep the keyring elsewhere", path)}
	}
	return nil
}

// checkOwner refuses what is owned by neither root nor the daemon's euid:
// its owner could replace it (a directory's contents, a symlink's target,
// a key file).
func checkOwner(path string, fi fs.FileInfo, what string) error {
	if u := uid(fi); u == 0 || u == uint32(os.Geteuid()) {
		return nil
	}
	return &UnsafePathError{Path: path, Owner: uid(fi), Mode: fi.Mode(),
		Problem: fmt.Sprintf("is a %s owned by another user", what),
		Advice: fmt.Sprintf("its owner could swap the keyring or its keys; only %s may own the keyring, its keys and the directories and symlinks on the way to them "+
			"(chown %s %s, or keep the keyring elsewhere)", trustedOwners(), chownTo(), path)}
}

// uid is the owner of fi.
func uid(fi fs.FileInfo) uint32 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Uid
	}
	return ^uint32(0) // unknown: trust nothing
}

// owner names a uid: "uid 1000 (alice)", or "uid 1000" unknown to the
// system.
func owner(u uint32) string {
	s := fmt.Sprintf("uid %d", u)
	if usr, err := user.LookupId(fmt.Sprint(u)); err == nil {
		s += " (" + usr.Username + ")"
	}
	return s
}

// trustedOwners names who may own the keyring: root, and the daemon's
// user if it is not root.
func trustedOwners() string {
	if euid := uint32(os.Geteuid()); euid != 0 {
		return "root or the daemon's user, " + owner(euid) + ","
	}
	return "root (the daemon's user)"
}

// chownTo is what to chown the keyring's paths to: the daemon's user.
func chownTo() string {
	if usr, err := user.LookupId(fmt.Sprint(os.Geteuid())); err == nil {
		return usr.Username
	}
	return fmt.Sprint(os.Geteuid())
}

// octal formats a mode as chmod takes it: 1777, 0755.
func octal(m fs.FileMode) string {
	o := uint32(m.Perm())
	if m&fs.ModeSticky != 0 {
		o |= 0o1000
	}
	if m&fs.ModeSetgid != 0 {
		o |= 0o2000
	}
	if m&fs.ModeSetuid != 0 {
		o |= 0o4000
	}
	return fmt.Sprintf("%04o", o)
}

// fileKind names the type of a file that is not a regular one.
func fileKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "a symlink"
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "a special file"
}
