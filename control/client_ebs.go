package control

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/cowvol/cowvol/cow"
)

// EBS direct API calls of the Client. Errors come back as *APIError with
// the EBS error type as Code (the reason, if any, in the message).

// ebsCall sends an EBS request and returns the answer's body and headers
// when its status is ok.
func (c *Client) ebsCall(ctx context.Context, op, method, path string, q url.Values, h http.Header, body []byte, ok int) ([]byte, http.Header, error) {
	u := "http://cowvol" + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", op, err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, nil, transportError(ctx, op, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return nil, nil, transportError(ctx, op, fmt.Errorf("read answer: %w", err))
	}
	if resp.StatusCode != ok {
		var ee ebsError
		typ := resp.Header.Get("X-Amzn-ErrorType")
		if err := json.Unmarshal(b, &ee); err != nil || typ == "" {
			return nil, nil, fmt.Errorf("%s: unexpected answer (HTTP %d): %.200q", op, resp.StatusCode, b)
		}
		msg := ee.Message
		if ee.Reason != "" {
			msg += " (" + ee.Reason + ")"
		}
		return nil, nil, &APIError{Code: typ, Message: msg, RequestID: resp.Header.Get("X-Amzn-RequestId"), StatusCode: resp.StatusCode}
	}
	return b, resp.Header, nil
}

// BlockPage is a page of ListSnapshotBlocks or ListChangedBlocks.
type BlockPage struct {
	// Blocks lists the blocks; for ListSnapshotBlocks only
	// SecondBlockToken is set (the snapshot's token).
	Blocks     []ebsChangedBlock
	NextToken  string
	VolumeSize int64 // GiB
	BlockSize  int
	ExpiryTime time.Time
}

// ListBlocksInput selects blocks: of Second (ListSnapshotBlocks when First
// is empty), or those that differ between First and Second.
type ListBlocksInput struct {
	First, Second string
	StartingIndex int64
	NextToken     string
	MaxResults    int
}

// ListBlocks calls ListSnapshotBlocks (no First) or ListChangedBlocks.
func (c *Client) ListBlocks(ctx context.Context, in ListBlocksInput) (BlockPage, error) {
	q := url.Values{}
	if in.StartingIndex > 0 {
		q.Set("startingBlockIndex", strconv.FormatInt(in.StartingIndex, 10))
	}
	if in.NextToken != "" {
		q.Set("pageToken", in.NextToken)
	}
	if in.MaxResults > 0 {
		q.Set("maxResults", strconv.Itoa(in.MaxResults))
	}
	if in.First == "" {
		b, _, err := c.ebsCall(ctx, "ListSnapshotBlocks", http.MethodGet, "/snapshots/"+url.PathEscape(in.Second)+"/blocks", q, nil, nil, http.StatusOK)
		if err != nil {
			return BlockPage{}, err
		}
		var out listSnapshotBlocksResponse
		if err := json.Unmarshal(b, &out); err != nil {
			return BlockPage{}, fmt.Errorf("ListSnapshotBlocks: decode answer: %w", err)
		}
		p := BlockPage{NextToken: out.NextToken, VolumeSize: out.VolumeSize, BlockSize: out.BlockSize, ExpiryTime: fromEpoch(out.ExpiryTime)}
		for _, bl := range out.Blocks {
			p.Blocks = append(p.Blocks, ebsChangedBlock{BlockIndex: bl.BlockIndex, SecondBlockToken: bl.BlockToken})
		}
		return p, nil
	}
	q.Set("firstSnapshotId", in.First)
	b, _, err := c.ebsCall(ctx, "ListChangedBlocks", http.MethodGet, "/snapshots/"+url.PathEscape(in.Second)+"/changedblocks", q, nil, nil, http.StatusOK)
	if err != nil {
		return BlockPage{}, err
	}
	var out listChangedBlocksResponse
	if err := json.Unmarshal(b, &out); err != nil {
		return BlockPage{}, fmt.Errorf("ListChangedBlocks: decode answer: %w", err)
	}
	return BlockPage{Blocks: out.ChangedBlocks, NextToken: out.NextToken, VolumeSize: out.VolumeSize, BlockSize: out.BlockSize, ExpiryTime: fromEpoch(out.ExpiryTime)}, nil
}

// ChangedBlock is a block of a BlockPage.
type ChangedBlock = ebsChangedBlock

func fromEpoch(s float64) time.Time { return time.UnixMilli(int64(s * 1000)).UTC() }

// GetSnapshotBlock reads block idx of snapshot id and checks it against
// its checksum.
func (c *Client) GetSnapshotBlock(ctx context.Context, id string, idx int64, token string) ([]byte, error) {
	path := "/snapshots/" + url.PathEscape(id) + "/blocks/" + strconv.FormatInt(idx, 10)
	b, h, err := c.ebsCall(ctx, "GetSnapshotBlock", http.MethodGet, path, url.Values{"blockToken": {token}}, nil, nil, http.StatusOK)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(b)
	if len(b) != cow.DirectBlockSize || h.Get("x-amz-Checksum") != base64.StdEncoding.EncodeToString(sum[:]) {
		return nil, fmt.Errorf("GetSnapshotBlock: block %d of %s came damaged (%d bytes, checksum %q)", idx, id, len(b), h.Get("x-amz-Checksum"))
	}
	return b, nil
}

// StartSnapshotInput are StartSnapshot's parameters.
type StartSnapshotInput struct {
	VolumeSize       int64 // GiB
	ParentSnapshotID string
	Description      string
	Tags             []Tag
	ClientToken      string
	Encrypted        bool
	KmsKeyArn        string
	Timeout          int // minutes; 0: the default
}

// StartSnapshot starts a snapshot written block by block; it returns its
// ID.
func (c *Client) StartSnapshot(ctx context.Context, in StartSnapshotInput) (string, error) {
	req := startSnapshotRequest{VolumeSize: &in.VolumeSize, ParentSnapshotID: in.ParentSnapshotID, Description: in.Description,
		ClientToken: in.ClientToken, Encrypted: in.Encrypted, KmsKeyArn: in.KmsKeyArn}
	if in.Timeout > 0 {
		req.Timeout = &in.Timeout
	}
	for _, t := range in.Tags {
		req.Tags = append(req.Tags, ebsTag(t))
	}
	body, err := json.Marshal(req)
	if err != nil {
		return "", fmt.Errorf("StartSnapshot: %w", err)
	}
	b, _, err := c.ebsCall(ctx, "StartSnapshot", http.MethodPost, "/snapshots", nil, http.Header{"Content-Type": {ebsContentType}}, body, http.StatusCreated)
	if err != nil {
		return "", err
	}
	var out startSnapshotResponse
	if err := json.Unmarshal(b, &out); err != nil {
		return "", fmt.Errorf("StartSnapshot: decode answer: %w", err)
	}
	return out.SnapshotID, nil
}

// PutSnapshotBlock writes block idx (cow.DirectBlockSize bytes) of a
// started snapshot and returns its SHA-256, for CompleteSnapshot's
// aggregate.
func (c *Client) PutSnapshotBlock(ctx context.Context, id string, idx int64, data []byte) ([sha256.Size]byte, error) {
	sum := sha256.Sum256(data)
	h := http.Header{
		"Content-Type":             {"application/octet-stream"},
		"X-Amz-Data-Length":        {strconv.Itoa(len(data))},
		"X-Amz-Checksum":           {base64.StdEncoding.EncodeToString(sum[:])},
		"X-Amz-Checksum-Algorithm": {"SHA256"},
	}
	path := "/snapshots/" + url.PathEscape(id) + "/blocks/" + strconv.FormatInt(idx, 10)
	_, _, err := c.ebsCall(ctx, "PutSnapshotBlock", http.MethodPut, path, nil, h, data, http.StatusCreated)
	return sum, err
}

// CompleteSnapshot completes a started snapshot of count blocks written,
// whose sums (in block order) make the LINEAR aggregate checksum sent.
func (c *Client) CompleteSnapshot(ctx context.Context, id string, sums [][sha256.Size]byte) (string, error) {
	agg := sha256.New()
	for _, s := range sums {
		agg.Write(s[:])
	}
	h := http.Header{
		"X-Amz-Changedblockscount":          {strconv.Itoa(len(sums))},
		"X-Amz-Checksum":                    {base64.StdEncoding.EncodeToString(agg.Sum(nil))},
		"X-Amz-Checksum-Algorithm":          {"SHA256"},
		"X-Amz-Checksum-Aggregation-Method": {"LINEAR"},
	}
	b, _, err := c.ebsCall(ctx, "CompleteSnapshot", http.MethodPost, "/snapshots/completion/"+url.PathEscape(id), nil, h, nil, http.StatusAccepted)
	if err != nil {
		return "", err
	}
	var out completeSnapshotResponse
	if err := json.Unmarshal(b, &out); err != nil {
		return "", fmt.Errorf("CompleteSnapshot: decode answer: %w", err)
	}
	return out.Status, nil
}
