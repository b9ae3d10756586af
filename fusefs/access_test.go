package fusefs

import (
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/cowvol/cowvol/cow"
)

// TestFileAttributes: the owner, group and mode of each kind of file, with
// and without a volume group.
func TestFileAttributes(t *testing.T) {
	euid, egid := uint32(os.Geteuid()), uint32(os.Getegid())
	group := uint32(5566)
	vi := cow.VolumeInfo{ID: "vol-0123456789abcdef0", Size: 1 << 30, BlockSize: 64 << 10, CreateTime: time.Unix(1e9, 0)}
	si := cow.SnapshotInfo{ID: "snap-0123456789abcdef0", VolumeSize: 1 << 30, BlockSize: 64 << 10, StartTime: time.Unix(1e9, 0)}
	for _, tc := range []struct {
		name        string
		volumeGroup *uint32
		kind        string
		wantMode    uint32
		wantGID     uint32
	}{
		{"volume, no group", nil, "volume", syscall.S_IFREG | 0o600, egid},
		{"snapshot, no group", nil, "snapshot", syscall.S_IFREG | 0o400, egid},
		{"directory, no group", nil, "dir", syscall.S_IFDIR | 0o755, egid},
		{"volume, group", &group, "volume", syscall.S_IFREG | 0o660, group},
		{"snapshot, group", &group, "snapshot", syscall.S_IFREG | 0o440, group},
		{"directory, group", &group, "dir", syscall.S_IFDIR | 0o755, group},
	} {
		t.Run(tc.name, func(t *testing.T) {
			acc := newFileAccess(tc.volumeGroup)
			var a fuse.Attr
			switch tc.kind {
			case "volume":
				acc.fillVolumeAttr(&a, vi)
			case "snapshot":
				acc.fillSnapshotAttr(&a, si)
			default:
				acc.fillDirAttr(&a)
			}
			if a.Mode != tc.wantMode || a.Uid != euid || a.Gid != tc.wantGID {
				t.Errorf("mode %#o uid %d gid %d; want mode %#o uid %d gid %d", a.Mode, a.Uid, a.Gid, tc.wantMode, euid, tc.wantGID)
			}
		})
	}
}

// TestRefusedChange: every SETATTR that would change an attribute is
// refused, naming the change; one that sets what is there already is not.
func TestRefusedChange(t *testing.T) {
	var cur fuse.Attr
	newFileAccess(nil).fillVolumeAttr(&cur, cow.VolumeInfo{Size: 1 << 30, BlockSize: 4096, CreateTime: time.Unix(1e9, 5)})
	in := func(valid uint32, set func(*fuse.SetAttrIn)) *fuse.SetAttrIn {
		s := &fuse.SetAttrIn{}
		s.Valid = valid
		if set != nil {
			set(s)
		}
		return s
	}
	for _, tc := range []struct {
		name string
		in   *fuse.SetAttrIn
		want []string // substrings of the description; none: no change
	}{
		{"nothing", in(0, nil), nil},
		{"file handle only", in(fuse.FATTR_FH, nil), nil},
		{"chmod to another mode", in(fuse.FATTR_MODE, func(s *fuse.SetAttrIn) { s.Mode = 0o666 }), []string{"mode 0666"}},
		{"chmod to the same mode", in(fuse.FATTR_MODE, func(s *fuse.SetAttrIn) { s.Mode = 0o600 }), nil},
		{"chown", in(fuse.FATTR_UID, func(s *fuse.SetAttrIn) { s.Uid = cur.Uid + 1 }), []string{"owner"}},
		{"chgrp", in(fuse.FATTR_GID, func(s *fuse.SetAttrIn) { s.Gid = cur.Gid + 1 }), []string{"group"}},
		{"chown to the same owner", in(fuse.FATTR_UID|fuse.FATTR_GID, func(s *fuse.SetAttrIn) { s.Uid, s.Gid = cur.Uid, cur.Gid }), nil},
		{"truncate", in(fuse.FATTR_SIZE, func(s *fuse.SetAttrIn) { s.Size = 0 }), []string{"size 0"}},
		{"truncate to the same size", in(fuse.FATTR_SIZE, func(s *fuse.SetAttrIn) { s.Size = 1 << 30 }), nil},
		{"touch", in(fuse.FATTR_ATIME|fuse.FATTR_MTIME|fuse.FATTR_ATIME_NOW|fuse.FATTR_MTIME_NOW, nil), []string{"times"}},
		{"touch -d another time", in(fuse.FATTR_MTIME, func(s *fuse.SetAttrIn) { s.Mtime = 7 }), []string{"times"}},
		{"touch -d its own time", in(fuse.FATTR_ATIME|fuse.FATTR_MTIME, func(s *fuse.SetAttrIn) {
			s.Atime, s.Atimensec, s.Mtime, s.Mtimensec = cur.Atime, cur.Atimensec, cur.Mtime, cur.Mtimensec
		}), nil},
		{"chmod and truncate", in(fuse.FATTR_MODE|fuse.FATTR_SIZE, func(s *fuse.SetAttrIn) { s.Mode, s.Size = 0o644, 1 }), []string{"mode 0644", "size 1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := refusedChange(tc.in, &cur)
			if (got == "") != (len(tc.want) == 0) {
				t.Errorf("refusedChange = %q, want %q", got, tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("refusedChange = %q, want it to name %q", got, w)
				}
			}
		})
	}
}

// TestMountOptions: other users reach the mount, and the kernel checks
// their access against each file's owner, group and mode.
func TestMountOptions(t *testing.T) {
	opts := strings.Split(mountData(7, syscall.S_IFDIR|0o755), ",")
	for _, want := range []string{"fd=7", "rootmode=40000", "allow_other", "default_permissions"} {
		if !slices.Contains(opts, want) {
			t.Errorf("mount data %q lacks %s", opts, want)
		}
	}
}
