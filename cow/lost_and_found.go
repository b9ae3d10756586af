package cow

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// lostAndFound is the directory where a start that accepted metadata loss
// keeps what it could not place: <data-dir>/lost+found/<time>/, holding
// the metadata store as found (meta/), data files of no volume
// (<vol-id>.data, moved) and, per volume, the slots no record refers to
// that hold data (<vol-id>.slots, their contents back to back, and
// <vol-id>.slots.txt, which slot each is).
type lostAndFound struct {
	dir string
}

func (l *lostAndFound) ensure() error {
	if err := os.MkdirAll(l.dir, 0o700); err != nil {
		return fmt.Errorf("lost+found: %w", err)
	}
	return nil
}

// keepFile moves a file into lost+found.
func (l *lostAndFound) keepFile(path string) error {
	if err := l.ensure(); err != nil {
		return err
	}
	to := filepath.Join(l.dir, filepath.Base(path))
	if err := os.Rename(path, to); err != nil {
		return fmt.Errorf("lost+found: %w", err)
	}
	return errors.Join(syncDir(l.dir), syncDir(filepath.Dir(path)))
}

// keepSlots copies the slots of volume v's data file (at path) that no
// record refers to and that hold data: those in holes and those past the
// last slot in use.
func (l *lostAndFound) keepSlots(v *volume, path string, holes [][2]uint64) error {
	in, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("lost+found: %w", err)
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return fmt.Errorf("lost+found: %w", err)
	}
	if end := uint64((fi.Size() + v.stride - 1) / v.stride); end > v.slots.next {
		holes = append(holes, [2]uint64{v.slots.next, end})
	}
	var out, index *os.File
	kept := int64(0)
	for _, h := range holes {
		for s := h[0]; s < h[1]; s++ {
			next, ok, err := nextSlotWithData(in, v, s, h[1])
			if err != nil {
				return fmt.Errorf("lost+found: %w", err)
			}
			if !ok {
				break
			}
			s = next
			if out == nil {
				if out, index, err = l.createSlotFiles(v.id); err != nil {
					return err
				}
				defer out.Close()
				defer index.Close()
			}
			if _, err := io.Copy(out, io.NewSectionReader(in, v.slotOffset(s), v.stride)); err != nil {
				return fmt.Errorf("lost+found: %w", err)
			}
			fmt.Fprintf(index, "slot %d (data file offset %d) at offset %d, %d bytes\n", s, v.slotOffset(s), kept, v.stride)
			kept += v.stride
		}
	}
	if out == nil {
		return nil
	}
	if err := errors.Join(out.Sync(), index.Sync(), syncDir(l.dir)); err != nil {
		return fmt.Errorf("lost+found: %w", err)
	}
	return nil
}

func (l *lostAndFound) createSlotFiles(volID string) (out, index *os.File, err error) {
	if err := l.ensure(); err != nil {
		return nil, nil, err
	}
	out, err = os.OpenFile(filepath.Join(l.dir, volID+".slots"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("lost+found: %w", err)
	}
	index, err = os.OpenFile(filepath.Join(l.dir, volID+".slots.txt"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		out.Close()
		return nil, nil, fmt.Errorf("lost+found: %w", err)
	}
	return out, index, nil
}

// nextSlotWithData finds the first slot in [from, to) of which some byte
// is data, not a hole.
func nextSlotWithData(f *os.File, v *volume, from, to uint64) (uint64, bool, error) {
	off, err := unix.Seek(int(f.Fd()), v.slotOffset(from), unix.SEEK_DATA)
	if errors.Is(err, unix.ENXIO) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	s := uint64(off / v.stride)
	return s, s < to, nil
}
