// Package snapstore owns snapshot storage: the small object-store interface
// the engine writes snapshots through (Store), the URL syntax that selects a
// backend, and the local-directory backend. Backends hold immutable objects
// by key, with no rename and listing by prefix, so that an S3-compatible
// object store fits the same interface. Package storetest is the conformance
// suite every backend passes.
package snapstore
