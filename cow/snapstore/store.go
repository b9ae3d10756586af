package snapstore

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// ErrNotFound is returned by Get for a key that holds no object.
var ErrNotFound = errors.New("snapstore: object not found")

// ErrCorrupt is returned by Get for an object whose content fails its
// recorded checksum.
var ErrCorrupt = errors.New("snapstore: object fails its checksum")

// ErrInvalidKey is returned for a key outside the allowed syntax.
var ErrInvalidKey = errors.New("snapstore: invalid key")

// ErrStoreFull is wrapped by the error of a Put the store refused for lack
// of space: an S3 server's 507 (MinIO's XMinioStorageFull) or a disk-full
// internal error, a directory on a full file system. Reads, listings and
// deletions of a full store still work.
var ErrStoreFull = errors.New("snapshot store is full")

// OpenWarning returns what opening st found wrong without refusing it: a
// bucket too full to take the probe object (st serves reads, listings and
// deletions; puts fail with ErrStoreFull until it has room). Nil when
// nothing is wrong.
func OpenWarning(st Store) error {
	if w, ok := st.(interface{ openWarning() error }); ok {
		return w.openWarning()
	}
	return nil
}

// Store is snapshot storage: immutable objects by key.
//
// Keys are slash-separated paths of [A-Za-z0-9._-] segments. Put is atomic
// and durable: when it returns, a reader sees the whole object or (before
// it) none of it, and the object survives a crash. Putting a key again
// replaces the object atomically (the engine only does so with identical
// content, since keys of data are content addresses).
type Store interface {
	// Put stores data under key. It keeps no reference to data once it
	// returns: callers reuse their buffers.
	Put(ctx context.Context, key string, data []byte) error
	// Get returns the object under key, or ErrNotFound.
	Get(ctx context.Context, key string) ([]byte, error)
	// Exists reports whether an object is stored under key.
	Exists(ctx context.Context, key string) (bool, error)
	// GetRange returns n bytes of the object under key from offset
	// off, or ErrNotFound; a range that runs past the object's end is
	// an error (callers read ranges they were told of).
	GetRange(ctx context.Context, key string, off, n int64) ([]byte, error)
	// List calls fn with every object whose key starts with prefix, in
	// lexical order of keys.
	List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error
	// Delete removes the object under key; deleting a missing key is
	// not an error.
	Delete(ctx context.Context, key string) error
	// String describes the store for logs and errors (its URL).
	String() string
}

// ObjectInfo describes a stored object as List reports it.
type ObjectInfo struct {
	Key  string
	Size int64
	// ModTime is when the object was last put, by the store's clock
	// (the S3 server's, the directory's filesystem's).
	ModTime time.Time
}

// ValidKey reports whether key has the allowed syntax.
func ValidKey(key string) bool {
	if key == "" || len(key) > 512 {
		return false
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
		for _, c := range seg {
			ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
			if !ok {
				return false
			}
		}
	}
	return true
}

// Open opens the store a URL names: file:///path for a local directory,
// s3://bucket/prefix?endpoint=URL&region=R for an S3-compatible bucket
// (credentials from the standard AWS chain).
func Open(ctx context.Context, rawURL string) (Store, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("snapshot store %q: %w", rawURL, err)
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("snapshot store %q: a file URL names a local path (file:///path)", rawURL)
		}
		if u.Path == "" {
			return nil, fmt.Errorf("snapshot store %q: no path", rawURL)
		}
		return OpenDir(u.Path)
	case "s3":
		return openS3URL(ctx, u)
	case "":
		return nil, fmt.Errorf("snapshot store %q: want a URL such as file:///var/lib/cowvol/snapshots", rawURL)
	default:
		return nil, fmt.Errorf("snapshot store %q: unsupported scheme %q (supported: file, s3)", rawURL, u.Scheme)
	}
}
