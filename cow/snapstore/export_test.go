package snapstore

import "context"

// PutWithSHA256ForTest stores data with a recorded checksum that may not be
// its own: what a corrupt object looks like to a reader.
func (s *S3) PutWithSHA256ForTest(ctx context.Context, key string, data []byte, sha string) error {
	return s.put(ctx, key, data, sha)
}
