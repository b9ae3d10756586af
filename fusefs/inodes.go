package fusefs

import (
	"context"
	"strconv"
	"sync"

	"github.com/cowvol/cowvol/cow"
)

// Every node's ID is its inode number, derived from durable records, so
// that the IDs the kernel holds mean the same to every process that serves
// the connection: the root is 1, snapshots/ is 2, a volume file is
// volumeIno of its volume's ID, a snapshot file snapshotIno of its
// snapshot's. Nodes carry no lookup counts (FORGET changes nothing).
const (
	rootIno      = 1
	snapshotsIno = 2
)

// volumeIno is the first 15 hex digits of a volume ID, with bit 62 set.
func volumeIno(id string) uint64 {
	n, _ := strconv.ParseUint(id[len("vol-"):len("vol-")+15], 16, 64)
	return n | 1<<62
}

// snapshotIno is the first 15 hex digits of a snapshot ID, with bit 61 set.
func snapshotIno(id string) uint64 {
	n, _ := strconv.ParseUint(id[len("snap-"):len("snap-")+15], 16, 64)
	return n | 1<<61
}

// nodeKind says what a node ID is.
type nodeKind int

const (
	kindNone nodeKind = iota
	kindRoot
	kindSnapshots
	kindVolume
	kindSnapshot
)

// inodes resolves node IDs to the volumes and snapshots they name. A
// successor meets IDs its predecessor handed out: a miss reloads the
// names from the engine. Two IDs sharing an inode number (15 hex digits,
// 60 bits, alike) resolve to neither (ESTALE).
type inodes struct {
	eng *cow.Engine

	mu        sync.Mutex // guards the maps
	volumes   map[uint64]string
	snapshots map[uint64]string
}

func newInodes(eng *cow.Engine) *inodes {
	return &inodes{eng: eng, volumes: map[uint64]string{}, snapshots: map[uint64]string{}}
}

const ambiguous = "\x00ambiguous"

// resolve returns what node names, and its volume or snapshot ID.
func (n *inodes) resolve(node uint64) (nodeKind, string) {
	switch {
	case node == rootIno:
		return kindRoot, ""
	case node == snapshotsIno:
		return kindSnapshots, ""
	case node&(1<<62) != 0:
		return kindVolume, n.lookup(node, n.volumes, n.reloadVolumes)
	case node&(1<<61) != 0:
		return kindSnapshot, n.lookup(node, n.snapshots, n.reloadSnapshots)
	}
	return kindNone, ""
}

func (n *inodes) lookup(node uint64, m map[uint64]string, reload func()) string {
	n.mu.Lock()
	id, ok := m[node]
	n.mu.Unlock()
	if !ok {
		reload()
		n.mu.Lock()
		id = m[node]
		n.mu.Unlock()
	}
	if id == ambiguous {
		return ""
	}
	return id
}

func (n *inodes) reloadVolumes() {
	vols, err := n.eng.DescribeVolumes(context.Background())
	if err != nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	clear(n.volumes)
	for _, v := range vols {
		add(n.volumes, volumeIno(v.ID), v.ID)
	}
}

func (n *inodes) reloadSnapshots() {
	snaps, err := n.eng.DescribeSnapshots(context.Background())
	if err != nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	clear(n.snapshots)
	for _, s := range snaps {
		add(n.snapshots, snapshotIno(s.ID), s.ID)
	}
}

func add(m map[uint64]string, ino uint64, id string) {
	if old, ok := m[ino]; ok && old != id {
		id = ambiguous
	}
	m[ino] = id
}

// learnVolume and learnSnapshot record an ID a lookup found.
func (n *inodes) learnVolume(id string) uint64 {
	ino := volumeIno(id)
	n.mu.Lock()
	add(n.volumes, ino, id)
	n.mu.Unlock()
	return ino
}

func (n *inodes) learnSnapshot(id string) uint64 {
	ino := snapshotIno(id)
	n.mu.Lock()
	add(n.snapshots, ino, id)
	n.mu.Unlock()
	return ino
}

// forgetVolume drops a deleted volume's ID.
func (n *inodes) forgetVolume(id string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.volumes[volumeIno(id)] == id {
		delete(n.volumes, volumeIno(id))
	}
}
