package cow

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// blockFile is the engine's view of a volume's data file: block-sized slots
// addressed by byte offset. It is an interface so that tests can run the
// engine over files that inject errors or simulate crashes.
type blockFile interface {
	ReadAt(p []byte, off int64) (int, error)
	WriteAt(p []byte, off int64) (int, error)
	// Punch deallocates [off, off+n): it reads as zeros afterwards.
	Punch(off, n int64) error
	// Sync makes written data durable (fdatasync).
	Sync() error
	// Truncate sets the file's length.
	Truncate(size int64) error
	Close() error
}

// osFile is a blockFile on a regular file.
type osFile struct{ f *os.File }

func openOSFile(path string, create bool) (*osFile, error) {
	flags := os.O_RDWR
	if create {
		flags |= os.O_CREATE | os.O_EXCL
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if err != nil {
		return nil, err
	}
	return &osFile{f: f}, nil
}

// openDataFile opens a volume's data file (creating it, exclusively, if
// create is set).
func (e *Engine) openDataFile(path string, create bool) (blockFile, error) {
	if e.openFile != nil {
		return e.openFile(path, create)
	}
	if e.directIO {
		return openDirectFile(path, create, &e.buffers)
	}
	f, err := openOSFile(path, create)
	if err != nil {
		return nil, err
	}
	return f, nil
}

func (o *osFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := o.f.ReadAt(p, off)
	if errors.Is(err, io.EOF) {
		// Past the end of the file reads as zeros: the slot was
		// allocated but the file never grew that far.
		clear(p[n:])
		return len(p), nil
	}
	return n, err
}

func (o *osFile) WriteAt(p []byte, off int64) (int, error) { return o.f.WriteAt(p, off) }

// Punch punches [off, off+n), unless it holds no data already: a start
// punches every slot no record refers to, most of them free slots that a
// run before punched already (hundreds of thousands of runs after many
// releases), and asking where the next data is costs far less than a
// fallocate, which takes the inode's lock and drops the range's page
// cache even where there is nothing to free.
func (o *osFile) Punch(off, n int64) error {
	next, err := unix.Seek(int(o.f.Fd()), off, unix.SEEK_DATA)
	if errors.Is(err, unix.ENXIO) || (err == nil && next >= off+n) {
		return nil // a hole already (or past the end of the file)
	}
	err = unix.Fallocate(int(o.f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
	if err != nil {
		return fmt.Errorf("punch hole at %d+%d in %s: %w", off, n, o.f.Name(), err)
	}
	return nil
}

func (o *osFile) Sync() error {
	if err := unix.Fdatasync(int(o.f.Fd())); err != nil {
		return fmt.Errorf("fdatasync %s: %w", o.f.Name(), err)
	}
	return nil
}

func (o *osFile) Truncate(size int64) error { return o.f.Truncate(size) }
func (o *osFile) Close() error              { return o.f.Close() }

// isNoSpace reports whether err is the filesystem being full.
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}
