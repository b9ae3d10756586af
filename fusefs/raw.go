package fusefs

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/cowvol/cowvol/cow"
)

// entryTimeout is how long the kernel may cache names and attributes. A
// volume's size is fixed and a deleted one is invalidated at once
// (forgetVolume), so a second only bounds how stale AllocatedBytes looks.
const entryTimeout = time.Second

// rawFS serves the tree through go-fuse's raw API: node IDs are inode
// numbers derived from durable records (inodes.go) and file handles are
// recorded in the state directory (openTable), so that a process taking
// over the connection understands every ID the kernel holds. Every
// handler enters the gate first (a graceful handover closes it).
type rawFS struct {
	fuse.RawFileSystem // ENOSYS for what is not below

	eng   *cow.Engine
	log   *slog.Logger
	acc   fileAccess
	nodes *inodes
	gate  *gate
	opens *openTable
	obs   Observer

	server atomic.Pointer[fuse.Server]

	// nextFh: the low half of the next file handle; the high half is the
	// connection's incarnation (session.Incarnation).
	nextFh      atomic.Uint32
	incarnation uint32

	mu      sync.RWMutex           // guards handles
	handles map[uint64]*cow.Volume // open volume handles by file handle
}

func newRawFS(eng *cow.Engine, log *slog.Logger, acc fileAccess, opens *openTable, incarnation uint32) *rawFS {
	return &rawFS{
		RawFileSystem: fuse.NewDefaultRawFileSystem(),
		eng:           eng,
		log:           log,
		acc:           acc,
		nodes:         newInodes(eng),
		gate:          newGate(),
		obs:           nopObserver{},
		opens:         opens,
		incarnation:   incarnation,
		handles:       map[uint64]*cow.Volume{},
	}
}

func (r *rawFS) String() string { return "cowvol" }

func (r *rawFS) Init(s *fuse.Server) { r.server.Store(s) }

// Forget: node IDs are derived, not counted.
func (r *rawFS) Forget(nodeid, nlookup uint64) {}

func status(errno syscall.Errno) fuse.Status { return fuse.Status(errno) }

func (r *rawFS) Lookup(cancel <-chan struct{}, h *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	r.gate.enter()
	defer r.gate.leave()
	kind, _ := r.nodes.resolve(h.NodeId)
	switch {
	case kind == kindRoot && name == snapshotsDir:
		r.acc.fillDirAttr(&out.Attr)
		out.NodeId, out.Ino = snapshotsIno, snapshotsIno
	case kind == kindRoot && cow.ValidVolumeID(name):
		vi, err := r.eng.VolumeInfo(name)
		if err != nil {
			return status(toErrno(err))
		}
		out.NodeId = r.nodes.learnVolume(name)
		r.acc.fillVolumeAttr(&out.Attr, vi)
		out.Ino = out.NodeId
	case kind == kindSnapshots && cow.ValidSnapshotID(name):
		si, err := r.eng.SnapshotInfo(name)
		if err != nil || si.State == cow.SnapshotError {
			return status(snapshotErrno(err))
		}
		out.NodeId = r.nodes.learnSnapshot(name)
		r.acc.fillSnapshotAttr(&out.Attr, si)
		out.Ino = out.NodeId
	case kind == kindRoot || kind == kindSnapshots:
		return fuse.ENOENT
	default:
		return fuse.ENOTDIR
	}
	out.SetEntryTimeout(entryTimeout)
	out.SetAttrTimeout(entryTimeout)
	return fuse.OK
}

// attr fills the attributes of node into a.
func (r *rawFS) attr(node uint64, a *fuse.Attr) syscall.Errno {
	kind, id := r.nodes.resolve(node)
	switch kind {
	case kindRoot, kindSnapshots:
		r.acc.fillDirAttr(a)
	case kindVolume:
		if id == "" {
			return syscall.ESTALE
		}
		vi, err := r.eng.VolumeInfo(id)
		if err != nil {
			return toErrno(err)
		}
		r.acc.fillVolumeAttr(a, vi)
	case kindSnapshot:
		if id == "" {
			return syscall.ESTALE
		}
		si, err := r.eng.SnapshotInfo(id)
		if err != nil {
			return snapshotErrno(err)
		}
		r.acc.fillSnapshotAttr(a, si)
	default:
		return syscall.ENOENT
	}
	a.Ino = node
	return 0
}

func (r *rawFS) GetAttr(cancel <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	r.gate.enter()
	defer r.gate.leave()
	if errno := r.attr(in.NodeId, &out.Attr); errno != 0 {
		return status(errno)
	}
	out.SetTimeout(entryTimeout)
	return fuse.OK
}

// SetAttr refuses every change (refusedChange): the files keep no
// attributes of their own, and a volume's size is fixed.
func (r *rawFS) SetAttr(cancel <-chan struct{}, in *fuse.SetAttrIn, out *fuse.AttrOut) fuse.Status {
	r.gate.enter()
	defer r.gate.leave()
	if errno := r.attr(in.NodeId, &out.Attr); errno != 0 {
		return status(errno)
	}
	out.SetTimeout(entryTimeout)
	kind, id := r.nodes.resolve(in.NodeId)
	if kind != kindVolume && kind != kindSnapshot {
		return fuse.EPERM
	}
	caller := in.Caller
	return status(refuseSetattr(caller.Uid, caller.Pid, r.log, id, in, &out.Attr))
}

func (r *rawFS) StatFs(cancel <-chan struct{}, h *fuse.InHeader, out *fuse.StatfsOut) fuse.Status {
	r.gate.enter()
	defer r.gate.leave()
	out.Bsize = 4096
	out.Frsize = 4096
	out.NameLen = 255
	return fuse.OK
}

// Names are made by the control API, not by the file system.
func (r *rawFS) Mknod(cancel <-chan struct{}, in *fuse.MknodIn, name string, out *fuse.EntryOut) fuse.Status {
	return fuse.EPERM
}
func (r *rawFS) Mkdir(cancel <-chan struct{}, in *fuse.MkdirIn, name string, out *fuse.EntryOut) fuse.Status {
	return fuse.EPERM
}
func (r *rawFS) Unlink(cancel <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	return fuse.EPERM
}
func (r *rawFS) Rmdir(cancel <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	return fuse.EPERM
}
func (r *rawFS) Rename(cancel <-chan struct{}, in *fuse.RenameIn, oldName, newName string) fuse.Status {
	return fuse.EPERM
}
func (r *rawFS) Link(cancel <-chan struct{}, in *fuse.LinkIn, name string, out *fuse.EntryOut) fuse.Status {
	return fuse.EPERM
}
func (r *rawFS) Symlink(cancel <-chan struct{}, h *fuse.InHeader, target, name string, out *fuse.EntryOut) fuse.Status {
	return fuse.EPERM
}
func (r *rawFS) Create(cancel <-chan struct{}, in *fuse.CreateIn, name string, out *fuse.CreateOut) fuse.Status {
	return fuse.EPERM
}

// forgetVolume drops a deleted volume's file from the kernel's caches.
func (r *rawFS) forgetVolume(id string) {
	r.nodes.forgetVolume(id)
	r.obs.VolumeRemoved(id)
	if s := r.server.Load(); s != nil {
		if st := s.EntryNotify(rootIno, id); st != fuse.OK && st != fuse.ENOENT {
			r.log.Debug("notify entry", "volume", id, "status", st)
		}
	}
}
