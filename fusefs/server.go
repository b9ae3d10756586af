package fusefs

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/cowvol/cowvol/cow"
)

// maxWrite is the largest FUSE read or write request: 1 MiB, as loop
// devices and O_DIRECT writers send.
const maxWrite = 1 << 20

// maxInflightBytes bounds the request buffers go-fuse holds at once.
const maxInflightBytes = 64 << 20

// Config configures Serve.
type Config struct {
	// Device is the connection's /dev/fuse descriptor (Mount's), which
	// this process inherited. Serve closes it (go-fuse serves a duplicate).
	Device *os.File
	// Mountpoint is where the connection is mounted.
	Mountpoint string
	// StateDir keeps what a successor needs (session.go); on tmpfs.
	StateDir string
	// Takeover: the connection was served before (its INIT is answered):
	// resume it from the state directory and have the kernel resend
	// what the predecessor read but did not answer.
	Takeover bool
	Logger   *slog.Logger
	// Debug logs every FUSE request (very verbose).
	Debug bool
	// VolumeGroup, if set, is the group of the volume and snapshot files
	// (fileAccess).
	VolumeGroup *uint32
	// Observer, if set, is told of every request on volume files (metrics).
	Observer Observer
}

// Server serves the tree on one FUSE connection.
type Server struct {
	srv        *fuse.Server
	fs         *rawFS
	mountpoint string
	served     chan struct{} // closed when the serving loop has ended
}

// serverOptions are go-fuse's options for serving the connection: the
// buffers match what INIT negotiated (Mount's max_read, MaxWrite).
func serverOptions(cfg Config, log *slog.Logger) fuse.MountOptions {
	return fuse.MountOptions{
		FsName:        "cowvol",
		Name:          "cowvol",
		MaxWrite:      maxWrite,
		MaxBackground: 128,
		// Every request go-fuse reads takes a buffer of max_write:
		// bounding their bytes bounds the daemon's memory under a
		// deep queue (a loop device sends up to MaxBackground
		// requests at once) to about 64 requests in flight.
		MaxInflightRequestBytes: maxInflightBytes,
		// Without CAP_ASYNC_DIO the kernel serialises a loop
		// device's direct I/O: one request at a time.
		ExtraCapabilities: fuse.CAP_ASYNC_DIO,
		// Every READ answer is bytes in memory (ReadResultData), never
		// a file to splice from: with splicing on, go-fuse still took a
		// pipe, wrote the header into it and drained it again for each
		// answer before falling back to writev (three syscalls per
		// READ wasted), and for each 1 MiB answer failed to grow the
		// pipe past pipe-max-size and logged a warning.
		DisableSplice: true,
		DisableXAttrs: true,
		Debug:         cfg.Debug,
		Logger:        slog.NewLogLogger(log.Handler(), slog.LevelWarn), // without Debug, only its errors
	}
}

// Serve serves the volumes of eng on the connection cfg.Device, until it
// is unmounted. A fresh connection is initialised (INIT) and its session
// recorded; a taken-over one resumes from the session, adopts the open
// handles its predecessors recorded, and has the kernel resend the
// requests they read but did not answer.
func Serve(eng *cow.Engine, cfg Config) (*Server, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	sess := &session{Mountpoint: cfg.Mountpoint}
	if cfg.Takeover {
		var err error
		if sess, err = loadSession(cfg.StateDir); err != nil {
			return nil, fmt.Errorf("take over the FUSE connection: %w", err)
		}
	}
	sess.Incarnation++
	opens, recs, err := openOpenTable(filepath.Join(cfg.StateDir, opensFile), !cfg.Takeover)
	if err != nil {
		return nil, err
	}
	fs := newRawFS(eng, log, newFileAccess(cfg.VolumeGroup), opens, sess.Incarnation)
	if cfg.Observer != nil {
		fs.obs = cfg.Observer
	}
	for _, rec := range recs {
		if err := fs.adopt(rec); err != nil {
			log.Warn("an open handle of a volume that is gone", "volume", rec.id, "fh", rec.fh, "err", err)
		}
	}
	opts := serverOptions(cfg, log)
	if cfg.Takeover {
		opts.Resume = &sess.Init
	}
	// go-fuse takes the descriptor it is given for its own (an *os.File
	// of its own): it gets a duplicate, so that cfg.Device, closed here or
	// collected, never closes the descriptor under it.
	fd, err := unix.FcntlInt(cfg.Device.Fd(), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		opens.close()
		return nil, fmt.Errorf("serve FUSE: %w", err)
	}
	cfg.Device.Close()
	srv, err := fuse.NewServer(fs, fmt.Sprintf("/dev/fd/%d", fd), &opts)
	if err != nil {
		unix.Close(fd)
		opens.close()
		return nil, fmt.Errorf("serve FUSE at %s: %w", cfg.Mountpoint, err)
	}
	if !cfg.Takeover {
		sess.Init = srv.SessionState()
	}
	if err := sess.save(cfg.StateDir); err != nil {
		opens.close()
		return nil, err
	}
	eng.OnVolumeRemoved(fs.forgetVolume)
	eng.OnVolumeResized(fs.volumeResized)
	s := &Server{srv: srv, fs: fs, mountpoint: cfg.Mountpoint, served: make(chan struct{})}
	if cfg.Takeover {
		switch st := srv.NotifyResend(); st {
		case fuse.OK:
		case fuse.ENOSYS:
			log.Warn("this kernel cannot resend the requests the previous server read and did not answer (FUSE_NOTIFY_RESEND, Linux 6.9): their callers wait for ever")
		default:
			log.Error("asking the kernel to resend unanswered requests", "status", st)
		}
	}
	go func() {
		defer close(s.served)
		srv.Serve()
	}()
	return s, nil
}

// Drain stops taking requests at a request boundary: those under way are
// answered, the next ones wait, unread by this process, for a successor
// (graceful handover). The serving loop goes on reading, and blocks.
func (s *Server) Drain() { s.fs.gate.close() }

// Unmount unmounts the tree and waits for the serving loop to end. It
// fails (EBUSY) while a volume file is open, for example attached to a
// loop device.
func (s *Server) Unmount() error {
	if err := unmount(s.mountpoint); err != nil {
		return err
	}
	<-s.served
	return s.fs.opens.close()
}

// Done is closed when the connection is gone (unmounted or aborted).
func (s *Server) Done() <-chan struct{} { return s.served }
