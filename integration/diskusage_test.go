package integration

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

const (
	kib = int64(1) << 10
	mib = int64(1) << 20
	gib = int64(1) << 30
)

// diskUsage returns the bytes allocated to everything under path (files and
// directories, hard links counted once), from stat's st_blocks*512: what
// `du -s --block-size=1` reports, so sparse files count only what they hold.
func diskUsage(path string) (int64, error) {
	type ino struct{ dev, ino uint64 }
	seen := make(map[ino]bool)
	var total int64
	err := filepath.WalkDir(path, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) && p != path {
				return nil // removed while we walked
			}
			return err
		}
		fi, err := de.Info()
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		k := ino{uint64(st.Dev), st.Ino}
		if seen[k] {
			return nil
		}
		seen[k] = true
		total += st.Blocks * 512
		return nil
	})
	return total, err
}

// mustDiskUsage is diskUsage failing the test on error.
func mustDiskUsage(t testing.TB, path string) int64 {
	t.Helper()
	n, err := diskUsage(path)
	if err != nil {
		t.Fatalf("disk usage of %s: %v", path, err)
	}
	return n
}

// humanBytes formats n like 1.25 GiB for messages.
func humanBytes(n int64) string {
	switch a := max(n, -n); {
	case a >= gib:
		return fmt.Sprintf("%.2f GiB", float64(n)/float64(gib))
	case a >= mib:
		return fmt.Sprintf("%.1f MiB", float64(n)/float64(mib))
	default:
		return fmt.Sprintf("%.1f KiB", float64(n)/float64(kib))
	}
}

// waitUsage polls diskUsage(path) until ok accepts it or timeout passes, and
// returns the last value: space freed by a punch or a delete may be returned
// a moment after the call that freed it.
func waitUsage(t testing.TB, path string, timeout time.Duration, ok func(int64) bool) int64 {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		n := mustDiskUsage(t, path)
		if ok(n) || time.Now().After(deadline) {
			return n
		}
		time.Sleep(250 * time.Millisecond)
	}
}
