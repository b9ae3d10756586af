// Package cow is the cowvol engine: volumes as copy-on-write (redirect-on-write)
// extent maps over the daemon's own data files, with metadata persisted through
// package meta.
//
// cow owns the vocabulary the rest of the daemon speaks (VolumeInfo, Tag, the
// sentinel errors) and the small interfaces it consumes. Package fusefs
// translates FUSE requests into Volume calls and package control translates EC2
// Query requests into Engine calls; neither touches Badger or the data files.
package cow
