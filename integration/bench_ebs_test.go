package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsebs "github.com/aws/aws-sdk-go-v2/service/ebs"
	ebstypes "github.com/aws/aws-sdk-go-v2/service/ebs/types"
)

// ebsBenchClients is how many clients call the EBS direct APIs at once.
const ebsBenchClients = 8

// ebsFigures measures the EBS direct APIs over the socket with 8 parallel
// clients: GetSnapshotBlock of a snapshot of 1 GiB written
// (incompressible), and PutSnapshotBlock of 1 GiB of distinct
// incompressible blocks into a new snapshot, CompleteSnapshot included.
func ebsFigures(b *testing.B, d *daemon, r *benchReport) {
	vol := d.createVolume(b, "2GiB")
	fill(b, d.volumePath(vol.VolumeId), 1)
	api := newEC2(d.Socket)
	id, _ := api.createSnapshot(b, vol.VolumeId)
	api.waitCompleted(b, id)
	c := ebsSocketClient(d)
	ctx := context.Background()
	var blocks []ebstypes.Block
	p := awsebs.NewListSnapshotBlocksPaginator(c, &awsebs.ListSnapshotBlocksInput{SnapshotId: aws.String(id)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			b.Fatal(err)
		}
		blocks = append(blocks, page.Blocks...)
	}
	start := time.Now()
	parallel(b, len(blocks), func(i int) error {
		out, err := c.GetSnapshotBlock(ctx, &awsebs.GetSnapshotBlockInput{SnapshotId: aws.String(id), BlockIndex: blocks[i].BlockIndex, BlockToken: blocks[i].BlockToken})
		if err != nil {
			return err
		}
		defer out.BlockData.Close()
		_, err = io.Copy(io.Discard, out.BlockData)
		return err
	})
	r.add("GetSnapshotBlock MiB/s (8 clients)", float64(len(blocks))/2/time.Since(start).Seconds())

	started, err := c.StartSnapshot(ctx, &awsebs.StartSnapshotInput{VolumeSize: aws.Int64(2)})
	if err != nil {
		b.Fatal(err)
	}
	dst := started.SnapshotId
	const n = 2048 // 1 GiB
	seed := make([]byte, ebsBlock)
	rand.Read(seed)
	var count atomic.Int32
	start = time.Now()
	parallel(b, n, func(i int) error {
		data := bytes.Clone(seed)
		binary.LittleEndian.PutUint64(data, uint64(i)) // distinct: no dedup
		sum := sha256.Sum256(data)
		_, err := c.PutSnapshotBlock(ctx, &awsebs.PutSnapshotBlockInput{
			SnapshotId: dst, BlockIndex: aws.Int32(int32(i)), BlockData: bytes.NewReader(data), DataLength: aws.Int32(ebsBlock),
			Checksum: aws.String(base64.StdEncoding.EncodeToString(sum[:])), ChecksumAlgorithm: ebstypes.ChecksumAlgorithmChecksumAlgorithmSha256,
		})
		count.Add(1)
		return err
	})
	if _, err := c.CompleteSnapshot(ctx, &awsebs.CompleteSnapshotInput{SnapshotId: dst, ChangedBlocksCount: aws.Int32(count.Load())}); err != nil {
		b.Fatal(err)
	}
	r.add("PutSnapshotBlock MiB/s (8 clients, CompleteSnapshot included)", n/2/time.Since(start).Seconds())
}

// parallel runs fn(0..n-1) on ebsBenchClients goroutines and fails b on
// the first error.
func parallel(b *testing.B, n int, fn func(i int) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, ebsBenchClients)
	for range ebsBenchClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				if err := fn(i); err != nil {
					errs <- fmt.Errorf("call %d: %w", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
}

// BenchmarkEBS runs the EBS direct API figures alone (BenchmarkCowvol
// runs them with the rest, for make bench).
func BenchmarkEBS(b *testing.B) {
	d := startDaemon(b)
	report := &benchReport{Machine: machine(), Figures: map[string]float64{}}
	ebsFigures(b, d, report)
	report.print(os.Stdout)
}
