package cow

import (
	"errors"
	"fmt"
	"io"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// directFile is a data file that bypasses the page cache for page-aligned
// I/O: reads and writes whose offset and length are multiples of the page
// go through a descriptor opened with O_DIRECT, from and into page-aligned
// buffers of the pool; any other I/O (a write of part of a page, the
// seals of an encrypted slot) goes through the ordinary descriptor. The
// kernel keeps the two coherent: a direct read writes back the dirty page
// cache of its range first, a direct write drops it.
//
// Durability is the same as osFile's: Sync is fdatasync, which after
// direct writes to allocated extents has little left to do but flush the
// device cache.
type directFile struct {
	*osFile
	direct  *os.File
	buffers *bufferPool
}

func openDirectFile(path string, create bool, buffers *bufferPool) (*directFile, error) {
	o, err := openOSFile(path, create)
	if err != nil {
		return nil, err
	}
	d, err := os.OpenFile(path, os.O_RDWR|unix.O_DIRECT, 0)
	if err != nil {
		o.Close()
		return nil, fmt.Errorf("open %s with O_DIRECT: %w", path, err)
	}
	return &directFile{osFile: o, direct: d, buffers: buffers}, nil
}

// aligned reports whether an I/O of n bytes at off can go direct.
func aligned(off int64, n int) bool {
	return off%pageSize == 0 && n%pageSize == 0 && n > 0
}

// alignedBuffer is a page-aligned buffer of n bytes (a multiple of the
// page) from the pool, and the slice to give back to it.
func (d *directFile) alignedBuffer(n int) (buf, pooled []byte) {
	pooled = d.buffers.get(n + pageSize)
	skew := int(uintptr(unsafe.Pointer(&pooled[0])) % pageSize)
	start := 0
	if skew != 0 {
		start = pageSize - skew
	}
	return pooled[start : start+n], pooled
}

func (d *directFile) ReadAt(p []byte, off int64) (int, error) {
	if !aligned(off, len(p)) {
		return d.osFile.ReadAt(p, off)
	}
	buf, pooled := d.alignedBuffer(len(p))
	defer d.buffers.put(pooled)
	n, err := d.direct.ReadAt(buf, off)
	copy(p, buf[:n])
	if errors.Is(err, io.EOF) {
		// Past the end of the file reads as zeros (see osFile).
		clear(p[n:])
		return len(p), nil
	}
	return n, err
}

func (d *directFile) WriteAt(p []byte, off int64) (int, error) {
	if !aligned(off, len(p)) {
		return d.osFile.WriteAt(p, off)
	}
	buf, pooled := d.alignedBuffer(len(p))
	defer d.buffers.put(pooled)
	copy(buf, p)
	return d.direct.WriteAt(buf, off)
}

func (d *directFile) Close() error {
	err := d.direct.Close()
	if cerr := d.osFile.Close(); err == nil {
		err = cerr
	}
	return err
}
