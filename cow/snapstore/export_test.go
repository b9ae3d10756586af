package snapstore

import (
	"context"
	"crypto/sha256"
)

// PutWithSHA256ForTest stores data with a recorded checksum that may not be
// its own: what a corrupt object looks like to a reader.
func (s *S3) PutWithSHA256ForTest(ctx context.Context, key string, data []byte, sha string) error {
	sum := sha256.Sum256(data)
	return s.put(ctx, key, data, sum[:], sha)
}

// PutWithWrongChecksumForTest sends a body whose transmitted SHA-256 does
// not match it: what damage in transit looks like to the server.
func (s *S3) PutWithWrongChecksumForTest(ctx context.Context, key string, data []byte) error {
	sum := sha256.Sum256(append([]byte("other"), data...))
	return s.put(ctx, key, data, sum[:], "")
}
