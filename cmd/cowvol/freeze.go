package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// fsFreezer freezes and thaws a mounted file system (FIFREEZE/FITHAW), so
// that a snapshot taken meanwhile is consistent: everything written before
// the freeze is on the device, nothing is written during it. Its funcs are
// fields so tests can check the always-thaw logic without a real mount.
type fsFreezer struct {
	freeze func(dir string) (*os.File, error)
	thaw   func(f *os.File) error
}

// The ioctls of linux/fs.h: _IOWR('X', 119, int) and _IOWR('X', 120, int).
const (
	ioctlFIFREEZE = 0xC0045877
	ioctlFITHAW   = 0xC0045878
)

var kernelFreezer = fsFreezer{
	freeze: func(dir string) (*os.File, error) {
		f, err := os.Open(dir)
		if err != nil {
			return nil, err
		}
		if err := unix.IoctlSetInt(int(f.Fd()), ioctlFIFREEZE, 0); err != nil {
			f.Close()
			return nil, fmt.Errorf("freeze %s: %w", dir, err)
		}
		return f, nil
	},
	thaw: func(f *os.File) error {
		defer f.Close()
		if err := unix.IoctlSetInt(int(f.Fd()), ioctlFITHAW, 0); err != nil {
			return fmt.Errorf("thaw %s: %w", f.Name(), err)
		}
		return nil
	},
}

// whileFrozen runs fn with the file system mounted at dir frozen, and
// always thaws it: when fn returns or fails, and when SIGINT or SIGTERM
// arrives meanwhile (then it thaws and exits 130). A failed freeze runs
// nothing.
func (fz fsFreezer) whileFrozen(dir string, fn func() error) (err error) {
	f, err := fz.freeze(dir)
	if err != nil {
		return err
	}
	sigs := make(chan os.Signal, 1)
	done := make(chan struct{})
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		select {
		case <-sigs:
			fz.thaw(f)
			os.Exit(130)
		case <-done:
		}
	}()
	defer func() {
		signal.Stop(sigs)
		close(done)
		if terr := fz.thaw(f); terr != nil && err == nil {
			err = terr
		}
	}()
	return fn()
}
