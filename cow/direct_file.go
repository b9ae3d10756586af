package cow

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// directFile is a data file with no page cache under it: every read and
// write goes to the disk through a descriptor opened with O_DIRECT, from and
// into page-aligned buffers of the pool. I/O that does not cover whole pages
// (a write of part of a page, an encrypted slot's seals) reads the pages it
// touches and writes them back whole. No data goes through the page cache:
// mixing buffered and direct I/O on one file races the kernel's readahead,
// which can leave a stale page cached.
//
// Durability is the same as osFile's: Sync is fdatasync, which after direct
// writes to allocated extents has little left to do but flush the device's
// cache. Punch and Truncate change no data in memory and go through the
// ordinary descriptor.
type directFile struct {
	*osFile
	direct  *os.File
	buffers *bufferPool
	// rmw is held exclusively by a read-modify-write of partial pages and
	// shared by whole-page writes, so that no write is lost between
	// another's read and write of the same page.
	rmw sync.RWMutex
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

// pageSpan is the page-aligned range that covers n bytes at off.
func pageSpan(off int64, n int) (start int64, length int) {
	start = off &^ (pageSize - 1)
	end := (off + int64(n) + pageSize - 1) &^ (pageSize - 1)
	return start, int(end - start)
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

// readPages reads whole pages at off (aligned) into buf (aligned); past
// the end of the file reads as zeros.
func (d *directFile) readPages(buf []byte, off int64) error {
	n, err := d.direct.ReadAt(buf, off)
	if errors.Is(err, io.EOF) {
		clear(buf[n:])
		return nil
	}
	return err
}

func (d *directFile) ReadAt(p []byte, off int64) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	start, n := pageSpan(off, len(p))
	buf, pooled := d.alignedBuffer(n)
	defer d.buffers.put(pooled)
	if err := d.readPages(buf, start); err != nil {
		return 0, fmt.Errorf("read %s at %d: %w", d.direct.Name(), off, err)
	}
	copy(p, buf[off-start:])
	return len(p), nil
}

func (d *directFile) WriteAt(p []byte, off int64) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	start, n := pageSpan(off, len(p))
	buf, pooled := d.alignedBuffer(n)
	defer d.buffers.put(pooled)
	if start == off && n == len(p) {
		d.rmw.RLock()
		defer d.rmw.RUnlock()
	} else {
		d.rmw.Lock()
		defer d.rmw.Unlock()
		if err := d.readPages(buf, start); err != nil {
			return 0, fmt.Errorf("write %s at %d: %w", d.direct.Name(), off, err)
		}
	}
	copy(buf[off-start:], p)
	if _, err := d.direct.WriteAt(buf, start); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (d *directFile) Close() error {
	err := d.direct.Close()
	if cerr := d.osFile.Close(); err == nil {
		err = cerr
	}
	return err
}
