package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cowvol/cowvol/control"
)

// The EBS direct API verbs, as `aws ebs` spells them: list-snapshot-blocks,
// list-changed-blocks, get-snapshot-block.

type blockJSON struct {
	BlockIndex       int64  `json:"BlockIndex"`
	BlockToken       string `json:"BlockToken,omitempty"`
	FirstBlockToken  string `json:"FirstBlockToken,omitempty"`
	SecondBlockToken string `json:"SecondBlockToken,omitempty"`
}

type blockListJSON struct {
	Blocks        []blockJSON `json:"Blocks,omitempty"`
	ChangedBlocks []blockJSON `json:"ChangedBlocks,omitempty"`
	ExpiryTime    string      `json:"ExpiryTime"`
	VolumeSize    int64       `json:"VolumeSize"`
	BlockSize     int         `json:"BlockSize"`
	NextToken     string      `json:"NextToken,omitempty"`
}

func pagingFlags() []cli.Flag {
	return []cli.Flag{
		&cli.Int64Flag{Name: "starting-block-index", Usage: "list from this block index on"},
		&cli.IntFlag{Name: "max-results", Usage: "one page of at most `N` blocks (100 to 10000); without it or --starting-token, every page"},
		&cli.StringFlag{Name: "starting-token", Usage: "the NextToken of an earlier page"},
	}
}

func listSnapshotBlocksCommand() *cli.Command {
	return &cli.Command{
		Name:      "list-snapshot-blocks",
		Usage:     "list the 512 KiB blocks of a completed snapshot that hold data, with their tokens (as aws ebs list-snapshot-blocks)",
		UsageText: "cowvol list-snapshot-blocks --snapshot-id ID [--starting-block-index N] [--max-results N] [--starting-token T]",
		Flags:     append([]cli.Flag{&cli.StringFlag{Name: "snapshot-id", Usage: "the snapshot"}}, pagingFlags()...),
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			if c.String("snapshot-id") == "" {
				return usageErrorf("list-snapshot-blocks: --snapshot-id is required")
			}
			return listBlocksVerb(c, "ListSnapshotBlocks", control.ListBlocksInput{Second: c.String("snapshot-id")})
		},
	}
}

func listChangedBlocksCommand() *cli.Command {
	return &cli.Command{
		Name:  "list-changed-blocks",
		Usage: "list the 512 KiB blocks that differ between two snapshots of one lineage (as aws ebs list-changed-blocks)",
		UsageText: "cowvol list-changed-blocks --first-snapshot-id A --second-snapshot-id B [--starting-block-index N] [--max-results N] [--starting-token T]\n" +
			"   without --first-snapshot-id, every block of the second snapshot",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "first-snapshot-id", Usage: "the snapshot to compare with"},
			&cli.StringFlag{Name: "second-snapshot-id", Usage: "the snapshot compared"},
		}, pagingFlags()...),
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			if c.String("second-snapshot-id") == "" {
				return usageErrorf("list-changed-blocks: --second-snapshot-id is required")
			}
			return listBlocksVerb(c, "ListChangedBlocks", control.ListBlocksInput{First: c.String("first-snapshot-id"), Second: c.String("second-snapshot-id")})
		},
	}
}

// listBlocksVerb lists one page, or every page, and prints them as one.
func listBlocksVerb(c *cli.Context, op string, in control.ListBlocksInput) error {
	in.StartingIndex, in.MaxResults, in.NextToken = c.Int64("starting-block-index"), c.Int("max-results"), c.String("starting-token")
	onePage := in.MaxResults > 0 || in.NextToken != ""
	cl := client(c)
	defer cl.Close()
	out := blockListJSON{}
	for {
		page, err := cl.ListBlocks(c.Context, in)
		if err != nil {
			return opError(op, err)
		}
		out.ExpiryTime, out.VolumeSize, out.BlockSize, out.NextToken = page.ExpiryTime.Format(time.RFC3339), page.VolumeSize, page.BlockSize, page.NextToken
		for _, b := range page.Blocks {
			if in.First == "" && op == "ListSnapshotBlocks" {
				out.Blocks = append(out.Blocks, blockJSON{BlockIndex: b.BlockIndex, BlockToken: b.SecondBlockToken})
			} else {
				out.ChangedBlocks = append(out.ChangedBlocks, blockJSON{BlockIndex: b.BlockIndex, FirstBlockToken: b.FirstBlockToken, SecondBlockToken: b.SecondBlockToken})
			}
		}
		if onePage || page.NextToken == "" {
			break
		}
		in.NextToken = page.NextToken
	}
	return printResult(c, out)
}

func getSnapshotBlockCommand() *cli.Command {
	return &cli.Command{
		Name:      "get-snapshot-block",
		Usage:     "write one 512 KiB block of a snapshot to a file (as aws ebs get-snapshot-block)",
		UsageText: "cowvol get-snapshot-block --snapshot-id ID --block-index N --block-token T OUTFILE",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "snapshot-id", Usage: "the snapshot"},
			&cli.Int64Flag{Name: "block-index", Value: -1, Usage: "the block's index"},
			&cli.StringFlag{Name: "block-token", Usage: "the block's token, from list-snapshot-blocks or list-changed-blocks"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageErrorf("get-snapshot-block: give the output file (one argument)")
			}
			id, idx, tok := c.String("snapshot-id"), c.Int64("block-index"), c.String("block-token")
			if id == "" || idx < 0 || tok == "" {
				return usageErrorf("get-snapshot-block: --snapshot-id, --block-index and --block-token are required")
			}
			cl := client(c)
			defer cl.Close()
			data, err := cl.GetSnapshotBlock(c.Context, id, idx, tok)
			if err != nil {
				return opError("GetSnapshotBlock", err)
			}
			if err := os.WriteFile(c.Args().First(), data, 0o644); err != nil {
				return fmt.Errorf("get-snapshot-block: %w", err)
			}
			sum := sha256.Sum256(data)
			return printResult(c, struct {
				DataLength        int    `json:"DataLength"`
				Checksum          string `json:"Checksum"`
				ChecksumAlgorithm string `json:"ChecksumAlgorithm"`
			}{len(data), base64.StdEncoding.EncodeToString(sum[:]), "SHA256"})
		},
	}
}

// eachBlock calls fn with every block of a listing, page after page.
func eachBlock(ctx context.Context, cl *control.Client, in control.ListBlocksInput, fn func(page control.BlockPage, b control.ChangedBlock) error) error {
	for {
		page, err := cl.ListBlocks(ctx, in)
		if err != nil {
			if in.First == "" {
				return opError("ListSnapshotBlocks", err)
			}
			return opError("ListChangedBlocks", err)
		}
		for _, b := range page.Blocks {
			if err := fn(page, b); err != nil {
				return err
			}
		}
		if page.NextToken == "" {
			return nil
		}
		in.NextToken = page.NextToken
	}
}
