package snapstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// S3 is a Store in an S3-compatible bucket (AWS S3, MinIO, Ceph RGW,
// Garage), under a key prefix. Requests go through the AWS SDK for Go v2
// with path-style addressing, its standard retryer (exponential backoff with
// jitter) and credentials from the standard AWS chain.
//
// Integrity: every Put sends the body's SHA-256 (x-amz-checksum-sha256), so
// the server refuses a body damaged in transit, and records it in the
// object's metadata too; Get verifies it, so a corrupt object is reported, never returned. Ranged
// reads cannot be checked against the whole object: their callers verify
// what they read (the engine's chunks are named by their SHA-256).
// The SDK's own flexible checksums (CRC32, CRC64NVME) are used only where
// an operation requires them, so servers that lack them interoperate.
type S3 struct {
	client *s3.Client
	bucket string
	prefix string // "" or ending in "/"
	url    string
	// warning is what prepare found wrong without refusing the store
	// (see OpenWarning); set before OpenS3 returns.
	warning error
}

var _ Store = (*S3)(nil)

// metaSHA256 is the user-metadata key holding an object's hex SHA-256
// (sent as x-amz-meta-cowvol-sha256).
const metaSHA256 = "cowvol-sha256"

// S3Options tune OpenS3.
type S3Options struct {
	// Endpoint is the server's base URL (http://127.0.0.1:9000); empty
	// means AWS's endpoint for the region.
	Endpoint string
	// Region; empty takes the AWS chain's (AWS_REGION, config files),
	// else us-east-1.
	Region string
	// MaxAttempts per request, retries included; 0 means 5.
	MaxAttempts int
	// RequestTimeout bounds each attempt of a request, from sending it to
	// the end of the response body, so that a server that accepts and
	// never answers fails the attempt (it is retried); 0 means
	// DefaultRequestTimeout.
	RequestTimeout time.Duration
}

// DefaultRequestTimeout bounds one attempt of an S3 request: an 8 MiB pack
// in a minute is 140 KiB/s.
const DefaultRequestTimeout = time.Minute

// openS3URL opens s3://bucket/prefix?endpoint=URL&region=R.
func openS3URL(ctx context.Context, u *url.URL) (*S3, error) {
	q := u.Query()
	for k := range q {
		if k != "endpoint" && k != "region" && k != "max-attempts" && k != "request-timeout" {
			return nil, fmt.Errorf("snapshot store %s: unknown parameter %q (supported: endpoint, region, max-attempts, request-timeout)", redact(u), k)
		}
	}
	opts := S3Options{Endpoint: q.Get("endpoint"), Region: q.Get("region")}
	if s := q.Get("max-attempts"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 100 {
			return nil, fmt.Errorf("snapshot store %s: max-attempts %q: want 1..100", redact(u), s)
		}
		opts.MaxAttempts = n
	}
	if s := q.Get("request-timeout"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 100*time.Millisecond || d > time.Hour {
			return nil, fmt.Errorf("snapshot store %s: request-timeout %q: want a duration from 100ms to 1h (such as 30s)", redact(u), s)
		}
		opts.RequestTimeout = d
	}
	return OpenS3(ctx, u.Host, strings.Trim(u.Path, "/"), opts)
}

func redact(u *url.URL) string { return u.Redacted() }

// OpenS3 opens a bucket as a store, creating the bucket when it does not
// exist, and proves it usable by putting, reading and deleting a probe
// object. It fails with a message naming the endpoint and bucket when the
// server cannot be reached or the bucket cannot be used.
func OpenS3(ctx context.Context, bucket, prefix string, opts S3Options) (*S3, error) {
	if bucket == "" {
		return nil, errors.New("snapshot store: an S3 URL names a bucket (s3://bucket/prefix)")
	}
	if prefix != "" && !ValidKey(prefix) {
		return nil, fmt.Errorf("snapshot store s3://%s/%s: invalid key prefix", bucket, prefix)
	}
	if opts.MaxAttempts == 0 {
		opts.MaxAttempts = 5
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = DefaultRequestTimeout
	}
	loadOpts := []func(*config.LoadOptions) error{
		config.WithHTTPClient(awshttp.NewBuildableClient().WithTimeout(opts.RequestTimeout)),
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = opts.MaxAttempts
				o.MaxBackoff = 5 * time.Second
			})
		}),
	}
	if opts.Region != "" {
		loadOpts = append(loadOpts, config.WithRegion(opts.Region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("snapshot store s3://%s: AWS configuration: %w", bucket, err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	cfg.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
	cfg.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.UsePathStyle = true
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
		}
	})
	s := &S3{client: client, bucket: bucket, url: "s3://" + bucket}
	if prefix != "" {
		s.prefix = prefix + "/"
		s.url += "/" + prefix
	}
	if opts.Endpoint != "" {
		s.url += "?endpoint=" + opts.Endpoint
	}
	if err := s.prepare(ctx, cfg.Region); err != nil {
		return nil, fmt.Errorf("snapshot store %s: %w", s.url, err)
	}
	return s, nil
}

// prepare creates the bucket if needed and round-trips a probe object.
func (s *S3) prepare(ctx context.Context, region string) error {
	_, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &s.bucket})
	if err != nil {
		var nf *types.NotFound
		var nsb *types.NoSuchBucket
		if !errors.As(err, &nf) && !errors.As(err, &nsb) {
			return fmt.Errorf("cannot reach or use bucket %q: %w", s.bucket, err)
		}
		in := &s3.CreateBucketInput{Bucket: &s.bucket}
		if region != "us-east-1" {
			in.CreateBucketConfiguration = &types.CreateBucketConfiguration{LocationConstraint: types.BucketLocationConstraint(region)}
		}
		if _, err := s.client.CreateBucket(ctx, in); err != nil {
			var owned *types.BucketAlreadyOwnedByYou
			if !errors.As(err, &owned) {
				return fmt.Errorf("bucket %q does not exist and cannot be created: %w", s.bucket, err)
			}
		}
	}
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return fmt.Errorf("probe name: %w", err)
	}
	probe := "probe/" + hex.EncodeToString(rnd[:])
	want := []byte("cowvol probe " + probe)
	if err := s.Put(ctx, probe, want); err != nil {
		if errors.Is(err, ErrStoreFull) {
			return s.acceptFull(ctx, err)
		}
		return fmt.Errorf("bucket %q is not writable: %w", s.bucket, err)
	}
	got, err := s.Get(ctx, probe)
	if err == nil && !bytes.Equal(got, want) {
		err = errors.New("read back different bytes")
	}
	if derr := s.Delete(ctx, probe); err == nil {
		err = derr
	}
	if err != nil {
		return fmt.Errorf("bucket %q is not usable: %w", s.bucket, err)
	}
	return nil
}

// acceptFull takes a bucket whose server refused the probe object for
// lack of space (putErr), if it can be listed: a full store must not keep
// the daemon from starting, since reading, restoring and deleting
// snapshots (which frees space) need no room. Puts fail until it has some.
func (s *S3) acceptFull(ctx context.Context, putErr error) error {
	_, err := s.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: aws.String(s.prefix), MaxKeys: aws.Int32(1)})
	if err != nil {
		return fmt.Errorf("bucket %q is full (%v) and cannot be listed: %w", s.bucket, putErr, err)
	}
	s.warning = fmt.Errorf("bucket %q: %w", s.bucket, putErr)
	return nil
}

func (s *S3) openWarning() error { return s.warning }

func (s *S3) String() string { return s.url }

// fullError is a put the S3 server refused for lack of space.
type fullError struct {
	key    string
	status int    // HTTP status
	code   string // S3 error code
	msg    string // S3 error message
	err    error  // the SDK's error
}

func (e *fullError) Error() string {
	return fmt.Sprintf("put %s: the snapshot store is full: the S3 server answered %d %s: %s", e.key, e.status, e.code, e.msg)
}

func (e *fullError) Unwrap() []error { return []error{ErrStoreFull, e.err} }

// asFull returns err as a *fullError when it says the server is out of
// space: HTTP 507 Insufficient Storage (MinIO's XMinioStorageFull), or an
// internal error caused by a full disk (what MinIO answers when a write
// runs out of space midway); else nil.
func asFull(key string, err error) error {
	var re *awshttp.ResponseError
	status := 0
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	code, msg := "", ""
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code, msg = ae.ErrorCode(), ae.ErrorMessage()
	}
	full := status == http.StatusInsufficientStorage || code == "XMinioStorageFull" ||
		code == "InternalError" && strings.Contains(msg, "no space left on device")
	if !full {
		return nil
	}
	return &fullError{key: key, status: status, code: code, msg: msg, err: err}
}

func (s *S3) key(key string) (string, error) {
	if !ValidKey(key) {
		return "", fmt.Errorf("%w: %q", ErrInvalidKey, key)
	}
	return s.prefix + key, nil
}

func isNotFound(err error) bool {
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	if errors.As(err, &nsk) || errors.As(err, &nf) {
		return true
	}
	var ae smithy.APIError
	return errors.As(err, &ae) && (ae.ErrorCode() == "NoSuchKey" || ae.ErrorCode() == "NotFound")
}

func (s *S3) Put(ctx context.Context, key string, data []byte) error {
	sum := sha256.Sum256(data)
	return s.put(ctx, key, data, sum[:], hex.EncodeToString(sum[:]))
}

// put stores data, sending sum (its SHA-256) for the server to verify the
// body against and recording sha for readers.
func (s *S3) put(ctx context.Context, key string, data, sum []byte, sha string) error {
	k, err := s.key(key)
	if err != nil {
		return err
	}
	_, err = s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:         &s.bucket,
		Key:            &k,
		Body:           bytes.NewReader(data),
		ContentLength:  aws.Int64(int64(len(data))),
		ChecksumSHA256: aws.String(base64.StdEncoding.EncodeToString(sum)),
		Metadata:       map[string]string{metaSHA256: sha},
	})
	if err != nil {
		if ferr := asFull(key, err); ferr != nil {
			return ferr
		}
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

func (s *S3) Get(ctx context.Context, key string) ([]byte, error) {
	k, err := s.key(key)
	if err != nil {
		return nil, err
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &k})
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, key)
		}
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	// Every object this store puts records its checksum: one without it
	// was not stored by us, or lost its metadata, and is not trusted.
	want, ok := out.Metadata[metaSHA256]
	if !ok {
		return nil, fmt.Errorf("get %s: %w: no recorded SHA-256 (%s metadata)", key, ErrCorrupt, metaSHA256)
	}
	if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != want {
		return nil, fmt.Errorf("get %s: %w: SHA-256 mismatch (%d bytes)", key, ErrCorrupt, len(b))
	}
	return b, nil
}

func (s *S3) GetRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	k, err := s.key(key)
	if err != nil {
		return nil, err
	}
	if off < 0 || n < 0 {
		return nil, fmt.Errorf("get %s: bad range %d+%d", key, off, n)
	}
	if n == 0 {
		if ok, err := s.Exists(ctx, key); err != nil || !ok {
			if err == nil {
				err = fmt.Errorf("%w: %s", ErrNotFound, key)
			}
			return nil, err
		}
		return []byte{}, nil
	}
	rng := fmt.Sprintf("bytes=%d-%d", off, off+n-1)
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &k, Range: &rng})
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, key)
		}
		return nil, fmt.Errorf("get %s %s: %w", key, rng, err)
	}
	defer out.Body.Close()
	b := make([]byte, n)
	if _, err := io.ReadFull(out.Body, b); err != nil {
		return nil, fmt.Errorf("get %s %s: %w", key, rng, err)
	}
	return b, nil
}

func (s *S3) Exists(ctx context.Context, key string) (bool, error) {
	k, err := s.key(key)
	if err != nil {
		return false, err
	}
	_, err = s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &k})
	if err == nil {
		return true, nil
	}
	if isNotFound(err) {
		return false, nil
	}
	return false, fmt.Errorf("head %s: %w", key, err)
}

func (s *S3) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	p := s.prefix + prefix
	pages := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: &p})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list %q: %w", prefix, err)
		}
		for _, o := range page.Contents {
			key := strings.TrimPrefix(aws.ToString(o.Key), s.prefix)
			if !ValidKey(key) {
				continue // not ours
			}
			if err := fn(ObjectInfo{Key: key, Size: aws.ToInt64(o.Size), ModTime: aws.ToTime(o.LastModified)}); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *S3) Delete(ctx context.Context, key string) error {
	k, err := s.key(key)
	if err != nil {
		return err
	}
	if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &k}); err != nil && !isNotFound(err) {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}
