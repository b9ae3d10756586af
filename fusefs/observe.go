package fusefs

import (
	"time"

	"golang.org/x/sys/unix"
)

// IOOp is a kind of request on a volume file, as an Observer is told.
type IOOp string

// The requests observed.
const (
	OpRead    IOOp = "read"
	OpWrite   IOOp = "write"
	OpDiscard IOOp = "discard" // fallocate PUNCH_HOLE or ZERO_RANGE
	OpFsync   IOOp = "fsync"
	OpFlush   IOOp = "flush" // close(2) of a descriptor, which syncs too
)

// Observer is told of the requests served on volume files (metrics).
// Its methods are called concurrently, on the request's path: they must
// be quick and never block.
type Observer interface {
	// Begin: a request on a file (read, write, discard, fsync, flush, on
	// a volume or a snapshot) is being served.
	Begin()
	// End: it has been answered. volume is "" for requests that are not
	// I/O on a volume file; then op, bytes, took and failed mean nothing.
	End(volume string, op IOOp, bytes int64, took time.Duration, failed bool)
	// VolumeRemoved: the volume was deleted; forget it.
	VolumeRemoved(volume string)
}

// nopObserver observes nothing (Config.Observer nil).
type nopObserver struct{}

func (nopObserver) Begin()                                       {}
func (nopObserver) End(string, IOOp, int64, time.Duration, bool) {}
func (nopObserver) VolumeRemoved(string)                         {}

// ioRecord is one request being observed: begin it on entry, fill it in
// with done once the volume and the outcome are known, end it on exit
// (deferred).
type ioRecord struct {
	obs    Observer
	op     IOOp
	start  time.Time
	volume string
	bytes  int64
	failed bool
}

func (r *rawFS) begin(op IOOp) *ioRecord {
	r.obs.Begin()
	return &ioRecord{obs: r.obs, op: op, start: time.Now()}
}

// done records the request's volume, bytes and outcome.
func (rec *ioRecord) done(volume string, bytes int64, err error) {
	rec.volume, rec.bytes, rec.failed = volume, bytes, err != nil
}

func (rec *ioRecord) end() {
	rec.obs.End(rec.volume, rec.op, rec.bytes, time.Since(rec.start), rec.failed)
}

// isDiscard reports whether a fallocate mode frees blocks (discard,
// write-zeroes) rather than preallocating.
func isDiscard(mode uint32) bool {
	return mode&(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_ZERO_RANGE) != 0
}
