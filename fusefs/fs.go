package fusefs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/cowvol/cowvol/cow"
)

// Options configure Mount.
type Options struct {
	Logger *slog.Logger
	// Debug logs every FUSE request (very verbose).
	Debug bool
	// VolumeGroup, if set, is the group of the volume and snapshot files:
	// its members may read and write volumes (mode 0660) and read
	// snapshots (0440). Unset, the files are 0600 and 0400 in the daemon's
	// effective group. Either way their owner is the daemon's effective
	// user, and root may open them (fileAccess).
	VolumeGroup *uint32
}

// Server is a mounted cowvol tree.
type Server struct {
	srv  *fuse.Server
	root *rootNode
	dir  string
}

// maxWrite is the largest FUSE read or write request: 1 MiB, as loop
// devices and O_DIRECT writers send.
const maxWrite = 1 << 20

// maxInflightBytes bounds the request buffers go-fuse holds at once.
const maxInflightBytes = 64 << 20

// Mount mounts the volumes of eng at dir and serves them until Unmount.
func Mount(dir string, eng *cow.Engine, opts Options) (*Server, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	root := &rootNode{eng: eng, log: log, acc: newFileAccess(opts.VolumeGroup)}
	srv, err := fs.Mount(dir, root, mountOptions(opts, log))
	if err != nil {
		return nil, fmt.Errorf("mount FUSE at %s: %w", dir, err)
	}
	eng.OnVolumeRemoved(root.forget)
	return &Server{srv: srv, root: root, dir: dir}, nil
}

// mountOptions are the options of the mount: other users may reach it
// (allow_other), and the kernel checks their access to every file against
// its owner, group and mode (default_permissions), as on a local file
// system. Without default_permissions the kernel would check nothing and
// any user could read and write every volume.
func mountOptions(opts Options, log *slog.Logger) *fs.Options {
	entryTimeout := time.Second
	negative := time.Duration(0)
	return &fs.Options{
		EntryTimeout:    &entryTimeout,
		AttrTimeout:     &entryTimeout,
		NegativeTimeout: &negative,
		MountOptions: fuse.MountOptions{
			FsName:        "cowvol",
			Name:          "cowvol",
			AllowOther:    true,
			Options:       []string{"default_permissions"},
			DirectMount:   true, // mount(2) as root; fusermount3 otherwise
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
			DisableXAttrs:     true,
			Debug:             opts.Debug,
			Logger:            slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		},
	}
}

// Unmount unmounts the tree. It fails (EBUSY) while a volume file is open,
// for example attached to a loop device.
func (s *Server) Unmount() error {
	if err := s.srv.Unmount(); err != nil {
		return fmt.Errorf("unmount %s: %w", s.dir, err)
	}
	return nil
}

// Wait blocks until the tree is unmounted.
func (s *Server) Wait() { s.srv.Wait() }

// snapshotsDir is the name of the directory of snapshot files.
const snapshotsDir = "snapshots"

// rootNode is the mount's root directory: one file per volume and the
// snapshots directory.
type rootNode struct {
	fs.Inode
	eng *cow.Engine
	log *slog.Logger
	acc fileAccess
}

var (
	_ fs.NodeLookuper  = (*rootNode)(nil)
	_ fs.NodeReaddirer = (*rootNode)(nil)
	_ fs.NodeGetattrer = (*rootNode)(nil)
	_ fs.NodeStatfser  = (*rootNode)(nil)
	_ fs.NodeOnAdder   = (*rootNode)(nil)
)

func (r *rootNode) OnAdd(ctx context.Context) {
	dir := r.NewPersistentInode(ctx, &snapshotsNode{eng: r.eng, log: r.log, acc: r.acc}, fs.StableAttr{Mode: syscall.S_IFDIR, Ino: 2})
	r.AddChild(snapshotsDir, dir, false)
}

func (r *rootNode) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	r.acc.fillDirAttr(&out.Attr)
	return 0
}

func (r *rootNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if name == snapshotsDir {
		r.acc.fillDirAttr(&out.Attr)
		return r.GetChild(snapshotsDir), 0
	}
	if !cow.ValidVolumeID(name) {
		return nil, syscall.ENOENT
	}
	vi, err := r.eng.VolumeInfo(name)
	if err != nil {
		return nil, toErrno(err)
	}
	n := &volumeNode{eng: r.eng, id: name, log: r.log, acc: r.acc}
	r.acc.fillVolumeAttr(&out.Attr, vi)
	return r.NewInode(ctx, n, fs.StableAttr{Mode: syscall.S_IFREG, Ino: volumeIno(name)}), 0
}

func (r *rootNode) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	vols, err := r.eng.DescribeVolumes(ctx)
	if err != nil {
		return nil, toErrno(err)
	}
	entries := []fuse.DirEntry{{Name: snapshotsDir, Mode: syscall.S_IFDIR, Ino: 2}}
	for _, v := range vols {
		entries = append(entries, fuse.DirEntry{Name: v.ID, Mode: syscall.S_IFREG, Ino: volumeIno(v.ID)})
	}
	return fs.NewListDirStream(entries), 0
}

func (r *rootNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	out.Bsize = 4096
	out.Frsize = 4096
	out.NameLen = 255
	return 0
}

// forget drops a deleted volume's file from the kernel's caches.
func (r *rootNode) forget(id string) {
	r.RmChild(id)
	if errno := r.NotifyEntry(id); errno != 0 && !errors.Is(errno, syscall.ENOENT) {
		r.log.Debug("notify entry", "volume", id, "errno", errno)
	}
}

// volumeIno derives a stable inode number from a volume ID: its first 15
// hex digits, offset past the fixed inodes (root 1, snapshots 2).
func volumeIno(id string) uint64 {
	n, _ := strconv.ParseUint(id[len("vol-"):len("vol-")+15], 16, 64)
	return n | 1<<62
}

// fillVolumeAttr fills the attributes of a volume file.
func (acc fileAccess) fillVolumeAttr(a *fuse.Attr, vi cow.VolumeInfo) {
	fillFileAttr(a, acc.volumePerm(), vi.Size, vi.AllocatedBytes, vi.BlockSize, vi.CreateTime)
	acc.setOwner(a)
}

// fillFileAttr fills the attributes of a volume or snapshot file, but its
// owner: a regular file of size bytes, holding data bytes, born at t.
func fillFileAttr(a *fuse.Attr, perm uint32, size, data int64, blockSize int, t time.Time) {
	a.Mode = syscall.S_IFREG | perm
	a.Nlink = 1
	a.Size = uint64(size)
	a.Blocks = uint64(data / 512)
	a.Blksize = uint32(min(blockSize, maxWrite))
	a.SetTimes(&t, &t, &t)
}
