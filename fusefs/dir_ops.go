package fusefs

import (
	"context"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/cowvol/cowvol/cow"
)

// snapshotsDir is the name of the directory of snapshot files.
const snapshotsDir = "snapshots"

// OpenDir opens the root or snapshots/: listings are made afresh at each
// READDIR from the engine (no state, so nothing to hand over).
func (r *rawFS) OpenDir(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	r.gate.enter()
	defer r.gate.leave()
	if kind, _ := r.nodes.resolve(in.NodeId); kind != kindRoot && kind != kindSnapshots {
		return fuse.ENOTDIR
	}
	return fuse.OK
}

func (r *rawFS) ReleaseDir(in *fuse.ReleaseIn) {}

func (r *rawFS) ReadDir(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	return r.readDir(in, out, false)
}

// ReadDirPlus also answers each entry's lookup. Only the volume and
// snapshot entries carry a node ID: "." and ".." are not looked up.
func (r *rawFS) ReadDirPlus(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	return r.readDir(in, out, true)
}

func (r *rawFS) readDir(in *fuse.ReadIn, out *fuse.DirEntryList, plus bool) fuse.Status {
	r.gate.enter()
	defer r.gate.leave()
	entries, errno := r.listDir(in.NodeId)
	if errno != 0 {
		return status(errno)
	}
	// The offset of entry i is i+1; a READDIR resumes after in.Offset.
	for i := int(in.Offset); i < len(entries); i++ {
		e := entries[i]
		e.Off = uint64(i + 1)
		if !plus {
			if !out.AddDirEntry(e) {
				break
			}
			continue
		}
		eo := out.AddDirLookupEntry(e)
		if eo == nil {
			break
		}
		if e.Name == "." || e.Name == ".." {
			continue
		}
		if errno := r.attr(e.Ino, &eo.Attr); errno != 0 {
			continue // gone meanwhile: the entry stays without a lookup
		}
		eo.NodeId = e.Ino
		eo.SetEntryTimeout(entryTimeout)
		eo.SetAttrTimeout(entryTimeout)
	}
	return fuse.OK
}

// listDir lists the root (snapshots/ and a file per volume) or
// snapshots/ (a file per snapshot with content), sorted.
func (r *rawFS) listDir(node uint64) ([]fuse.DirEntry, syscall.Errno) {
	kind, _ := r.nodes.resolve(node)
	entries := []fuse.DirEntry{{Name: ".", Mode: syscall.S_IFDIR, Ino: node}, {Name: "..", Mode: syscall.S_IFDIR, Ino: rootIno}}
	switch kind {
	case kindRoot:
		vols, err := r.eng.DescribeVolumes(context.Background())
		if err != nil {
			return nil, toErrno(err)
		}
		entries = append(entries, fuse.DirEntry{Name: snapshotsDir, Mode: syscall.S_IFDIR, Ino: snapshotsIno})
		for _, v := range vols {
			entries = append(entries, fuse.DirEntry{Name: v.ID, Mode: syscall.S_IFREG, Ino: r.nodes.learnVolume(v.ID)})
		}
	case kindSnapshots:
		snaps, err := r.eng.DescribeSnapshots(context.Background())
		if err != nil {
			return nil, toErrno(err)
		}
		for _, si := range snaps {
			if si.State == cow.SnapshotError {
				continue // it has no content
			}
			entries = append(entries, fuse.DirEntry{Name: si.ID, Mode: syscall.S_IFREG, Ino: r.nodes.learnSnapshot(si.ID)})
		}
	default:
		return nil, syscall.ENOTDIR
	}
	return entries, 0
}
