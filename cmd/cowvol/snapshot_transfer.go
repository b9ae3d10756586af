package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"sync"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/cowvol/cowvol/control"
	"github.com/cowvol/cowvol/cow"
)

// `cowvol snapshot diff|export|import`: snapshots to and from raw images
// and their differences, built on the EBS direct API calls.

const (
	directBlock = cow.DirectBlockSize
	// transferWorkers: blocks read or written at once.
	transferWorkers = 4
)

func snapshotCommand() *cli.Command {
	return &cli.Command{
		Name:        "snapshot",
		Usage:       "compare snapshots, export one to a raw image, import one from a raw image",
		Subcommands: []*cli.Command{snapshotDiffCommand(), snapshotExportCommand(), snapshotImportCommand()},
	}
}

type byteRange struct {
	Offset int64 `json:"Offset"`
	Length int64 `json:"Length"`
}

func snapshotDiffCommand() *cli.Command {
	return &cli.Command{
		Name:      "diff",
		Usage:     "print the byte ranges that differ between two snapshots of one lineage (512 KiB grain, adjacent blocks merged)",
		UsageText: "cowvol snapshot diff SNAP1 SNAP2",
		Action: func(c *cli.Context) error {
			if c.NArg() != 2 {
				return usageErrorf("snapshot diff: give two snapshot IDs")
			}
			cl := client(c)
			defer cl.Close()
			var ranges []byteRange
			in := control.ListBlocksInput{First: c.Args().Get(0), Second: c.Args().Get(1)}
			err := eachBlock(c.Context, cl, in, func(_ control.BlockPage, b control.ChangedBlock) error {
				off := b.BlockIndex * directBlock
				if n := len(ranges); n > 0 && ranges[n-1].Offset+ranges[n-1].Length == off {
					ranges[n-1].Length += directBlock
				} else {
					ranges = append(ranges, byteRange{Offset: off, Length: directBlock})
				}
				return nil
			})
			if err != nil {
				return err
			}
			return printResult(c, struct {
				ChangedRanges []byteRange `json:"ChangedRanges"`
			}{append([]byteRange{}, ranges...)})
		},
	}
}

// blockRef is a block to copy and the token to read it with ("" for a
// block to write as zeros).
type blockRef struct {
	idx   int64
	token string
}

func snapshotExportCommand() *cli.Command {
	return &cli.Command{
		Name:  "export",
		Usage: "write a snapshot to a raw image file or device (holes where it has no data)",
		UsageText: "cowvol snapshot export [--base SNAP0] SNAP FILE\n" +
			"   --base: FILE holds SNAP0 already; only the blocks that differ are written",
		Flags: []cli.Flag{&cli.StringFlag{Name: "base", Usage: "a snapshot of the same lineage that FILE holds already"}},
		Action: func(c *cli.Context) error {
			if c.NArg() != 2 {
				return usageErrorf("snapshot export: give a snapshot ID and a file")
			}
			snap, path := c.Args().Get(0), c.Args().Get(1)
			cl := client(c)
			defer cl.Close()
			var refs []blockRef
			var size int64
			in := control.ListBlocksInput{First: c.String("base"), Second: snap}
			err := eachBlock(c.Context, cl, in, func(p control.BlockPage, b control.ChangedBlock) error {
				size = p.VolumeSize << 30
				refs = append(refs, blockRef{b.BlockIndex, b.SecondBlockToken})
				return nil
			})
			if err != nil {
				return err
			}
			if size == 0 {
				page, err := cl.ListBlocks(c.Context, control.ListBlocksInput{Second: snap, MaxResults: 100})
				if err != nil {
					return opError("ListSnapshotBlocks", err)
				}
				size = page.VolumeSize << 30
			}
			f, err := openExportFile(path, size, c.String("base") == "")
			if err != nil {
				return fmt.Errorf("snapshot export: %w", err)
			}
			prog := newTransferProgress(c.App.ErrWriter, "export "+snap, len(refs))
			err = runBlocks(c.Context, refs, prog, func(ctx context.Context, r blockRef) error {
				return exportBlock(ctx, cl, f, snap, r)
			})
			prog.done()
			if cerr := f.Close(); err == nil && cerr != nil {
				err = fmt.Errorf("snapshot export: %w", cerr)
			}
			return err
		},
	}
}

// openExportFile opens path for an export: a regular file is created (or
// truncated, when fresh) and sized to size; a device is taken as it is.
func openExportFile(path string, size int64, fresh bool) (*os.File, error) {
	flags := os.O_WRONLY | os.O_CREATE
	if fresh {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		if err := f.Truncate(size); err != nil {
			f.Close()
			return nil, err
		}
	}
	return f, nil
}

// exportBlock writes block r of snap at its place in f: all-zero data as
// a hole in a regular file.
func exportBlock(ctx context.Context, cl *control.Client, f *os.File, snap string, r blockRef) error {
	off := r.idx * directBlock
	data := make([]byte, directBlock)
	if r.token != "" {
		var err error
		if data, err = cl.GetSnapshotBlock(ctx, snap, r.idx, r.token); err != nil {
			return opError("GetSnapshotBlock", err)
		}
	}
	if allZero(data) {
		if err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, directBlock); err == nil {
			return nil
		}
	}
	if _, err := f.WriteAt(data, off); err != nil {
		return fmt.Errorf("snapshot export: %w", err)
	}
	return nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// runBlocks runs fn over refs with transferWorkers workers, stopping at
// the first error.
func runBlocks(ctx context.Context, refs []blockRef, prog *transferProgress, fn func(context.Context, blockRef) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	work := make(chan blockRef)
	var wg sync.WaitGroup
	for range transferWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range work {
				if err := fn(ctx, r); err != nil {
					cancel(err)
					continue
				}
				prog.add()
			}
		}()
	}
feed:
	for _, r := range refs {
		select {
		case work <- r:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

func snapshotImportCommand() *cli.Command {
	return &cli.Command{
		Name:  "import",
		Usage: "make a completed snapshot of a raw image file or device (holes and zero blocks are not sent); prints its SnapshotId",
		UsageText: "cowvol snapshot import [--parent SNAP] [--description D] [--encrypted] [--kms-key-id KEY] [--tag k=v ...] FILE\n" +
			"   --parent: FILE is a later state of SNAP's volume; the snapshot is written as an increment of it",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "parent", Usage: "the snapshot the image is an increment of"},
			&cli.StringFlag{Name: "description", Usage: "the snapshot's description"},
			&cli.BoolFlag{Name: "encrypted", Usage: "encrypt the snapshot"},
			&cli.StringFlag{Name: "kms-key-id", Usage: "the KMS key of an encrypted snapshot"},
			&cli.StringSliceFlag{Name: "tag", Usage: "tag `KEY=VALUE` (repeatable)"},
		},
		Action: importAction,
	}
}

func importAction(c *cli.Context) error {
	if c.NArg() != 1 {
		return usageErrorf("snapshot import: give the image file")
	}
	tags, err := tagFlag(c)
	if err != nil {
		return err
	}
	f, err := os.Open(c.Args().First())
	if err != nil {
		return fmt.Errorf("snapshot import: %w", err)
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil || size == 0 {
		return fmt.Errorf("snapshot import: %s: no size (%v)", c.Args().First(), err)
	}
	cl := client(c)
	defer cl.Close()
	// With a parent, a zero block where the parent has data must be sent.
	parentHas := map[int64]bool{}
	if p := c.String("parent"); p != "" {
		err := eachBlock(c.Context, cl, control.ListBlocksInput{Second: p}, func(_ control.BlockPage, b control.ChangedBlock) error {
			parentHas[b.BlockIndex] = true
			return nil
		})
		if err != nil {
			return err
		}
	}
	id, err := cl.StartSnapshot(c.Context, control.StartSnapshotInput{
		VolumeSize: (size + 1<<30 - 1) >> 30, ParentSnapshotID: c.String("parent"), Description: c.String("description"),
		Tags: tags, Encrypted: c.Bool("encrypted"), KmsKeyArn: c.String("kms-key-id"),
	})
	if err != nil {
		return opError("StartSnapshot", err)
	}
	refs, err := importBlocks(f, size, parentHas)
	if err != nil {
		return fmt.Errorf("snapshot import: %w", err)
	}
	var mu sync.Mutex
	sums := map[int64][sha256.Size]byte{}
	prog := newTransferProgress(c.App.ErrWriter, "import "+id, len(refs))
	err = runBlocks(c.Context, refs, prog, func(ctx context.Context, r blockRef) error {
		data := make([]byte, directBlock)
		if _, err := f.ReadAt(data, r.idx*directBlock); err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("snapshot import: %w", err)
		}
		sum, err := cl.PutSnapshotBlock(ctx, id, r.idx, data)
		if err != nil {
			return opError("PutSnapshotBlock", err)
		}
		mu.Lock()
		sums[r.idx] = sum
		mu.Unlock()
		return nil
	})
	prog.done()
	if err != nil {
		return err
	}
	ordered := make([][sha256.Size]byte, 0, len(sums))
	for _, idx := range slices.Sorted(maps.Keys(sums)) {
		ordered = append(ordered, sums[idx])
	}
	if _, err := cl.CompleteSnapshot(c.Context, id, ordered); err != nil {
		return opError("CompleteSnapshot", err)
	}
	return printResult(c, struct {
		SnapshotID string `json:"SnapshotId"`
	}{id})
}

// importBlocks lists the blocks of f to send: those with data (found past
// the file's holes with SEEK_DATA, then read: zero blocks are skipped), and
// every block the parent has data in.
func importBlocks(f *os.File, size int64, parentHas map[int64]bool) ([]blockRef, error) {
	send := map[int64]bool{}
	for idx := range parentHas {
		if idx*directBlock < size {
			send[idx] = true
		}
	}
	buf := make([]byte, directBlock)
	for off := int64(0); off < size; off += directBlock {
		data, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // holes to the end
		}
		if err == nil && data >= off+directBlock {
			off = data/directBlock*directBlock - directBlock
			continue
		}
		n, err := f.ReadAt(buf, off)
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		if !allZero(buf[:n]) {
			send[off/directBlock] = true
		}
	}
	refs := make([]blockRef, 0, len(send))
	for _, idx := range slices.Sorted(maps.Keys(send)) {
		refs = append(refs, blockRef{idx: idx})
	}
	return refs, nil
}
