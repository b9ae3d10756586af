package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sync"
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
	// exit ends the process after a signal thawed the file system;
	// nil means os.Exit.
	exit func(code int)
	// check, if set, refuses mount points that are not safe to freeze
	// for a snapshot of the scope's volumes.
	check func(dirs []string, sc freezeScope) error
}

// The ioctls of linux/fs.h, which golang.org/x/sys/unix does not export:
// FIFREEZE = _IOWR('X', 119, int), FITHAW = _IOWR('X', 120, int).
const (
	ioctlFIFREEZE = 0xC0045877
	ioctlFITHAW   = 0xC0045878
)

// exitSignalled is the exit code after SIGINT or SIGTERM, as a shell
// reports a command killed by SIGINT.
const exitSignalled = 130

var kernelFreezer = fsFreezer{
	freeze: func(dir string) (*os.File, error) {
		f, err := os.Open(dir)
		if err != nil {
			return nil, fmt.Errorf("freeze: %w", err)
		}
		if err := unix.IoctlSetInt(int(f.Fd()), ioctlFIFREEZE, 0); err != nil {
			f.Close()
			return nil, fmt.Errorf("freeze %s (FIFREEZE): %w", dir, err)
		}
		return f, nil
	},
	thaw: func(f *os.File) error {
		defer f.Close()
		if err := unix.IoctlSetInt(int(f.Fd()), ioctlFITHAW, 0); err != nil {
			return fmt.Errorf("thaw %s (FITHAW): %w", f.Name(), err)
		}
		return nil
	},
	check: checkFreezeTargets,
}

// thawError is a failed thaw: the file system mounted at dir may still be
// frozen.
type thawError struct {
	dir string
	err error
}

func (e *thawError) Error() string { return e.err.Error() }
func (e *thawError) Unwrap() error { return e.err }

// frozenFS is a file system whileFrozen froze.
type frozenFS struct {
	dir string
	f   *os.File
}

// whileFrozen runs fn with the file systems mounted at dirs frozen, and
// always thaws every one it froze, in reverse order: when fn returns or
// fails, when a later freeze fails, and when SIGINT or SIGTERM arrives
// meanwhile (then it thaws and exits 130). A failed freeze runs nothing
// and is returned as is; failed thaws are returned as *thawError, joined
// to fn's error if any.
func (fz fsFreezer) whileFrozen(dirs []string, fn func() error) (err error) {
	// Catch the signals before freezing: a signal between the freeze
	// and the handler would leave the file system frozen.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)

	var (
		// mu guards the fields that follow: a signal thaws what is
		// frozen at that moment, and nothing is frozen after.
		mu      sync.Mutex
		frozen  []frozenFS
		thawed  bool
		thawErr error
	)
	thawAll := func() error {
		mu.Lock()
		defer mu.Unlock()
		if !thawed {
			thawed = true
			var errs []error
			for i := len(frozen) - 1; i >= 0; i-- {
				if err := fz.thaw(frozen[i].f); err != nil {
					errs = append(errs, &thawError{dir: frozen[i].dir, err: err})
				}
			}
			thawErr = errors.Join(errs...)
		}
		return thawErr
	}
	done := make(chan struct{})
	handled := make(chan struct{})
	go func() {
		defer close(handled)
		select {
		case sig := <-sigs:
			if err := thawAll(); err != nil {
				fmt.Fprintf(os.Stderr, "cowvol: %v (after %v)\n", err, sig)
			}
			exit := fz.exit
			if exit == nil {
				exit = os.Exit
			}
			exit(exitSignalled)
		case <-done:
		}
	}()
	defer func() {
		close(done)
		<-handled // a signal being handled has thawed when this returns
		// A failed thaw is reported even when fn failed too: the
		// file system may still be frozen.
		err = errors.Join(err, thawAll())
	}()
	for _, dir := range dirs {
		if err := fz.freezeOne(dir, &mu, &frozen, &thawed); err != nil {
			return err
		}
	}
	return fn()
}

// freezeOne freezes dir and records it, unless a signal has thawed
// everything already.
func (fz fsFreezer) freezeOne(dir string, mu *sync.Mutex, frozen *[]frozenFS, thawed *bool) error {
	mu.Lock()
	defer mu.Unlock()
	if *thawed {
		return errInterrupted
	}
	f, err := fz.freeze(dir)
	if err != nil {
		return err
	}
	*frozen = append(*frozen, frozenFS{dir: dir, f: f})
	return nil
}

// errInterrupted: a signal thawed the file systems while others were
// being frozen.
var errInterrupted = errors.New("interrupted: every file system frozen so far was thawed")
