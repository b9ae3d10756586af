package kms

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// otherUID owns what "another user" owns in these tests.
const otherUID = 12345

// mkdir makes dir with exactly mode (chmod, past the umask) and, if uid is
// not -1, owner uid.
func mkdir(t *testing.T, dir string, mode os.FileMode, uid int) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	chmodOwn(t, dir, mode, uid)
	return dir
}

func chmodOwn(t *testing.T, path string, mode os.FileMode, uid int) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	if uid >= 0 {
		if err := os.Lchown(path, uid, -1); err != nil {
			t.Fatal(err)
		}
	}
}

func symlink(t *testing.T, target, link string, uid int) string {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if uid >= 0 {
		if err := os.Lchown(link, uid, -1); err != nil {
			t.Fatal(err)
		}
	}
	return link
}

// TestOpenLocalChecksOwnersAndTheWay: OpenLocal refuses a keyring that
// someone other than root and the daemon's user could read or swap: by
// the owner or mode of the keyring, of a key file, or of any directory or
// symlink on the way to it (symlinks resolved). The message names the
// offending path, its owner and mode, and what to do; a refused keyring
// that did not exist is not created. /tmp-like sticky directories are
// accepted, as ssh accepts them.
func TestOpenLocalChecksOwnersAndTheWay(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the cases chown to another user")
	}
	for _, tt := range []struct {
		name string
		// setup builds the case under base and returns the keyring
		// path to open and, for a refusal, the offending path.
		setup func(t *testing.T, base string) (keyring, bad string)
		// want: the message's problem, owner, mode and advice.
		want []string
		// resolved: where an accepted keyring lives, relative to base.
		resolved string
	}{
		{name: "a new keyring under private directories",
			setup:    func(t *testing.T, base string) (string, string) { return filepath.Join(base, "etc", "keyring"), "" },
			resolved: "etc/keyring"},
		{name: "under a sticky directory open to all, as /tmp",
			setup: func(t *testing.T, base string) (string, string) {
				return filepath.Join(mkdir(t, filepath.Join(base, "tmp"), 0o777|os.ModeSticky, -1), "keyring"), ""
			},
			resolved: "tmp/keyring"},
		{name: "a parent writable by others",
			setup: func(t *testing.T, base string) (string, string) {
				pub := mkdir(t, filepath.Join(base, "pub"), 0o777, -1)
				return filepath.Join(pub, "keyring"), pub
			},
			want: []string{"is a directory writable by group and others (owner uid 0 (root), mode 0777)", "chmod go-w "}},
		{name: "a parent writable by others only",
			setup: func(t *testing.T, base string) (string, string) {
				pub := mkdir(t, filepath.Join(base, "pub"), 0o757, -1)
				return filepath.Join(pub, "keyring"), pub
			},
			want: []string{"is a directory writable by others (owner uid 0 (root), mode 0757)"}},
		{name: "a parent writable by its group",
			setup: func(t *testing.T, base string) (string, string) {
				grp := mkdir(t, filepath.Join(base, "grp"), 0o775, -1)
				return filepath.Join(grp, "keyring"), grp
			},
			want: []string{"is a directory writable by group (owner uid 0 (root), mode 0775)"}},
		{name: "a grandparent writable by others, the parent private",
			setup: func(t *testing.T, base string) (string, string) {
				pub := mkdir(t, filepath.Join(base, "pub"), 0o777, -1)
				mkdir(t, filepath.Join(pub, "priv"), 0o700, -1)
				return filepath.Join(pub, "priv", "keyring"), pub
			},
			want: []string{"writable by group and others", "mode 0777"}},
		{name: "a parent owned by another user",
			setup: func(t *testing.T, base string) (string, string) {
				home := mkdir(t, filepath.Join(base, "home"), 0o755, otherUID)
				mkdir(t, filepath.Join(home, "keyring"), 0o700, -1)
				return filepath.Join(home, "keyring"), home
			},
			want: []string{"is a directory owned by another user (owner uid 12345, mode 0755)", "chown root "}},
		{name: "a sticky directory owned by another user",
			setup: func(t *testing.T, base string) (string, string) {
				tmp := mkdir(t, filepath.Join(base, "tmp"), 0o777|os.ModeSticky, otherUID)
				return filepath.Join(tmp, "keyring"), tmp
			},
			want: []string{"owned by another user (owner uid 12345, mode 1777)"}},
		{name: "the keyring owned by another user",
			setup: func(t *testing.T, base string) (string, string) {
				k := mkdir(t, filepath.Join(base, "keyring"), 0o700, otherUID)
				return k, k
			},
			want: []string{"owned by another user (owner uid 12345, mode 0700)"}},
		{name: "the keyring open to others",
			setup: func(t *testing.T, base string) (string, string) {
				k := mkdir(t, filepath.Join(base, "keyring"), 0o750, -1)
				return k, k
			},
			want: []string{"is open to others (owner uid 0 (root), mode 0750): it holds keys, make it private (chmod 700 "}},
		{name: "a key file owned by another user",
			setup: func(t *testing.T, base string) (string, string) {
				k, f := keyringWithKey(t, base)
				chmodOwn(t, f, 0o600, otherUID)
				return k, f
			},
			want: []string{"is a key file owned by another user (owner uid 12345, mode 0600)"}},
		{name: "a key file open to others",
			setup: func(t *testing.T, base string) (string, string) {
				k, f := keyringWithKey(t, base)
				chmodOwn(t, f, 0o644, -1)
				return k, f
			},
			want: []string{"is a key file open to others (owner uid 0 (root), mode 0644): make it private (chmod 600 "}},
		{name: "a key file that is a symlink",
			setup: func(t *testing.T, base string) (string, string) {
				k, f := keyringWithKey(t, base)
				moved := filepath.Join(base, "moved.json")
				if err := os.Rename(f, moved); err != nil {
					t.Fatal(err)
				}
				return k, symlink(t, moved, f, -1)
			},
			want: []string{"is a symlink, not a regular file"}},
		{name: "a symlink to a keyring behind a directory writable by others",
			setup: func(t *testing.T, base string) (string, string) {
				pub := mkdir(t, filepath.Join(base, "pub"), 0o777, -1)
				mkdir(t, filepath.Join(pub, "keyring"), 0o700, -1)
				return symlink(t, filepath.Join(pub, "keyring"), filepath.Join(base, "keyring"), -1), pub
			},
			want: []string{"writable by group and others"}},
		{name: "another user's symlink in a sticky directory",
			setup: func(t *testing.T, base string) (string, string) {
				tmp := mkdir(t, filepath.Join(base, "tmp"), 0o777|os.ModeSticky, -1)
				safe := mkdir(t, filepath.Join(base, "safe", "keyring"), 0o700, -1)
				link := symlink(t, safe, filepath.Join(tmp, "keyring"), otherUID)
				return link, link
			},
			want: []string{"is a symlink owned by another user (owner uid 12345, mode 0777)"}},
		{name: "root's symlinks, absolute and relative, to a private keyring",
			setup: func(t *testing.T, base string) (string, string) {
				mkdir(t, filepath.Join(base, "real", "keyring"), 0o700, -1)
				mkdir(t, filepath.Join(base, "a"), 0o755, -1)
				rel := symlink(t, "../real", filepath.Join(base, "a", "rel"), -1)
				return symlink(t, filepath.Join(rel, "keyring"), filepath.Join(base, "abs"), -1), ""
			},
			resolved: "real/keyring"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			base := t.TempDir()
			keyring, bad := tt.setup(t, base)
			_, statErr := os.Lstat(keyring)
			k, err := OpenLocal(keyring, region, account)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("OpenLocal(%s): %v", keyring, err)
				}
				want, _ := filepath.EvalSymlinks(filepath.Join(base, tt.resolved))
				if k.Dir() != want {
					t.Errorf("Dir() = %s, want the resolved %s", k.Dir(), want)
				}
				if fi, err := os.Stat(k.Dir()); err != nil || fi.Mode().Perm() != 0o700 {
					t.Errorf("keyring %v, %v; want a 0700 directory", fi, err)
				}
				return
			}
			var ue *UnsafePathError
			if !errors.As(err, &ue) || !errors.Is(err, ErrUnsafeKeyring) || ue.Path != bad {
				t.Fatalf("OpenLocal(%s) = %v; want an *UnsafePathError naming %s", keyring, err, bad)
			}
			msg := err.Error()
			for _, w := range append([]string{"keyring " + keyring + ": " + bad + " "}, tt.want...) {
				if !strings.Contains(msg, w) {
					t.Errorf("message lacks %q:\n%s", w, msg)
				}
			}
			if _, err := os.Lstat(keyring); os.IsNotExist(statErr) != os.IsNotExist(err) {
				t.Errorf("a refused keyring was created: %v", err)
			}
		})
	}
}

// keyringWithKey makes a keyring under base with one key, and returns
// the keyring and the key's file.
func keyringWithKey(t *testing.T, base string) (keyring, file string) {
	t.Helper()
	keyring = filepath.Join(base, "keyring")
	info, err := openTest(t, keyring).CreateKey("", "")
	if err != nil {
		t.Fatal(err)
	}
	return keyring, filepath.Join(keyring, info.KeyID+".json")
}

// TestOpenLocalOddPaths: paths that are not keyrings at all are refused
// with the path in the message, and nothing is created.
func TestOpenLocalOddPaths(t *testing.T) {
	base := t.TempDir()
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	loop := filepath.Join(base, "loop")
	if err := os.Symlink(loop, loop); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ path, want string }{
		{file, file + " is not a directory"},
		{filepath.Join(file, "keyring"), file + " is not a directory"},
		{loop, "more than 40 symlinks"},
	} {
		_, err := OpenLocal(tt.path, region, account)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "keyring "+tt.path+": ") {
			t.Errorf("OpenLocal(%s) = %v; want %q", tt.path, err, tt.want)
		}
	}
}
