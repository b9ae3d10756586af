package control

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/cowvol/cowvol/cow"
)

// maxEBSVolumeGiB is the largest VolumeSize StartSnapshot takes: cowvol's
// largest volume.
const maxEBSVolumeGiB = cow.MaxVolumeSize >> 30

type ebsTag struct {
	Key   string `json:"Key"`
	Value string `json:"Value"`
}

type startSnapshotRequest struct {
	VolumeSize       *int64   `json:"VolumeSize"`
	ParentSnapshotID string   `json:"ParentSnapshotId"`
	Tags             []ebsTag `json:"Tags"`
	Description      string   `json:"Description"`
	ClientToken      string   `json:"ClientToken"`
	Encrypted        bool     `json:"Encrypted"`
	KmsKeyArn        string   `json:"KmsKeyArn"`
	Timeout          *int     `json:"Timeout"`
}

type startSnapshotResponse struct {
	Description      string   `json:"Description,omitempty"`
	SnapshotID       string   `json:"SnapshotId"`
	OwnerID          string   `json:"OwnerId"`
	Status           string   `json:"Status"`
	StartTime        float64  `json:"StartTime"`
	VolumeSize       int64    `json:"VolumeSize"`
	BlockSize        int      `json:"BlockSize"`
	Tags             []ebsTag `json:"Tags,omitempty"`
	ParentSnapshotID string   `json:"ParentSnapshotId,omitempty"`
	KmsKeyArn        string   `json:"KmsKeyArn,omitempty"`
	SseType          string   `json:"SseType"`
}

func (s *Server) ebsStartSnapshot(q *ebsRequest) error {
	var in startSnapshotRequest
	dec := json.NewDecoder(bytes.NewReader(q.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return invalid(reasonParameter, "The request body is not a StartSnapshot request: %s.", clip(err.Error()))
	}
	if in.VolumeSize == nil || *in.VolumeSize < 1 || *in.VolumeSize > maxEBSVolumeGiB {
		return invalid(reasonVolumeSize, "VolumeSize must be between 1 and %d GiB.", maxEBSVolumeGiB)
	}
	p := cow.StartSnapshotParams{
		VolumeSize: *in.VolumeSize << 30, ParentSnapshotID: in.ParentSnapshotID, Description: in.Description,
		ClientToken: in.ClientToken, Encrypted: in.Encrypted, KMSKeyID: in.KmsKeyArn,
	}
	if in.Timeout != nil {
		p.Timeout = time.Duration(*in.Timeout) * time.Minute
		if p.Timeout < cow.MinDirectTimeout || p.Timeout > cow.MaxDirectTimeout {
			return invalid(reasonParameter, "Timeout must be between %d and %d minutes.",
				int(cow.MinDirectTimeout/time.Minute), int(cow.MaxDirectTimeout/time.Minute))
		}
	}
	for _, t := range in.Tags {
		p.Tags = append(p.Tags, cow.Tag{Key: t.Key, Value: t.Value})
	}
	if err := cow.ValidateTags(p.Tags); err != nil {
		return invalid(reasonTag, "%s", sentence(err.Error()))
	}
	info, err := q.be.StartSnapshot(q.r.Context(), p)
	if err != nil {
		return ebsBackendErr(err, true)
	}
	out := startSnapshotResponse{
		Description: info.Description, SnapshotID: info.ID, OwnerID: s.account, Status: string(info.State),
		StartTime: epochSeconds(info.StartTime), VolumeSize: gib(info.VolumeSize), BlockSize: cow.DirectBlockSize,
		ParentSnapshotID: q.be.ParentOf(info.ID), SseType: "none",
	}
	if info.Encrypted {
		out.KmsKeyArn, out.SseType = info.KMSKeyARN, "sse-kms"
	}
	for _, t := range info.Tags {
		out.Tags = append(out.Tags, ebsTag(t))
	}
	writeEBSJSON(q.w, q.reqID, http.StatusCreated, out)
	return nil
}

// checksumHeaders reads a request's x-amz-Checksum and
// x-amz-Checksum-Algorithm (SHA256, the only one) into the digest.
func checksumHeaders(r *http.Request, required bool) (sum []byte, given bool, e *ebsError) {
	c, alg := r.Header.Get("x-amz-Checksum"), r.Header.Get("x-amz-Checksum-Algorithm")
	if c == "" && !required {
		return nil, false, nil
	}
	if c == "" || alg == "" {
		return nil, false, invalid(reasonParameter, "The request needs x-amz-Checksum and x-amz-Checksum-Algorithm.")
	}
	if alg != "SHA256" {
		return nil, false, invalid(reasonParameter, "The checksum algorithm %q is not supported: use SHA256.", clip(alg))
	}
	b, err := base64.StdEncoding.DecodeString(c)
	if err != nil || len(b) != sha256.Size {
		return nil, false, invalid(reasonParameter, "The checksum is not a base64 SHA-256.")
	}
	return b, true, nil
}

func (s *Server) ebsPutSnapshotBlock(q *ebsRequest) error {
	id := q.parts[0]
	idx, e := blockIndex(q.parts[2])
	if e != nil {
		return e
	}
	if ce := q.r.Header.Get("Content-Encoding"); ce != "" && ce != "identity" {
		return invalid(reasonEncoding, "The content encoding %q is not supported.", clip(ce))
	}
	n, err := strconv.Atoi(q.r.Header.Get("x-amz-Data-Length"))
	if err != nil || n != cow.DirectBlockSize {
		return invalid(reasonParameter, "x-amz-Data-Length must be %d: blocks are 512 KiB.", cow.DirectBlockSize)
	}
	if len(q.body) != n {
		return invalid(reasonParameter, "The block has %d bytes; x-amz-Data-Length says %d.", len(q.body), n)
	}
	if p := q.r.Header.Get("x-amz-Progress"); p != "" {
		if v, err := strconv.Atoi(p); err != nil || v < 0 || v > 100 {
			return invalid(reasonParameter, "x-amz-Progress must be between 0 and 100.")
		}
	}
	want, _, e := checksumHeaders(q.r, true)
	if e != nil {
		return e
	}
	sum := sha256.Sum256(q.body)
	if subtle.ConstantTimeCompare(sum[:], want) != 1 {
		return invalid(reasonParameter, "The checksum of the block data does not match x-amz-Checksum.")
	}
	if err := q.be.PutSnapshotBlock(q.r.Context(), id, idx, q.body, sum); err != nil {
		return ebsBackendErr(err, true)
	}
	h := q.w.Header()
	h.Set("x-amz-Checksum", base64.StdEncoding.EncodeToString(sum[:]))
	h.Set("x-amz-Checksum-Algorithm", "SHA256")
	writeEBSJSON(q.w, q.reqID, http.StatusCreated, struct{}{})
	return nil
}

type completeSnapshotResponse struct {
	Status string `json:"Status"`
}

func (s *Server) ebsCompleteSnapshot(q *ebsRequest) error {
	id := q.parts[1]
	count, err := strconv.Atoi(q.r.Header.Get("x-amz-ChangedBlocksCount"))
	if err != nil || count < 0 {
		return invalid(reasonParameter, "x-amz-ChangedBlocksCount must be the number of blocks written (0 or more).")
	}
	want, given, e := checksumHeaders(q.r, false)
	if e != nil {
		return e
	}
	if m := q.r.Header.Get("x-amz-Checksum-Aggregation-Method"); m != "" && m != "LINEAR" {
		return invalid(reasonParameter, "The checksum aggregation method %q is not supported: use LINEAR.", clip(m))
	}
	check := func(blocks []cow.WrittenBlock) error {
		if len(blocks) != count {
			return invalid(reasonParameter, "ChangedBlocksCount is %d, but %d blocks were written to %s.", count, len(blocks), id)
		}
		if given && !linearChecksumMatches(blocks, want) {
			return invalid(reasonParameter, "The aggregate checksum does not match the blocks written to %s.", id)
		}
		return nil
	}
	info, err := q.be.CompleteSnapshot(q.r.Context(), id, check)
	if err != nil {
		if ee, ok := err.(*ebsError); ok {
			return ee
		}
		return ebsBackendErr(err, true)
	}
	writeEBSJSON(q.w, q.reqID, http.StatusAccepted, completeSnapshotResponse{Status: string(info.State)})
	return nil
}

// linearChecksumMatches checks EBS's LINEAR aggregate: the SHA-256 of the
// blocks' checksums in index order, concatenated (as bytes, or as their
// base64 text).
func linearChecksumMatches(blocks []cow.WrittenBlock, want []byte) bool {
	raw, text := sha256.New(), sha256.New()
	for _, b := range blocks {
		raw.Write(b.Sum[:])
		text.Write([]byte(base64.StdEncoding.EncodeToString(b.Sum[:])))
	}
	return subtle.ConstantTimeCompare(raw.Sum(nil), want) == 1 || subtle.ConstantTimeCompare(text.Sum(nil), want) == 1
}
