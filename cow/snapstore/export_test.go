package snapstore

import (
	"bytes"
	"context"
	"crypto/sha256"

	"github.com/aws/aws-sdk-go-v2/service/s3"
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

// PutWithoutMetadataForTest stores data as another S3 client would: no
// recorded checksum.
func (s *S3) PutWithoutMetadataForTest(ctx context.Context, key string, data []byte) error {
	k, err := s.key(key)
	if err != nil {
		return err
	}
	_, err = s.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &s.bucket, Key: &k, Body: bytes.NewReader(data)})
	return err
}

// ObserveDirSyncsForTest calls f with every directory a Dir store syncs
// when it creates fan-out directories, until the returned restore.
func ObserveDirSyncsForTest(f func(path string)) (restore func()) {
	old := syncDirHook
	syncDirHook = func(path string) error { f(path); return old(path) }
	return func() { syncDirHook = old }
}
