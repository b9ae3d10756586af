// Package snapstore owns snapshot storage: the small object-store interface
// the engine writes snapshots through (Store), the URL syntax that selects a
// backend, and its backends: a local directory (Dir) and an S3-compatible
// bucket (S3). Backends hold immutable objects by key, with no rename,
// ranged reads and listing by prefix (with sizes and modification times).
// Package storetest is the conformance suite every backend passes;
// miniotest starts a real MinIO for tests.
package snapstore
