package control

import (
	"context"
	"encoding/xml"
	"strconv"

	"github.com/cowvol/cowvol/cow"
)

// EC2's side of the Recycle Bin: ListSnapshotsInRecycleBin and
// RestoreSnapshotFromRecycleBin (query API). The rules that send deleted
// snapshots there are the rbin service's (rbin.go).

// RecycleBinBackend is what the Recycle Bin needs of the engine;
// *cow.Engine satisfies it. A Backend without it answers the Recycle Bin's
// calls with an internal error.
type RecycleBinBackend interface {
	CreateRecycleRule(ctx context.Context, r cow.RecycleRule) (cow.RecycleRule, error)
	RecycleRules(ctx context.Context) ([]cow.RecycleRule, error)
	GetRecycleRule(ctx context.Context, id string) (cow.RecycleRule, error)
	UpdateRecycleRule(ctx context.Context, u cow.RecycleRuleUpdate) (cow.RecycleRule, error)
	DeleteRecycleRule(ctx context.Context, id string) error
	LockRecycleRule(ctx context.Context, id string, unlockDelay int, unit string) (cow.RecycleRule, error)
	UnlockRecycleRule(ctx context.Context, id string) (cow.RecycleRule, error)
	RetagRecycleRule(ctx context.Context, id string, add []cow.RecycleRuleTag, remove []string) (cow.RecycleRule, error)
	RecycledSnapshots(ctx context.Context) ([]cow.RecycledSnapshot, error)
	RestoreRecycledSnapshot(ctx context.Context, id string) (cow.SnapshotInfo, error)
}

var _ RecycleBinBackend = (*cow.Engine)(nil)

// maxRecycleBinResults is EC2's largest MaxResults for
// ListSnapshotsInRecycleBin.
const maxRecycleBinResults = 1000

// RecycledSnapshotItem is one <item> of ListSnapshotsInRecycleBin.
type RecycledSnapshotItem struct {
	SnapshotID          string    `xml:"snapshotId"`
	RecycleBinEnterTime Timestamp `xml:"recycleBinEnterTime"`
	RecycleBinExitTime  Timestamp `xml:"recycleBinExitTime"`
	Description         string    `xml:"description"`
	VolumeID            string    `xml:"volumeId"`
}

// ListSnapshotsInRecycleBinResponse answers ListSnapshotsInRecycleBin.
type ListSnapshotsInRecycleBinResponse struct {
	XMLName xml.Name `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ ListSnapshotsInRecycleBinResponse"`
	ResponseMetadata
	Snapshots []RecycledSnapshotItem `xml:"snapshotSet>item"`
	NextToken string                 `xml:"nextToken,omitempty"`
}

// RestoreSnapshotFromRecycleBinResponse answers RestoreSnapshotFromRecycleBin.
type RestoreSnapshotFromRecycleBinResponse struct {
	XMLName xml.Name `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ RestoreSnapshotFromRecycleBinResponse"`
	ResponseMetadata
	SnapshotID  string    `xml:"snapshotId"`
	OutpostArn  string    `xml:"outpostArn,omitempty"`
	Description string    `xml:"description"`
	Encrypted   bool      `xml:"encrypted"`
	OwnerID     string    `xml:"ownerId"`
	Progress    string    `xml:"progress"`
	StartTime   Timestamp `xml:"startTime"`
	Status      string    `xml:"status"`
	VolumeID    string    `xml:"volumeId"`
	VolumeSize  int64     `xml:"volumeSize"`
	SseType     string    `xml:"sseType,omitempty"`
}

// recycleBinKind pages ListSnapshotsInRecycleBin with the Describe machinery.
var recycleBinKind = &describeKind[RecycledSnapshotItem]{
	idParam:   "SnapshotId",
	setName:   "snapshotSet",
	noun:      "snapshot",
	maxLimit:  maxRecycleBinResults,
	validID:   cow.ValidSnapshotID,
	malformed: malformedSnapshotID,
	notFound:  snapshotNotFound,
	id:        func(s *RecycledSnapshotItem) string { return s.SnapshotID },
}

func (s *Server) recycleBin() (RecycleBinBackend, error) {
	rb, e := optionalBackend[RecycleBinBackend](s, "the Recycle Bin")
	if e != nil {
		return nil, e
	}
	return rb, nil
}

// listSnapshotsInRecycleBin: SnapshotId.N, MaxResults, NextToken, DryRun.
func (s *Server) listSnapshotsInRecycleBin(ctx context.Context, p *params) (response, error) {
	r, e := recycleBinKind.readAlone(p)
	if e != nil {
		return nil, e
	}
	rb, err := s.recycleBin()
	if err != nil {
		return nil, err
	}
	recycled, err := rb.RecycledSnapshots(ctx)
	if err != nil {
		return nil, backendErr("list the recycle bin", err, "")
	}
	items := make([]RecycledSnapshotItem, 0, len(recycled))
	for _, rs := range recycled {
		items = append(items, RecycledSnapshotItem{SnapshotID: rs.ID, RecycleBinEnterTime: Timestamp{rs.EnterTime},
			RecycleBinExitTime: Timestamp{rs.ExitTime}, Description: rs.Description, VolumeID: rs.VolumeID})
	}
	page, next, e := recycleBinKind.answer(items, r, nil)
	if e != nil {
		return nil, e
	}
	return &ListSnapshotsInRecycleBinResponse{Snapshots: page, NextToken: next}, nil
}

// restoreSnapshotFromRecycleBin: SnapshotId, DryRun.
func (s *Server) restoreSnapshotFromRecycleBin(ctx context.Context, p *params) (response, error) {
	dryRun, e := p.boolean("DryRun")
	if e != nil {
		return nil, e
	}
	id, idErr := snapshotIDParam(p)
	if e := p.unknown(); e != nil {
		return nil, e
	}
	if idErr != nil {
		return nil, idErr
	}
	rb, err := s.recycleBin()
	if err != nil {
		return nil, err
	}
	if dryRun {
		recycled, err := rb.RecycledSnapshots(ctx)
		if err != nil {
			return nil, backendErr("list the recycle bin", err, "")
		}
		for _, rs := range recycled {
			if rs.ID == id {
				return nil, errDryRun()
			}
		}
		return nil, snapshotNotFound(id)
	}
	si, err := rb.RestoreRecycledSnapshot(ctx, id)
	if err != nil {
		return nil, backendErr("restore a snapshot from the recycle bin", err, id)
	}
	w := s.wireSnapshot(si)
	return &RestoreSnapshotFromRecycleBinResponse{SnapshotID: w.SnapshotID, OutpostArn: w.OutpostArn,
		Description: w.Description, Encrypted: w.Encrypted, OwnerID: w.OwnerID, Progress: strconv.Itoa(si.Progress) + "%",
		StartTime: w.StartTime, Status: w.Status, VolumeID: w.VolumeID, VolumeSize: w.VolumeSize, SseType: w.SseType}, nil
}
