package control

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"

	"github.com/cowvol/cowvol/cow"
	"github.com/cowvol/cowvol/kms"
)

// Paging of the List operations, as EBS: MaxResults between 100 and
// 10000, 10000 by default.
const (
	minEBSResults     = 100
	maxEBSResults     = 10000
	defaultEBSResults = 10000
)

type ebsBlock struct {
	BlockIndex int64  `json:"BlockIndex"`
	BlockToken string `json:"BlockToken"`
}

type listSnapshotBlocksResponse struct {
	Blocks     []ebsBlock `json:"Blocks"`
	ExpiryTime float64    `json:"ExpiryTime"`
	VolumeSize int64      `json:"VolumeSize"`
	BlockSize  int        `json:"BlockSize"`
	NextToken  string     `json:"NextToken,omitempty"`
}

type ebsChangedBlock struct {
	BlockIndex       int64  `json:"BlockIndex"`
	FirstBlockToken  string `json:"FirstBlockToken,omitempty"`
	SecondBlockToken string `json:"SecondBlockToken,omitempty"`
}

type listChangedBlocksResponse struct {
	ChangedBlocks []ebsChangedBlock `json:"ChangedBlocks"`
	ExpiryTime    float64           `json:"ExpiryTime"`
	VolumeSize    int64             `json:"VolumeSize"`
	BlockSize     int               `json:"BlockSize"`
	NextToken     string            `json:"NextToken,omitempty"`
}

// paging reads MaxResults, StartingBlockIndex and NextToken (which, when
// given, wins over StartingBlockIndex, as in EBS).
func (s *Server) paging(q *ebsRequest, kind string, snaps []string) (start int64, limit int, e *ebsError) {
	v := q.r.URL.Query()
	limit = defaultEBSResults
	if m := v.Get("maxResults"); m != "" {
		n, err := strconv.Atoi(m)
		if err != nil || n < minEBSResults || n > maxEBSResults {
			return 0, 0, invalid(reasonParameter, "MaxResults must be between %d and %d.", minEBSResults, maxEBSResults)
		}
		limit = n
	}
	if sb := v.Get("startingBlockIndex"); sb != "" {
		n, err := strconv.ParseInt(sb, 10, 64)
		if err != nil || n < 0 {
			return 0, 0, invalid(reasonParameter, "StartingBlockIndex must be a block index (0 or more).")
		}
		start = n
	}
	if tok := v.Get("pageToken"); tok != "" {
		n, err := s.ebs.decodeToken(tok, kind, snaps)
		switch {
		case errors.Is(err, errTokenExpired):
			return 0, 0, invalid(reasonPageToken, "The NextToken has expired.")
		case err != nil:
			return 0, 0, invalid(reasonPageToken, "The NextToken is not valid for this request.")
		}
		start = n
	}
	return start, limit, nil
}

func (s *Server) ebsListSnapshotBlocks(q *ebsRequest) error {
	id := q.parts[0]
	start, limit, e := s.paging(q, kindBlocks, []string{id})
	if e != nil {
		return e
	}
	blocks, next, info, err := q.be.ListSnapshotBlocks(q.r.Context(), id, start, limit)
	if err != nil {
		return ebsBackendErr(err, false)
	}
	out := listSnapshotBlocksResponse{Blocks: []ebsBlock{}, ExpiryTime: epochSeconds(s.ebs.expiry()),
		VolumeSize: gib(info.VolumeSize), BlockSize: cow.DirectBlockSize}
	for _, idx := range blocks {
		tok, _ := s.ebs.issue(kindBlock, []string{id}, idx)
		out.Blocks = append(out.Blocks, ebsBlock{BlockIndex: idx, BlockToken: tok})
	}
	if next >= 0 {
		out.NextToken, _ = s.ebs.issue(kindBlocks, []string{id}, next)
	}
	writeEBSJSON(q.w, q.reqID, http.StatusOK, out)
	return nil
}

func (s *Server) ebsListChangedBlocks(q *ebsRequest) error {
	second := q.parts[0]
	first := q.r.URL.Query().Get("firstSnapshotId")
	if first == "" {
		// Without a first snapshot, every block of the second differs
		// (from nothing), as in EBS.
		return s.listAllAsChanged(q, second)
	}
	snaps := []string{first, second}
	start, limit, e := s.paging(q, kindChanged, snaps)
	if e != nil {
		return e
	}
	changed, next, info, err := q.be.ListChangedBlocks(q.r.Context(), first, second, start, limit)
	if err != nil {
		return ebsBackendErr(err, false)
	}
	out := listChangedBlocksResponse{ChangedBlocks: []ebsChangedBlock{}, ExpiryTime: epochSeconds(s.ebs.expiry()),
		VolumeSize: gib(info.VolumeSize), BlockSize: cow.DirectBlockSize}
	for _, c := range changed {
		cb := ebsChangedBlock{BlockIndex: c.Index}
		if c.InFirst {
			cb.FirstBlockToken, _ = s.ebs.issue(kindBlock, []string{first}, c.Index)
		}
		if c.InSecond {
			cb.SecondBlockToken, _ = s.ebs.issue(kindBlock, []string{second}, c.Index)
		}
		out.ChangedBlocks = append(out.ChangedBlocks, cb)
	}
	if next >= 0 {
		out.NextToken, _ = s.ebs.issue(kindChanged, snaps, next)
	}
	writeEBSJSON(q.w, q.reqID, http.StatusOK, out)
	return nil
}

// listAllAsChanged answers ListChangedBlocks without a first snapshot.
func (s *Server) listAllAsChanged(q *ebsRequest, id string) error {
	snaps := []string{"", id}
	start, limit, e := s.paging(q, kindChanged, snaps)
	if e != nil {
		return e
	}
	blocks, next, info, err := q.be.ListSnapshotBlocks(q.r.Context(), id, start, limit)
	if err != nil {
		return ebsBackendErr(err, false)
	}
	out := listChangedBlocksResponse{ChangedBlocks: []ebsChangedBlock{}, ExpiryTime: epochSeconds(s.ebs.expiry()),
		VolumeSize: gib(info.VolumeSize), BlockSize: cow.DirectBlockSize}
	for _, idx := range blocks {
		tok, _ := s.ebs.issue(kindBlock, []string{id}, idx)
		out.ChangedBlocks = append(out.ChangedBlocks, ebsChangedBlock{BlockIndex: idx, SecondBlockToken: tok})
	}
	if next >= 0 {
		out.NextToken, _ = s.ebs.issue(kindChanged, snaps, next)
	}
	writeEBSJSON(q.w, q.reqID, http.StatusOK, out)
	return nil
}

// blockIndex parses a block index of the path.
func blockIndex(s string) (int64, *ebsError) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, invalid(reasonBlock, "The block index %q is not a block index (0 or more).", clip(s))
	}
	return n, nil
}

func (s *Server) ebsGetSnapshotBlock(q *ebsRequest) error {
	id := q.parts[0]
	idx, e := blockIndex(q.parts[2])
	if e != nil {
		return e
	}
	tok := q.r.URL.Query().Get("blockToken")
	if tok == "" {
		return invalid(reasonBlockToken, "The BlockToken is required.")
	}
	// The snapshot and the index are checked first (an unknown
	// snapshot, a block past its end); nothing read is sent unless the
	// token is good.
	buf := make([]byte, cow.DirectBlockSize)
	info, err := q.be.ReadSnapshotBlock(q.r.Context(), id, idx, buf)
	if err != nil {
		return ebsBackendErr(err, false)
	}
	got, err := s.ebs.decodeToken(tok, kindBlock, []string{id})
	switch {
	case errors.Is(err, errTokenExpired):
		return invalid(reasonBlockToken, "The BlockToken has expired.")
	case err != nil || got != idx:
		return invalid(reasonBlockToken, "The BlockToken is not valid for block %d of %s.", idx, clip(id))
	}
	if info.Encrypted && q.access != AccessFull {
		return ebsErr(ebsAccessDenied, reasonDependency,
			"%s may not use KMS key %s to decrypt snapshot %s (a full-access caller may).", q.caller, info.KMSKeyARN, id)
	}
	sum := sha256.Sum256(buf)
	h := q.w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("X-Amzn-RequestId", q.reqID)
	h.Set("x-amz-Data-Length", strconv.Itoa(len(buf)))
	h.Set("x-amz-Checksum", base64.StdEncoding.EncodeToString(sum[:]))
	h.Set("x-amz-Checksum-Algorithm", "SHA256")
	h.Set("Content-Length", strconv.Itoa(len(buf)))
	q.w.WriteHeader(http.StatusOK)
	q.w.Write(buf)
	return nil
}

// ebsBackendErr translates an engine error into EBS's; write says whether
// the request writes (a KMS key problem is then the request's key, not a
// dependency's refusal).
func ebsBackendErr(err error, write bool) error {
	msg := sentence(err.Error())
	switch {
	case errors.Is(err, cow.ErrSnapshotNotFound):
		return ebsErr(ebsNotFound, reasonSnapNotFound, "%s", msg)
	case errors.Is(err, cow.ErrNotOwner):
		return ebsErr(ebsAccessDenied, reasonAccount, "%s", msg)
	case errors.Is(err, cow.ErrIncorrectState):
		return invalid(reasonSnapshotID, "%s", msg)
	case errors.Is(err, cow.ErrUnrelatedSnapshots):
		return invalid(reasonUnrelated, "%s", msg)
	case errors.Is(err, cow.ErrBlockIndex):
		return invalid(reasonBlock, "%s", msg)
	case errors.Is(err, cow.ErrConflictingBlock):
		return invalid(reasonConflict, "%s", msg)
	case errors.Is(err, cow.ErrInvalidSize):
		return invalid(reasonVolumeSize, "%s", msg)
	case errors.Is(err, cow.ErrIdempotentMismatch):
		return ebsErr(ebsConflict, "", "%s", msg)
	case errors.Is(err, cow.ErrInvalidBlockSize), errors.Is(err, cow.ErrInvalidParameter), errors.Is(err, cow.ErrParameterDependency):
		return invalid(reasonParameter, "%s", msg)
	case errors.Is(err, cow.ErrNoKeyManager), errors.Is(err, kms.ErrKeyNotFound), errors.Is(err, kms.ErrKeyDisabled),
		errors.Is(err, kms.ErrInvalidKeyID), errors.Is(err, kms.ErrInvalidCiphertext):
		if write {
			return invalid(reasonCustomerKey, "%s", msg)
		}
		return ebsErr(ebsAccessDenied, reasonDependency, "%s", msg)
	}
	return err
}
