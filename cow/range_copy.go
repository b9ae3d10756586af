package cow

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// rangeCopier is a blockFile that copies a range of itself to another
// place in itself without the bytes passing through the process: a redirect
// of a partial write to an encrypted volume copies the whole old slot, of
// which it changes a sector or a few (redirectSealed).
type rangeCopier interface {
	// CopyRange copies [src, src+n) to [dst, dst+n); the ranges do not
	// overlap and the source lies within the file. done is how many
	// bytes were copied, from the start, when it fails.
	CopyRange(src, dst, n int64) (done int64, err error)
}

// CopyRange copies within the file with copy_file_range: in the kernel,
// one copy between page cache pages (a clone where the file system can),
// where a read and a write copy twice and cross into the kernel twice.
func (o *osFile) CopyRange(src, dst, n int64) (int64, error) {
	var done int64
	for done < n {
		s, d := src+done, dst+done
		k, err := unix.CopyFileRange(int(o.f.Fd()), &s, int(o.f.Fd()), &d, int(n-done), 0)
		if err != nil {
			return done, fmt.Errorf("copy_file_range %d+%d to %d in %s: %w", src, n, dst, o.f.Name(), err)
		}
		if k == 0 {
			return done, fmt.Errorf("copy_file_range %d+%d to %d in %s: the source ends at %d", src, n, dst, o.f.Name(), src+done)
		}
		done += int64(k)
	}
	return done, nil
}
