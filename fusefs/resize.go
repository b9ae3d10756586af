package fusefs

import "github.com/hanwen/go-fuse/v2/fuse"

// volumeResized drops a grown volume's attributes from the kernel's caches
// (FUSE_NOTIFY_INVAL_INODE with a negative offset: attributes only), so
// that the next stat, and a loop device's capacity refresh after it, sees
// the new size.
func (r *rawFS) volumeResized(id string) {
	s := r.server.Load()
	if s == nil {
		return
	}
	if st := s.InodeNotify(volumeIno(id), -1, 0); st != fuse.OK && st != fuse.ENOENT {
		r.log.Warn("the kernel may report the volume file's old size until its attributes expire (1 s)", "volume", id, "status", st)
	}
}
