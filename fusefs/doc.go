// Package fusefs owns cowvol's FUSE tree: a flat directory with one regular
// file per volume (<mount>/<vol-id>) and a snapshots/ directory. It translates
// FUSE requests into calls on cow.Volume handles and converts engine errors to
// errnos in one place (errno.go); it holds no volume state of its own.
// It alone decides the files' owner, group and mode (access.go), which the
// kernel enforces for every caller (the mount's default_permissions).
package fusefs
