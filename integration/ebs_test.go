package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsebs "github.com/aws/aws-sdk-go-v2/service/ebs"
	ebstypes "github.com/aws/aws-sdk-go-v2/service/ebs/types"
)

const ebsBlock = 512 << 10

// ebsSocketClient is the AWS SDK's EBS client, unmodified, on the
// daemon's unix socket, unsigned, without retries.
func ebsSocketClient(d *daemon) *awsebs.Client {
	return awsebs.New(awsebs.Options{
		Region: "us-east-1", BaseEndpoint: aws.String("http://cowvol"), Credentials: aws.AnonymousCredentials{},
		HTTPClient: sdkHTTPClient(unixDialer(d.Socket)), RetryMaxAttempts: 1,
	})
}

// ebsTCPClient is the SDK's EBS client on the daemon's --listen address,
// signing with an access key (SigV4, service ebs).
func ebsTCPClient(addr string, key accessKey) *awsebs.Client {
	creds := aws.NewCredentialsCache(aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return aws.Credentials{AccessKeyID: key.id, SecretAccessKey: key.secret, Source: "cowvol test"}, nil
	}))
	return awsebs.New(awsebs.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://" + addr), Credentials: creds,
		HTTPClient: sdkHTTPClient(nil), RetryMaxAttempts: 1})
}

// ebsBackup copies blocks (index -> token in src; nil: write zeros) from
// snapshot src into a new snapshot, an increment of parent when given,
// with StartSnapshot, PutSnapshotBlock and CompleteSnapshot only.
func ebsBackup(t *testing.T, c *awsebs.Client, src, parent string, blocks map[int32]*string) string {
	t.Helper()
	in := &awsebs.StartSnapshotInput{VolumeSize: aws.Int64(1), Description: aws.String("backup of " + src)}
	if parent != "" {
		in.ParentSnapshotId = aws.String(parent)
	}
	started, err := c.StartSnapshot(sdkCtx(t), in)
	if err != nil {
		t.Fatalf("StartSnapshot: %v", err)
	}
	dst := aws.ToString(started.SnapshotId)
	agg := sha256.New()
	for _, idx := range slices.Sorted(maps.Keys(blocks)) {
		data := make([]byte, ebsBlock)
		if tok := blocks[idx]; tok != nil {
			out, err := c.GetSnapshotBlock(sdkCtx(t), &awsebs.GetSnapshotBlockInput{SnapshotId: aws.String(src), BlockIndex: aws.Int32(idx), BlockToken: tok})
			if err != nil {
				t.Fatalf("GetSnapshotBlock %s %d: %v", src, idx, err)
			}
			data, err = io.ReadAll(out.BlockData)
			out.BlockData.Close()
			if sum := sha256.Sum256(data); err != nil || aws.ToString(out.Checksum) != base64.StdEncoding.EncodeToString(sum[:]) {
				t.Fatalf("GetSnapshotBlock %s %d: %v, checksum %s", src, idx, err, aws.ToString(out.Checksum))
			}
		}
		sum := sha256.Sum256(data)
		agg.Write(sum[:])
		_, err := c.PutSnapshotBlock(sdkCtx(t), &awsebs.PutSnapshotBlockInput{
			SnapshotId: aws.String(dst), BlockIndex: aws.Int32(idx), BlockData: bytes.NewReader(data), DataLength: aws.Int32(ebsBlock),
			Checksum: aws.String(base64.StdEncoding.EncodeToString(sum[:])), ChecksumAlgorithm: ebstypes.ChecksumAlgorithmChecksumAlgorithmSha256,
		})
		if err != nil {
			t.Fatalf("PutSnapshotBlock %s %d: %v", dst, idx, err)
		}
	}
	done, err := c.CompleteSnapshot(sdkCtx(t), &awsebs.CompleteSnapshotInput{
		SnapshotId: aws.String(dst), ChangedBlocksCount: aws.Int32(int32(len(blocks))),
		Checksum: aws.String(base64.StdEncoding.EncodeToString(agg.Sum(nil))), ChecksumAlgorithm: ebstypes.ChecksumAlgorithmChecksumAlgorithmSha256,
		ChecksumAggregationMethod: ebstypes.ChecksumAggregationMethodChecksumAggregationLinear,
	})
	if err != nil || done.Status != ebstypes.StatusCompleted {
		t.Fatalf("CompleteSnapshot %s: %v", dst, err)
	}
	return dst
}

// allBlocks lists a snapshot's blocks with ListSnapshotBlocks' paginator.
func allBlocks(t *testing.T, c *awsebs.Client, id string) map[int32]*string {
	t.Helper()
	out := map[int32]*string{}
	p := awsebs.NewListSnapshotBlocksPaginator(c, &awsebs.ListSnapshotBlocksInput{SnapshotId: aws.String(id), MaxResults: aws.Int32(100)})
	for p.HasMorePages() {
		page, err := p.NextPage(sdkCtx(t))
		if err != nil {
			t.Fatalf("ListSnapshotBlocks %s: %v", id, err)
		}
		for _, b := range page.Blocks {
			out[aws.ToInt32(b.BlockIndex)] = b.BlockToken
		}
	}
	return out
}

// changedBlocks lists the blocks that differ between two snapshots, with
// the second's tokens (nil where the second has no data).
func changedBlocks(t *testing.T, c *awsebs.Client, first, second string) map[int32]*string {
	t.Helper()
	out := map[int32]*string{}
	p := awsebs.NewListChangedBlocksPaginator(c, &awsebs.ListChangedBlocksInput{FirstSnapshotId: aws.String(first), SecondSnapshotId: aws.String(second), MaxResults: aws.Int32(100)})
	for p.HasMorePages() {
		page, err := p.NextPage(sdkCtx(t))
		if err != nil {
			t.Fatalf("ListChangedBlocks %s %s: %v", first, second, err)
		}
		for _, b := range page.ChangedBlocks {
			out[aws.ToInt32(b.BlockIndex)] = b.SecondBlockToken
		}
	}
	return out
}

// differingBlocks compares two volume files 512 KiB at a time.
func differingBlocks(t *testing.T, a, b string) []int32 {
	t.Helper()
	fa, err := os.Open(a)
	if err != nil {
		t.Fatal(err)
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		t.Fatal(err)
	}
	defer fb.Close()
	x, y := make([]byte, ebsBlock), make([]byte, ebsBlock)
	var out []int32
	for i := int32(0); ; i++ {
		n, errA := io.ReadFull(fa, x)
		m, _ := io.ReadFull(fb, y)
		if n != m || !bytes.Equal(x[:n], y[:m]) {
			out = append(out, i)
		}
		if errA != nil {
			return out
		}
	}
}

// restoreAndCheck restores snapshot id to a volume and checks its ext4:
// e2fsck clean, every file's checksum as want (by subdirectory).
func restoreAndCheck(t *testing.T, d *daemon, id string, want map[string]map[string]string) volume {
	t.Helper()
	var v volume
	d.mustJSON(t, d.mustCLI(t, "create-volume", "--snapshot-id", id), &v)
	lo := attachLoop(t, d.volumePath(v.VolumeId), true)
	defer lo.detach(t)
	e2fsckClean(t, lo.Dev)
	m := mountDev(t, lo.Dev, t.TempDir(), "ro")
	defer m.unmount(t)
	for dir, files := range want {
		checkTree(t, filepath.Join(m.Dir, dir), files)
	}
	return v
}

// TestEBSDirectAPIsBackUpExt4 backs an ext4 volume up with the AWS SDK's
// EBS client only, over the socket and over --listen: a full backup by
// ListSnapshotBlocks + GetSnapshotBlock into StartSnapshot/PutSnapshotBlock/
// CompleteSnapshot, then an increment by ListChangedBlocks against the
// parent; each restored copy is e2fsck-clean with the same files, and
// ListChangedBlocks is exactly the blocks whose bytes differ.
func TestEBSDirectAPIsBackUpExt4(t *testing.T) {
	requirePrereqs(t)
	addr := freeLoopbackAddr(t)
	creds := writeCredentialsFile(t, sdkKeys...)
	d := startDaemon(t, withDaemonArgs("--listen", addr, "--credentials-file", creds, "--account-id", sdkAccountID))
	for _, tc := range []struct {
		name string
		c    *awsebs.Client
	}{{"socket", ebsSocketClient(d)}, {"sigv4", ebsTCPClient(addr, sdkKeys[0])}} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.c
			vol := d.createVolume(t, "1GiB")
			want := map[string]map[string]string{}
			lo := attachLoop(t, d.volumePath(vol.VolumeId))
			mkfsExt4(t, lo.Dev)
			m := mountDev(t, lo.Dev, t.TempDir())
			want["a"] = writeTree(t, filepath.Join(m.Dir, "a"), 1, 60, 256*kib)
			syscall.Sync()
			m.unmount(t)
			lo.detach(t)
			s1 := d.createSnapshot(t, vol.VolumeId).SnapshotId
			d.waitSnapshotCompleted(t, s1)

			b1 := ebsBackup(t, c, s1, "", allBlocks(t, c, s1))
			r1 := restoreAndCheck(t, d, b1, want)

			lo = attachLoop(t, d.volumePath(vol.VolumeId))
			m = mountDev(t, lo.Dev, t.TempDir())
			maps.Copy(want["a"], writeTree(t, filepath.Join(m.Dir, "a"), 2, 20, 256*kib))
			want["b"] = writeTree(t, filepath.Join(m.Dir, "b"), 3, 40, 256*kib)
			syscall.Sync()
			m.unmount(t)
			lo.detach(t)
			s2 := d.createSnapshot(t, vol.VolumeId).SnapshotId
			d.waitSnapshotCompleted(t, s2)

			changed := changedBlocks(t, c, s1, s2)
			if all := allBlocks(t, c, s2); len(changed) == 0 || len(changed) >= len(all) {
				t.Errorf("ListChangedBlocks lists %d blocks of the %d the second snapshot has: want some, not all", len(changed), len(all))
			}
			b2 := ebsBackup(t, c, s2, b1, changed)
			r2 := restoreAndCheck(t, d, b2, want)
			if got, wantIdx := slices.Sorted(maps.Keys(changedBlocks(t, c, b1, b2))), slices.Sorted(maps.Keys(changed)); !slices.Equal(got, wantIdx) {
				t.Errorf("ListChangedBlocks(b1, b2) = %v, want %v", got, wantIdx)
			}
			if tc.name == "socket" {
				// Exactly the blocks whose bytes differ: restored copies
				// of the two backups, compared byte for byte.
				got := slices.Sorted(maps.Keys(changed))
				if diff := differingBlocks(t, d.volumePath(r1.VolumeId), d.volumePath(r2.VolumeId)); !slices.Equal(got, diff) {
					t.Errorf("ListChangedBlocks(s1, s2) = %v; the bytes differ in %v", got, diff)
				}
			}
		})
	}
}

// TestEBSWithTheAWSCLI: Debian's aws CLI reads a snapshot block by block
// and writes a new one with `aws ebs` over --listen.
func TestEBSWithTheAWSCLI(t *testing.T) {
	requirePrereqs(t)
	addr := freeLoopbackAddr(t)
	creds := writeCredentialsFile(t, sdkKeys...)
	d := startDaemon(t, withDaemonArgs("--listen", addr, "--credentials-file", creds, "--account-id", sdkAccountID))
	a := newAWSCLI(t, addr, sdkKeys[0].id, sdkKeys[0].secret)
	vol := d.createVolume(t, "64MiB")
	data := make([]byte, ebsBlock)
	for i := range data {
		data[i] = byte(i*7 + 1)
	}
	f, err := os.OpenFile(d.volumePath(vol.VolumeId), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(data, 3*ebsBlock); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	snap := d.createSnapshot(t, vol.VolumeId).SnapshotId
	d.waitSnapshotCompleted(t, snap)

	var list struct {
		Blocks []struct {
			BlockIndex int
			BlockToken string
		}
		BlockSize int
	}
	a.mustJSON(t, &list, "ebs", "list-snapshot-blocks", "--snapshot-id", snap)
	if len(list.Blocks) != 1 || list.Blocks[0].BlockIndex != 3 || list.BlockSize != ebsBlock {
		t.Fatalf("aws ebs list-snapshot-blocks: %+v", list)
	}
	out := filepath.Join(t.TempDir(), "block")
	var got struct {
		DataLength json.RawMessage // aws CLI v1 prints a number, v2 a string
		Checksum   string
	}
	a.mustJSON(t, &got, "ebs", "get-snapshot-block", "--snapshot-id", snap, "--block-index", "3", "--block-token", list.Blocks[0].BlockToken, out)
	b, err := os.ReadFile(out)
	sum := sha256.Sum256(data)
	if err != nil || !bytes.Equal(b, data) || strings.Trim(string(got.DataLength), `"`) != strconv.Itoa(ebsBlock) ||
		got.Checksum != base64.StdEncoding.EncodeToString(sum[:]) {
		t.Fatalf("aws ebs get-snapshot-block: %+v, %d bytes, %v", got, len(b), err)
	}

	var started struct{ SnapshotId, Status string }
	a.mustJSON(t, &started, "ebs", "start-snapshot", "--volume-size", "1", "--description", "from the aws CLI")
	if started.Status != "pending" {
		t.Fatalf("aws ebs start-snapshot: %+v", started)
	}
	a.mustJSON(t, nil, "ebs", "put-snapshot-block", "--snapshot-id", started.SnapshotId, "--block-index", "9", "--block-data", out,
		"--data-length", "524288", "--checksum", got.Checksum, "--checksum-algorithm", "SHA256")
	a.mustFail(t, "ValidationException", "ebs", "complete-snapshot", "--snapshot-id", started.SnapshotId, "--changed-blocks-count", "2")
	var done struct{ Status string }
	a.mustJSON(t, &done, "ebs", "complete-snapshot", "--snapshot-id", started.SnapshotId, "--changed-blocks-count", "1")
	if done.Status != "completed" {
		t.Fatalf("aws ebs complete-snapshot: %+v", done)
	}
	var changed struct {
		ChangedBlocks []struct{ BlockIndex int }
	}
	a.mustJSON(t, &changed, "ebs", "list-changed-blocks", "--second-snapshot-id", started.SnapshotId)
	if len(changed.ChangedBlocks) != 1 || changed.ChangedBlocks[0].BlockIndex != 9 {
		t.Fatalf("aws ebs list-changed-blocks: %+v", changed)
	}
	if s := d.describeSnapshots(t, "--snapshot-ids", started.SnapshotId); len(s) != 1 || s[0].State != "completed" {
		t.Fatalf("describe-snapshots: %+v", s)
	}
}
