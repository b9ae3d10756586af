package control

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsebs "github.com/aws/aws-sdk-go-v2/service/ebs"
	ebstypes "github.com/aws/aws-sdk-go-v2/service/ebs/types"

	"github.com/cowvol/cowvol/cow"
	"github.com/cowvol/cowvol/cow/snapstore"
)

// TestEBSBadInput sends the SDK's requests with bad input: each is
// refused with EBS's error, and nothing is stored.
func TestEBSBadInput(t *testing.T) {
	env := newTestEnv(t)
	c := ebsClient(env)
	ctx := context.Background()
	vol := env.create(t, CreateVolumeInput{SizeBytes: 8 << 20}).VolumeID
	env.writeRandom(t, vol, 0, 2*blk)
	s1 := env.snapshotOf(t, vol)
	dst := start(t, c, &awsebs.StartSnapshotInput{VolumeSize: aws.Int64(1)})
	data := bytes.Repeat([]byte{7}, blk)
	sum := sha256.Sum256(data)
	good := base64.StdEncoding.EncodeToString(sum[:])
	put := func(id string, idx int32, body []byte, n int32, checksum string) error {
		_, err := c.PutSnapshotBlock(ctx, &awsebs.PutSnapshotBlockInput{
			SnapshotId: aws.String(id), BlockIndex: aws.Int32(idx), BlockData: bytes.NewReader(body),
			DataLength: aws.Int32(n), Checksum: aws.String(checksum), ChecksumAlgorithm: ebstypes.ChecksumAlgorithmChecksumAlgorithmSha256,
		})
		return err
	}
	tok := listBlocks(t, c, s1)[0].BlockToken
	otherSum := sha256.Sum256([]byte("other"))
	cases := []struct {
		name        string
		call        func() error
		typ, reason string
	}{
		{"wrong checksum", func() error { return put(dst, 0, data, blk, base64.StdEncoding.EncodeToString(otherSum[:])) }, "ValidationException", reasonParameter},
		{"checksum not base64", func() error { return put(dst, 0, data, blk, "!!") }, "ValidationException", reasonParameter},
		{"index past the end", func() error { return put(dst, 2048, data, blk, good) }, "ValidationException", reasonBlock},
		{"short block", func() error {
			short := data[:4096]
			s := sha256.Sum256(short)
			return put(dst, 0, short, 4096, base64.StdEncoding.EncodeToString(s[:]))
		}, "ValidationException", reasonParameter},
		{"unknown snapshot", func() error { return put("snap-0123456789abcdef0", 0, data, blk, good) }, "ResourceNotFoundException", reasonSnapNotFound},
		{"not a direct snapshot", func() error { return put(s1, 0, data, blk, good) }, "ValidationException", reasonSnapshotID},
		{"list unknown", func() error {
			_, err := c.ListSnapshotBlocks(ctx, &awsebs.ListSnapshotBlocksInput{SnapshotId: aws.String("snap-0123456789abcdef0")})
			return err
		}, "ResourceNotFoundException", reasonSnapNotFound},
		{"list pending", func() error {
			_, err := c.ListSnapshotBlocks(ctx, &awsebs.ListSnapshotBlocksInput{SnapshotId: aws.String(dst)})
			return err
		}, "ResourceNotFoundException", reasonSnapNotFound},
		{"get past the end", func() error {
			_, err := c.GetSnapshotBlock(ctx, &awsebs.GetSnapshotBlockInput{SnapshotId: aws.String(s1), BlockIndex: aws.Int32(16), BlockToken: tok})
			return err
		}, "ValidationException", reasonBlock},
		{"get with another block's token", func() error {
			_, err := c.GetSnapshotBlock(ctx, &awsebs.GetSnapshotBlockInput{SnapshotId: aws.String(s1), BlockIndex: aws.Int32(1), BlockToken: tok})
			return err
		}, "ValidationException", reasonBlockToken},
		{"bad page token", func() error {
			_, err := c.ListSnapshotBlocks(ctx, &awsebs.ListSnapshotBlocksInput{SnapshotId: aws.String(s1), NextToken: aws.String("AAAA")})
			return err
		}, "ValidationException", reasonPageToken},
		{"small MaxResults", func() error {
			_, err := c.ListSnapshotBlocks(ctx, &awsebs.ListSnapshotBlocksInput{SnapshotId: aws.String(s1), MaxResults: aws.Int32(5)})
			return err
		}, "ValidationException", reasonParameter},
		{"unrelated snapshots", func() error {
			other := env.create(t, CreateVolumeInput{SizeBytes: 8 << 20}).VolumeID
			s := env.snapshotOf(t, other)
			_, err := c.ListChangedBlocks(ctx, &awsebs.ListChangedBlocksInput{FirstSnapshotId: aws.String(s1), SecondSnapshotId: aws.String(s)})
			return err
		}, "ValidationException", reasonUnrelated},
		{"volume size 0", func() error {
			_, err := c.StartSnapshot(ctx, &awsebs.StartSnapshotInput{VolumeSize: aws.Int64(0)})
			return err
		}, "ValidationException", reasonVolumeSize},
		{"short timeout", func() error {
			_, err := c.StartSnapshot(ctx, &awsebs.StartSnapshotInput{VolumeSize: aws.Int64(1), Timeout: aws.Int32(1)})
			return err
		}, "ValidationException", reasonParameter},
		{"unknown parent", func() error {
			_, err := c.StartSnapshot(ctx, &awsebs.StartSnapshotInput{VolumeSize: aws.Int64(1), ParentSnapshotId: aws.String("snap-0123456789abcdef0")})
			return err
		}, "ResourceNotFoundException", reasonSnapNotFound},
		{"unknown KMS key", func() error {
			_, err := c.StartSnapshot(ctx, &awsebs.StartSnapshotInput{VolumeSize: aws.Int64(1), Encrypted: aws.Bool(true), KmsKeyArn: aws.String("alias/none")})
			return err
		}, "ValidationException", reasonCustomerKey},
		{"token reused with other parameters", func() error {
			in := &awsebs.StartSnapshotInput{VolumeSize: aws.Int64(1), ClientToken: aws.String("tok-1")}
			if _, err := c.StartSnapshot(ctx, in); err != nil {
				return err
			}
			in.VolumeSize = aws.Int64(2)
			_, err := c.StartSnapshot(ctx, in)
			return err
		}, "ConflictException", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			typ, reason := ebsCode(tc.call())
			if typ != tc.typ || reason != tc.reason {
				t.Fatalf("got %s %s, want %s %s", typ, reason, tc.typ, tc.reason)
			}
		})
	}
	// Nothing was stored: a count of one is refused, zero completes an
	// empty snapshot.
	complete := func(n int32, checksum *string) error {
		_, err := c.CompleteSnapshot(ctx, &awsebs.CompleteSnapshotInput{SnapshotId: aws.String(dst), ChangedBlocksCount: aws.Int32(n),
			Checksum: checksum, ChecksumAlgorithm: ebstypes.ChecksumAlgorithmChecksumAlgorithmSha256})
		return err
	}
	if typ, _ := ebsCode(complete(1, nil)); typ != "ValidationException" {
		t.Fatalf("CompleteSnapshot with a wrong count: %s", typ)
	}
	if err := putBlock(c, dst, 3, data); err != nil {
		t.Fatal(err)
	}
	if typ, _ := ebsCode(complete(1, aws.String(good))); typ != "ValidationException" {
		t.Fatalf("CompleteSnapshot with a wrong aggregate checksum: %s", typ)
	}
	if err := complete(1, aws.String(linear(map[int32][32]byte{3: sum}))); err != nil {
		t.Fatalf("CompleteSnapshot after refusals: %v", err)
	}
	if got := changedIndexes(asChanged(listBlocks(t, c, dst))); len(got) != 1 || got[0] != 3 {
		t.Fatalf("the completed snapshot holds blocks %v, want [3]", got)
	}
	if typ, reason := ebsCode(putBlock(c, dst, 4, data)); typ != "ValidationException" || reason != reasonSnapshotID {
		t.Fatalf("PutSnapshotBlock after completion: %s %s", typ, reason)
	}
}

// TestEBSTokensExpire: a page token and a block token past their expiry
// are refused.
func TestEBSTokensExpire(t *testing.T) {
	env := newTestEnv(t)
	addr, srv := env.listenTCP(t)
	c := ebsClientTCP(addr, adminKey)
	vol := env.create(t, CreateVolumeInput{SizeBytes: 128 << 20}).VolumeID
	env.writeRandom(t, vol, 0, 128<<20)
	s1 := env.snapshotOf(t, vol)
	ctx := context.Background()
	page, err := c.ListSnapshotBlocks(ctx, &awsebs.ListSnapshotBlocksInput{SnapshotId: aws.String(s1), MaxResults: aws.Int32(100)})
	if err != nil || page.NextToken == nil || len(page.Blocks) != 100 {
		t.Fatalf("first page: %v %v", page, err)
	}
	if exp := aws.ToTime(page.ExpiryTime); exp.Before(time.Now().Add(ebsTokenTTL - time.Minute)) {
		t.Fatalf("ExpiryTime %v", exp)
	}
	srv.ebs.now = func() time.Time { return time.Now().Add(ebsTokenTTL + time.Second) }
	_, err = c.ListSnapshotBlocks(ctx, &awsebs.ListSnapshotBlocksInput{SnapshotId: aws.String(s1), NextToken: page.NextToken})
	if typ, reason := ebsCode(err); typ != "ValidationException" || reason != reasonPageToken {
		t.Fatalf("expired page token: %s %s (%v)", typ, reason, err)
	}
	_, err = c.GetSnapshotBlock(ctx, &awsebs.GetSnapshotBlockInput{SnapshotId: aws.String(s1), BlockIndex: aws.Int32(0), BlockToken: page.Blocks[0].BlockToken})
	if typ, reason := ebsCode(err); typ != "ValidationException" || reason != reasonBlockToken {
		t.Fatalf("expired block token: %s %s (%v)", typ, reason, err)
	}
}

// TestEBSAuthorization: a read-only key lists and reads plaintext blocks,
// but writes nothing and reads no encrypted block; too many requests at
// once are throttled.
func TestEBSAuthorization(t *testing.T) {
	env := newTestEnv(t)
	addr, srv := env.listenTCP(t)
	reader := ebsClientTCP(addr, readerKey)
	ctx := context.Background()
	plain := env.create(t, CreateVolumeInput{SizeBytes: 8 << 20}).VolumeID
	enc := env.create(t, CreateVolumeInput{SizeBytes: 8 << 20, Encrypted: true}).VolumeID
	env.writeRandom(t, plain, 0, blk)
	env.writeRandom(t, enc, 0, blk)
	sp, se := env.snapshotOf(t, plain), env.snapshotOf(t, enc)
	getBlock(t, reader, sp, 0, listBlocks(t, reader, sp)[0].BlockToken)
	_, err := reader.GetSnapshotBlock(ctx, &awsebs.GetSnapshotBlockInput{SnapshotId: aws.String(se), BlockIndex: aws.Int32(0), BlockToken: listBlocks(t, reader, se)[0].BlockToken})
	if typ, reason := ebsCode(err); typ != "AccessDeniedException" || reason != reasonDependency {
		t.Fatalf("read-only read of an encrypted block: %s %s", typ, reason)
	}
	_, err = reader.StartSnapshot(ctx, &awsebs.StartSnapshotInput{VolumeSize: aws.Int64(1)})
	if typ, _ := ebsCode(err); typ != "AccessDeniedException" {
		t.Fatalf("read-only StartSnapshot: %s", typ)
	}
	for range maxEBSInFlight {
		srv.ebs.slots <- struct{}{}
	}
	_, err = reader.ListSnapshotBlocks(ctx, &awsebs.ListSnapshotBlocksInput{SnapshotId: aws.String(sp)})
	var te *ebstypes.RequestThrottledException
	if !errors.As(err, &te) || te.Reason != ebstypes.RequestThrottledExceptionReasonAccountThrottled {
		t.Fatalf("with every slot taken: %v", err)
	}
	for range maxEBSInFlight {
		<-srv.ebs.slots
	}
}

// TestEBSForeignSnapshot: a snapshot of another account, found in a
// shared store, is neither read nor written nor built on.
func TestEBSForeignSnapshot(t *testing.T) {
	store, err := snapstore.OpenDir(filepath.Join(t.TempDir(), "shared"))
	if err != nil {
		t.Fatal(err)
	}
	theirs := newTestEnvWith(t, cow.Options{SnapshotStore: store, AccountID: "111111111111"}, Options{AccountID: "111111111111"})
	ours := newTestEnvWith(t, cow.Options{SnapshotStore: store, AccountID: "222222222222", CatalogInterval: 20 * time.Millisecond}, Options{AccountID: "222222222222"})
	vol := theirs.create(t, CreateVolumeInput{SizeBytes: 8 << 20}).VolumeID
	theirs.writeRandom(t, vol, 0, blk)
	snap := theirs.snapshotOf(t, vol)
	c := ebsClient(ours)
	ctx := context.Background()
	_, err = c.ListSnapshotBlocks(ctx, &awsebs.ListSnapshotBlocksInput{SnapshotId: aws.String(snap)})
	if typ, reason := ebsCode(err); typ != "AccessDeniedException" || reason != reasonAccount {
		t.Errorf("ListSnapshotBlocks of another account's snapshot: %s %s (%v)", typ, reason, err)
	}
	_, err = c.StartSnapshot(ctx, &awsebs.StartSnapshotInput{VolumeSize: aws.Int64(1), ParentSnapshotId: aws.String(snap)})
	if typ, reason := ebsCode(err); typ != "AccessDeniedException" || reason != reasonAccount {
		t.Errorf("StartSnapshot on another account's snapshot: %s %s (%v)", typ, reason, err)
	}
	if typ, reason := ebsCode(putBlock(c, snap, 0, make([]byte, blk))); typ != "AccessDeniedException" || reason != reasonAccount {
		t.Errorf("PutSnapshotBlock into another account's snapshot: %s %s", typ, reason)
	}
}
