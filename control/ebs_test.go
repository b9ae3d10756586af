package control

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsebs "github.com/aws/aws-sdk-go-v2/service/ebs"
	ebstypes "github.com/aws/aws-sdk-go-v2/service/ebs/types"
	"github.com/aws/smithy-go"

	"github.com/cowvol/cowvol/cow"
	"github.com/cowvol/cowvol/kms"
)

const blk = cow.DirectBlockSize

// ebsClient is the AWS SDK's EBS client, unmodified, on env's socket.
func ebsClient(env *testEnv) *awsebs.Client {
	return awsebs.New(awsebs.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String("http://cowvol"),
		Credentials:      aws.AnonymousCredentials{},
		HTTPClient:       env.raw, // on env's socket
		RetryMaxAttempts: 1,
	})
}

// listenTCP serves env's engine on a loopback TCP port too, with SigV4 by
// adminKey or readerKey (--listen), and returns its address and server.
func (e *testEnv) listenTCP(t *testing.T) (string, *Server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(e.engine, Options{Logger: quietLogger(), AccessKeys: []AccessKey{adminKey, readerKey}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String(), srv
}

// ebsClientTCP is the SDK's EBS client on addr, signing with key.
func ebsClientTCP(addr string, key AccessKey) *awsebs.Client {
	return awsebs.New(awsebs.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String("http://" + addr),
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: key.AccessKeyID, SecretAccessKey: key.SecretAccessKey}, nil
		}),
		RetryMaxAttempts: 1,
	})
}

// ebsCode is the EBS error type and reason of err.
func ebsCode(err error) (string, string) {
	var ve *ebstypes.ValidationException
	if errors.As(err, &ve) {
		return "ValidationException", string(ve.Reason)
	}
	var nf *ebstypes.ResourceNotFoundException
	if errors.As(err, &nf) {
		return "ResourceNotFoundException", string(nf.Reason)
	}
	var ad *ebstypes.AccessDeniedException
	if errors.As(err, &ad) {
		return "AccessDeniedException", string(ad.Reason)
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode(), ""
	}
	return "", ""
}

// writeRandom writes n random bytes at off of volume id and returns them.
func (e *testEnv) writeRandom(t *testing.T, id string, off int64, n int) {
	t.Helper()
	h, err := e.engine.OpenVolume(id)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	buf := make([]byte, n)
	rand.Read(buf)
	if _, err := h.WriteAt(buf, off); err != nil {
		t.Fatal(err)
	}
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
}

// snapshotOf snapshots volume id and waits for it.
func (e *testEnv) snapshotOf(t *testing.T, id string) string {
	t.Helper()
	s := e.snapshot(t, CreateSnapshotInput{VolumeID: id})
	e.waitCompleted(t, s.SnapshotID)
	return s.SnapshotID
}

// directBlock reads direct block idx of snapshot id through the engine
// (zeros past its end).
func (e *testEnv) directBlock(t *testing.T, id string, idx int64) []byte {
	t.Helper()
	buf := make([]byte, blk)
	n, err := e.engine.ReadSnapshot(context.Background(), id, buf, idx*blk)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	clear(buf[n:])
	return buf
}

// differing compares two snapshots byte by byte over n direct blocks.
func (e *testEnv) differing(t *testing.T, a, b string, n int64) []int64 {
	t.Helper()
	var out []int64
	for i := range n {
		if !bytes.Equal(e.directBlock(t, a, i), e.directBlock(t, b, i)) {
			out = append(out, i)
		}
	}
	return out
}

// listBlocks lists every block of a snapshot through the SDK's paginator.
func listBlocks(t *testing.T, c *awsebs.Client, id string) []ebstypes.Block {
	t.Helper()
	var out []ebstypes.Block
	p := awsebs.NewListSnapshotBlocksPaginator(c, &awsebs.ListSnapshotBlocksInput{SnapshotId: aws.String(id), MaxResults: aws.Int32(100)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatalf("ListSnapshotBlocks %s: %v", id, err)
		}
		if aws.ToInt32(page.BlockSize) != blk {
			t.Fatalf("BlockSize %d", aws.ToInt32(page.BlockSize))
		}
		out = append(out, page.Blocks...)
	}
	return out
}

// listChanged lists the changed blocks of two snapshots.
func listChanged(t *testing.T, c *awsebs.Client, first, second string) []ebstypes.ChangedBlock {
	t.Helper()
	var out []ebstypes.ChangedBlock
	in := &awsebs.ListChangedBlocksInput{SecondSnapshotId: aws.String(second), MaxResults: aws.Int32(100)}
	if first != "" {
		in.FirstSnapshotId = aws.String(first)
	}
	p := awsebs.NewListChangedBlocksPaginator(c, in)
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatalf("ListChangedBlocks %s %s: %v", first, second, err)
		}
		out = append(out, page.ChangedBlocks...)
	}
	return out
}

func changedIndexes(cbs []ebstypes.ChangedBlock) []int64 {
	var out []int64
	for _, c := range cbs {
		out = append(out, int64(aws.ToInt32(c.BlockIndex)))
	}
	return out
}

// getBlock reads a block through the SDK and checks its checksum.
func getBlock(t *testing.T, c *awsebs.Client, id string, idx int32, token *string) []byte {
	t.Helper()
	out, err := c.GetSnapshotBlock(context.Background(), &awsebs.GetSnapshotBlockInput{SnapshotId: aws.String(id), BlockIndex: aws.Int32(idx), BlockToken: token})
	if err != nil {
		t.Fatalf("GetSnapshotBlock %s %d: %v", id, idx, err)
	}
	defer out.BlockData.Close()
	data, err := io.ReadAll(out.BlockData)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if aws.ToInt32(out.DataLength) != blk || len(data) != blk || aws.ToString(out.Checksum) != base64.StdEncoding.EncodeToString(sum[:]) || out.ChecksumAlgorithm != ebstypes.ChecksumAlgorithmChecksumAlgorithmSha256 {
		t.Fatalf("GetSnapshotBlock %s %d: length %d/%d, checksum %s %s", id, idx, aws.ToInt32(out.DataLength), len(data), aws.ToString(out.Checksum), out.ChecksumAlgorithm)
	}
	return data
}

// putBlock writes a block through the SDK.
func putBlock(c *awsebs.Client, id string, idx int32, data []byte) error {
	sum := sha256.Sum256(data)
	_, err := c.PutSnapshotBlock(context.Background(), &awsebs.PutSnapshotBlockInput{
		SnapshotId: aws.String(id), BlockIndex: aws.Int32(idx), BlockData: bytes.NewReader(data),
		DataLength: aws.Int32(int32(len(data))), Checksum: aws.String(base64.StdEncoding.EncodeToString(sum[:])),
		ChecksumAlgorithm: ebstypes.ChecksumAlgorithmChecksumAlgorithmSha256,
	})
	return err
}

// linear is the LINEAR aggregate checksum of blocks written, in index order.
func linear(sums map[int32][32]byte) string {
	keys := slices.Sorted(func(yield func(int32) bool) {
		for k := range sums {
			if !yield(k) {
				return
			}
		}
	})
	h := sha256.New()
	for _, k := range keys {
		s := sums[k]
		h.Write(s[:])
	}
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// copyBlocks copies the listed blocks from snapshot src into started
// snapshot dst (zeros for a changed block src no longer has) and completes
// it.
func copyBlocks(t *testing.T, c *awsebs.Client, src, dst string, blocks []ebstypes.ChangedBlock) {
	t.Helper()
	sums := map[int32][32]byte{}
	for _, b := range blocks {
		idx := aws.ToInt32(b.BlockIndex)
		data := make([]byte, blk)
		if b.SecondBlockToken != nil {
			data = getBlock(t, c, src, idx, b.SecondBlockToken)
		}
		if err := putBlock(c, dst, idx, data); err != nil {
			t.Fatalf("PutSnapshotBlock %s %d: %v", dst, idx, err)
		}
		sums[idx] = sha256.Sum256(data)
	}
	out, err := c.CompleteSnapshot(context.Background(), &awsebs.CompleteSnapshotInput{
		SnapshotId: aws.String(dst), ChangedBlocksCount: aws.Int32(int32(len(sums))),
		Checksum: aws.String(linear(sums)), ChecksumAlgorithm: ebstypes.ChecksumAlgorithmChecksumAlgorithmSha256,
		ChecksumAggregationMethod: ebstypes.ChecksumAggregationMethodChecksumAggregationLinear,
	})
	if err != nil || out.Status != ebstypes.StatusCompleted {
		t.Fatalf("CompleteSnapshot %s: %v %v", dst, out, err)
	}
}

func asChanged(blocks []ebstypes.Block) []ebstypes.ChangedBlock {
	out := make([]ebstypes.ChangedBlock, len(blocks))
	for i, b := range blocks {
		out[i] = ebstypes.ChangedBlock{BlockIndex: b.BlockIndex, SecondBlockToken: b.BlockToken}
	}
	return out
}

func start(t *testing.T, c *awsebs.Client, in *awsebs.StartSnapshotInput) string {
	t.Helper()
	out, err := c.StartSnapshot(context.Background(), in)
	if err != nil {
		t.Fatalf("StartSnapshot: %v", err)
	}
	if out.Status != ebstypes.StatusPending || aws.ToInt32(out.BlockSize) != blk || aws.ToInt64(out.VolumeSize) != aws.ToInt64(in.VolumeSize) {
		t.Fatalf("StartSnapshot answered %+v", out)
	}
	return aws.ToString(out.SnapshotId)
}

// TestEBSBackupAndIncremental backs a volume up with the direct APIs only,
// then incrementally, for a plaintext and an encrypted lineage, and checks
// the copies and ListChangedBlocks against byte comparisons.
func TestEBSBackupAndIncremental(t *testing.T) {
	for _, tc := range []struct {
		name           string
		encrypted, tcp bool
	}{{"plain", false, false}, {"encrypted", true, false}, {"plain-sigv4", false, true}, {"encrypted-sigv4", true, true}} {
		encrypted := tc.encrypted
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv(t)
			c := ebsClient(env)
			if tc.tcp {
				addr, _ := env.listenTCP(t)
				c = ebsClientTCP(addr, adminKey)
			}
			vol := env.create(t, CreateVolumeInput{SizeBytes: 64 << 20, Encrypted: encrypted}).VolumeID
			env.writeRandom(t, vol, 0, 3*blk+4096)
			env.writeRandom(t, vol, 40*blk-100, 200)     // across a block boundary
			env.writeRandom(t, vol, 64<<20-65536, 65536) // the last block
			s1 := env.snapshotOf(t, vol)
			const n = (64 << 20) / blk
			blocks := listBlocks(t, c, s1)
			want := []int64{0, 1, 2, 3, 39, 40, n - 1}
			if got := changedIndexes(asChanged(blocks)); !slices.Equal(got, want) {
				t.Fatalf("ListSnapshotBlocks: %v, want %v", got, want)
			}

			b1 := start(t, c, &awsebs.StartSnapshotInput{VolumeSize: aws.Int64(1), Encrypted: aws.Bool(encrypted), Description: aws.String("backup")})
			copyBlocks(t, c, s1, b1, asChanged(blocks))
			if d := env.differing(t, s1, b1, n); len(d) != 0 {
				t.Fatalf("backup differs from its source in blocks %v", d)
			}
			if got := changedIndexes(asChanged(listBlocks(t, c, b1))); !slices.Equal(got, want) {
				t.Fatalf("ListSnapshotBlocks of the backup: %v", got)
			}

			// Change some blocks, zero one, leave others alone.
			env.writeRandom(t, vol, 2*blk, 100)
			env.writeRandom(t, vol, 20*blk, 2*blk)
			h, _ := env.engine.OpenVolume(vol)
			h.WriteAt(make([]byte, blk), 39*blk)
			h.Sync()
			h.Close()
			s2 := env.snapshotOf(t, vol)
			changed := listChanged(t, c, s1, s2)
			if got, want := changedIndexes(changed), env.differing(t, s1, s2, n); !slices.Equal(got, want) {
				t.Fatalf("ListChangedBlocks(s1, s2) = %v; the bytes differ in %v", got, want)
			}
			if got, want := changedIndexes(listChanged(t, c, s2, s1)), changedIndexes(changed); !slices.Equal(got, want) {
				t.Fatalf("ListChangedBlocks(s2, s1) = %v, want %v", got, want)
			}

			b2 := start(t, c, &awsebs.StartSnapshotInput{VolumeSize: aws.Int64(1), ParentSnapshotId: aws.String(b1), Encrypted: aws.Bool(encrypted)})
			copyBlocks(t, c, s2, b2, changed)
			if d := env.differing(t, s2, b2, n); len(d) != 0 {
				t.Fatalf("incremental backup differs from its source in blocks %v", d)
			}
			if got, want := changedIndexes(listChanged(t, c, b1, b2)), changedIndexes(changed); !slices.Equal(got, want) {
				t.Fatalf("ListChangedBlocks(b1, b2) = %v, want %v", got, want)
			}
			si, err := env.engine.SnapshotInfo(b2)
			if err != nil || si.State != cow.SnapshotCompleted || si.Encrypted != encrypted {
				t.Fatalf("DescribeSnapshots of the incremental: %+v %v", si, err)
			}
			restored := env.create(t, CreateVolumeInput{SnapshotID: b2, Encrypted: encrypted}).VolumeID
			r2 := env.snapshotOf(t, restored)
			if d := env.differing(t, s2, r2, n); len(d) != 0 {
				t.Fatalf("a volume restored from the incremental differs in blocks %v", d)
			}
		})
	}
}

// TestEBSBlockSizes: volumes of blocks smaller and larger than EBS's 512
// KiB list, compare and read right; the small ones back up too.
func TestEBSBlockSizes(t *testing.T) {
	for _, bs := range []int{4 << 10, 1 << 20} {
		t.Run(fmt.Sprint(bs), func(t *testing.T) {
			env := newTestEnv(t)
			c := ebsClient(env)
			vol := env.create(t, CreateVolumeInput{SizeBytes: 16 << 20, BlockSize: bs}).VolumeID
			env.writeRandom(t, vol, blk-10, 20)
			env.writeRandom(t, vol, 7*blk, 3*blk)
			s1 := env.snapshotOf(t, vol)
			env.writeRandom(t, vol, 8*blk+4096, 10)
			env.writeRandom(t, vol, 30*blk, 100)
			s2 := env.snapshotOf(t, vol)
			const n = (16 << 20) / blk
			if got, want := changedIndexes(listChanged(t, c, s1, s2)), env.differing(t, s1, s2, n); !slices.Equal(got, want) {
				t.Fatalf("ListChangedBlocks = %v; the bytes differ in %v", got, want)
			}
			for _, b := range listBlocks(t, c, s2) {
				if got := getBlock(t, c, s2, aws.ToInt32(b.BlockIndex), b.BlockToken); !bytes.Equal(got, env.directBlock(t, s2, int64(aws.ToInt32(b.BlockIndex)))) {
					t.Fatalf("GetSnapshotBlock %d differs", aws.ToInt32(b.BlockIndex))
				}
			}
			if bs > blk {
				return
			}
			b1 := start(t, c, &awsebs.StartSnapshotInput{VolumeSize: aws.Int64(1)})
			copyBlocks(t, c, s2, b1, asChanged(listBlocks(t, c, s2)))
			if d := env.differing(t, s2, b1, n); len(d) != 0 {
				t.Fatalf("backup differs in %v", d)
			}
		})
	}
}

// TestEBSIncrementAcrossLineages: an encrypted increment of a plaintext
// parent, and one under another KMS key than its encrypted parent's, recode
// the parent's blocks and hold the right content; the lineage compares by
// content.
func TestEBSIncrementAcrossLineages(t *testing.T) {
	keys, err := kms.OpenLocal(filepath.Join(t.TempDir(), "keyring"), DefaultRegion, DefaultAccountID)
	if err != nil {
		t.Fatal(err)
	}
	env := newTestEnvWith(t, cow.Options{Keys: keys}, Options{Keys: keys})
	c := ebsClient(env)
	vol := env.create(t, CreateVolumeInput{SizeBytes: 8 << 20}).VolumeID
	env.writeRandom(t, vol, 0, 6*blk)
	s1 := env.snapshotOf(t, vol)
	b1 := start(t, c, &awsebs.StartSnapshotInput{VolumeSize: aws.Int64(1)})
	copyBlocks(t, c, s1, b1, asChanged(listBlocks(t, c, s1)))
	env.writeRandom(t, vol, 5*blk, 10)
	s2 := env.snapshotOf(t, vol)
	changed := listChanged(t, c, s1, s2)

	b2 := start(t, c, &awsebs.StartSnapshotInput{VolumeSize: aws.Int64(1), ParentSnapshotId: aws.String(b1), Encrypted: aws.Bool(true)})
	copyBlocks(t, c, s2, b2, changed)
	key, err := keys.CreateKey("other", "alias/other")
	if err != nil {
		t.Fatal(err)
	}
	b3 := start(t, c, &awsebs.StartSnapshotInput{VolumeSize: aws.Int64(1), ParentSnapshotId: aws.String(b2), Encrypted: aws.Bool(true), KmsKeyArn: aws.String(key.ARN)})
	copyBlocks(t, c, s2, b3, nil)
	const n = (8 << 20) / blk
	for _, b := range []string{b2, b3} {
		if d := env.differing(t, s2, b, n); len(d) != 0 {
			t.Fatalf("%s differs from its source in %v", b, d)
		}
	}
	i2, _ := env.engine.SnapshotInfo(b2)
	i3, _ := env.engine.SnapshotInfo(b3)
	if !i2.Encrypted || !i3.Encrypted || i3.KMSKeyARN != key.ARN || i2.KMSKeyARN == key.ARN {
		t.Fatalf("encryption: %+v %+v", i2, i3)
	}
	if got, want := changedIndexes(listChanged(t, c, b1, b2)), changedIndexes(changed); !slices.Equal(got, want) {
		t.Fatalf("ListChangedBlocks(b1, b2) = %v, want %v", got, want)
	}
	if got := listChanged(t, c, b2, b3); len(got) != 0 {
		t.Fatalf("ListChangedBlocks(b2, b3) = %v, want none", changedIndexes(got))
	}
	// With its key disabled, b3 is neither listed nor read.
	tok := listBlocks(t, c, b3)[0].BlockToken
	keys.OnChange(env.engine.KeysChanged)
	if _, err := keys.SetEnabled(key.KeyID, false); err != nil {
		t.Fatal(err)
	}
	_, err = c.ListSnapshotBlocks(context.Background(), &awsebs.ListSnapshotBlocksInput{SnapshotId: aws.String(b3)})
	if typ, reason := ebsCode(err); typ != "AccessDeniedException" || reason != reasonDependency {
		t.Errorf("ListSnapshotBlocks with the key disabled: %s %s (%v)", typ, reason, err)
	}
	_, err = c.GetSnapshotBlock(context.Background(), &awsebs.GetSnapshotBlockInput{SnapshotId: aws.String(b3), BlockIndex: aws.Int32(0), BlockToken: tok})
	if typ, reason := ebsCode(err); typ != "AccessDeniedException" || reason != reasonDependency {
		t.Errorf("GetSnapshotBlock with the key disabled: %s %s (%v)", typ, reason, err)
	}
}

// TestEBSChangedBlocksPastAPage: a change far past the first page's
// worth of equal blocks is found, page after page.
func TestEBSChangedBlocksPastAPage(t *testing.T) {
	env := newTestEnv(t)
	c := ebsClient(env)
	vol := env.create(t, CreateVolumeInput{SizeBytes: 256 << 20}).VolumeID
	env.writeRandom(t, vol, 0, 256<<20)
	s1 := env.snapshotOf(t, vol)
	env.writeRandom(t, vol, 500*blk, 1)
	s2 := env.snapshotOf(t, vol)
	for _, pair := range [][2]string{{s1, s2}, {s2, s1}} {
		if got := changedIndexes(listChanged(t, c, pair[0], pair[1])); !slices.Equal(got, []int64{500}) {
			t.Fatalf("ListChangedBlocks(%s, %s) = %v, want [500]", pair[0], pair[1], got)
		}
	}
}
