package main

import (
	"fmt"
	"os"
	"path/filepath"
)

// maxSymlinks bounds the links resolvePath follows, as the kernel's ELOOP does.
const maxSymlinks = 40

// resolvePath returns the absolute path p names with every symbolic link
// resolved, as far as it exists: a missing tail is kept as given (the
// daemon creates it). Unlike filepath.EvalSymlinks it also resolves a path
// that ends at a dead FUSE mount, which answers ENOTCONN to stat and
// lstat: it resolves the parent and reads the last element with lstat,
// which never looks behind it.
func resolvePath(p string) (string, error) {
	p, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	for range maxSymlinks {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			return r, nil
		}
		dir := filepath.Dir(p)
		if dir == p {
			return p, nil
		}
		if dir, err = resolvePath(dir); err != nil {
			return "", err
		}
		p = filepath.Join(dir, filepath.Base(p))
		fi, err := os.Lstat(p)
		if err != nil || fi.Mode()&os.ModeSymlink == 0 {
			return p, nil // missing, a dead mount, or not a link: the path itself
		}
		target, err := os.Readlink(p)
		if err != nil {
			return "", err
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(dir, target)
		}
		p = target
	}
	return "", fmt.Errorf("%s: too many levels of symbolic links", p)
}

// describePath is path as the user gave it, followed by what it resolves
// to when that differs: "/srv/link (/mnt/cowvol/data)".
func describePath(given, resolved string) string {
	if abs, err := filepath.Abs(given); err == nil && abs == resolved {
		return resolved
	}
	return fmt.Sprintf("%s (%s)", given, resolved)
}
