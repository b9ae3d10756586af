package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestResolvePath: links anywhere in the path are followed, relative ones
// from their own directory; a missing tail is kept; a loop is an error.
func TestResolvePath(t *testing.T) {
	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	mustMkdir(t, filepath.Join(base, "real", "sub"))
	mustSymlink(t, filepath.Join(base, "real"), filepath.Join(base, "abs"))
	mustSymlink(t, "real/sub", filepath.Join(base, "rel"))
	mustSymlink(t, filepath.Join(base, "missing"), filepath.Join(base, "dangling"))
	mustSymlink(t, "loop2", filepath.Join(base, "loop1"))
	mustSymlink(t, "loop1", filepath.Join(base, "loop2"))
	for _, tc := range []struct {
		path, want, err string
	}{
		{"real", "real", ""},
		{"abs", "real", ""},
		{"abs/sub", "real/sub", ""},
		{"rel", "real/sub", ""},
		{"abs/new/deeper", "real/new/deeper", ""},
		{"dangling", "missing", ""},
		{"dangling/x", "missing/x", ""},
		{"loop1", "", "too many levels of symbolic links"},
	} {
		got, err := resolvePath(filepath.Join(base, tc.path))
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("resolvePath(%s) = %q, %v; want an error containing %q", tc.path, got, err, tc.err)
		case tc.err == "" && (err != nil || got != filepath.Join(base, tc.want)):
			t.Errorf("resolvePath(%s) = %q, %v; want %s", tc.path, got, err, filepath.Join(base, tc.want))
		}
	}
}

func mustMkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

func mustSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}
