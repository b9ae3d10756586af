package control

import (
	"cmp"
	"context"
	"encoding/xml"
	"time"

	"github.com/cowvol/cowvol/cow"
)

// tierBackend is what the archive-tier actions need of the engine.
type tierBackend interface {
	ModifySnapshotTier(ctx context.Context, id string, check bool) (time.Time, error)
	RestoreSnapshotTier(ctx context.Context, id string, days int, permanent, check bool) (cow.RestoreTierResult, error)
	DescribeSnapshotTierStatus(ctx context.Context) ([]cow.TierStatus, error)
}

// ModifySnapshotTierResponse answers ModifySnapshotTier.
type ModifySnapshotTierResponse struct {
	XMLName xml.Name `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ ModifySnapshotTierResponse"`
	ResponseMetadata
	SnapshotID       string    `xml:"snapshotId"`
	TieringStartTime Timestamp `xml:"tieringStartTime"`
}

// RestoreSnapshotTierResponse answers RestoreSnapshotTier.
type RestoreSnapshotTierResponse struct {
	XMLName xml.Name `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ RestoreSnapshotTierResponse"`
	ResponseMetadata
	SnapshotID         string    `xml:"snapshotId"`
	RestoreStartTime   Timestamp `xml:"restoreStartTime"`
	RestoreDuration    int       `xml:"restoreDuration,omitempty"`
	IsPermanentRestore bool      `xml:"isPermanentRestore"`
}

// SnapshotTierStatus is one item of DescribeSnapshotTierStatus.
type SnapshotTierStatus struct {
	SnapshotID                       string     `xml:"snapshotId"`
	VolumeID                         string     `xml:"volumeId"`
	Status                           string     `xml:"status"`
	OwnerID                          string     `xml:"ownerId"`
	Tags                             TagSet     `xml:"tagSet,omitempty"`
	StorageTier                      string     `xml:"storageTier"`
	LastTieringStartTime             *Timestamp `xml:"lastTieringStartTime,omitempty"`
	LastTieringProgress              *int       `xml:"lastTieringProgress,omitempty"`
	LastTieringOperationStatus       string     `xml:"lastTieringOperationStatus,omitempty"`
	LastTieringOperationStatusDetail string     `xml:"lastTieringOperationStatusDetail,omitempty"`
	ArchivalCompleteTime             *Timestamp `xml:"archivalCompleteTime,omitempty"`
	RestoreExpiryTime                *Timestamp `xml:"restoreExpiryTime,omitempty"`
}

// DescribeSnapshotTierStatusResponse answers DescribeSnapshotTierStatus.
type DescribeSnapshotTierStatusResponse struct {
	XMLName xml.Name `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ DescribeSnapshotTierStatusResponse"`
	ResponseMetadata
	Items     []SnapshotTierStatus `xml:"snapshotTierStatusSet>item"`
	NextToken string               `xml:"nextToken,omitempty"`
}

func (s *Server) tierBackend() (tierBackend, error) {
	tb, e := optionalBackend[tierBackend](s, "the archive tier")
	if e != nil {
		return nil, e
	}
	return tb, nil
}

// modifySnapshotTier: SnapshotId, StorageTier (archive), DryRun.
func (s *Server) modifySnapshotTier(ctx context.Context, p *params) (response, error) {
	dryRun, e := p.boolean("DryRun")
	if e != nil {
		return nil, e
	}
	tier, hasTier := p.get("StorageTier")
	id, idErr := snapshotIDParam(p)
	if e := p.unknown(); e != nil {
		return nil, e
	}
	if idErr != nil {
		return nil, idErr
	}
	if hasTier && tier != cow.TierArchive {
		return nil, invalidValue("Value (%s) for parameter StorageTier is invalid. Expected: 'archive'.", clip(tier))
	}
	tb, err := s.tierBackend()
	if err != nil {
		return nil, err
	}
	start, err := tb.ModifySnapshotTier(ctx, id, dryRun)
	if err != nil {
		return nil, backendErr("modify snapshot tier", err, id)
	}
	if dryRun {
		return nil, errDryRun()
	}
	return &ModifySnapshotTierResponse{SnapshotID: id, TieringStartTime: Timestamp{start}}, nil
}

// restoreSnapshotTier: SnapshotId, TemporaryRestoreDays, PermanentRestore,
// DryRun.
func (s *Server) restoreSnapshotTier(ctx context.Context, p *params) (response, error) {
	dryRun, e := p.boolean("DryRun")
	if e != nil {
		return nil, e
	}
	permanent, e := p.boolean("PermanentRestore")
	if e != nil {
		return nil, e
	}
	days, hasDays, e := p.integer("TemporaryRestoreDays")
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
	switch {
	case permanent && hasDays:
		return nil, apiErr(CodeInvalidParameterCombination, "The parameters TemporaryRestoreDays and PermanentRestore cannot be used together.")
	case !permanent && !hasDays:
		return nil, missingParam("TemporaryRestoreDays")
	case hasDays && (days < 1 || days > cow.MaxTemporaryRestoreDays):
		return nil, invalidValue("Value (%d) for parameter TemporaryRestoreDays is invalid. Expecting a value between 1 and %d.", days, cow.MaxTemporaryRestoreDays)
	}
	tb, err := s.tierBackend()
	if err != nil {
		return nil, err
	}
	res, err := tb.RestoreSnapshotTier(ctx, id, int(days), permanent, dryRun)
	if err != nil {
		return nil, backendErr("restore snapshot tier", err, id)
	}
	if dryRun {
		return nil, errDryRun()
	}
	return &RestoreSnapshotTierResponse{SnapshotID: id, RestoreStartTime: Timestamp{res.StartTime},
		RestoreDuration: res.Days, IsPermanentRestore: res.IsPermanent}, nil
}

// tierStatusKind describes tier statuses to the shared Describe machinery
// (the call has no ID list of its own: snapshot-id is a filter).
var tierStatusKind = &describeKind[SnapshotTierStatus]{
	idParam:   "SnapshotId",
	setName:   "snapshotTierStatusSet",
	noun:      "snapshot",
	maxLimit:  1000,
	validID:   cow.ValidSnapshotID,
	malformed: malformedSnapshotID,
	notFound:  snapshotNotFound,
	id:        func(t *SnapshotTierStatus) string { return t.SnapshotID },
	attrs: map[string]func(t *SnapshotTierStatus) string{
		"snapshot-id":             func(t *SnapshotTierStatus) string { return t.SnapshotID },
		"volume-id":               func(t *SnapshotTierStatus) string { return t.VolumeID },
		"last-tiering-operation":  func(t *SnapshotTierStatus) string { return t.LastTieringOperationStatus },
		"storage-tier":            func(t *SnapshotTierStatus) string { return t.StorageTier },
		"last-tiering-start-time": func(t *SnapshotTierStatus) string { return timeText(t.LastTieringStartTime) },
	},
}

func timeText(t *Timestamp) string {
	if t == nil {
		return ""
	}
	return t.String()
}

// describeSnapshotTierStatus: Filter.N, MaxResults, NextToken, DryRun.
func (s *Server) describeSnapshotTierStatus(ctx context.Context, p *params) (response, error) {
	if _, ok := p.get("SnapshotId.1"); ok {
		return nil, apiErr(CodeUnknownParameter, "The parameter SnapshotId.1 is not recognized; filter on snapshot-id.")
	}
	r, e := tierStatusKind.readAlone(p)
	if e != nil {
		return nil, e
	}
	tb, err := s.tierBackend()
	if err != nil {
		return nil, err
	}
	all, err := tb.DescribeSnapshotTierStatus(ctx)
	if err != nil {
		return nil, backendErr("describe snapshot tier status", err, "")
	}
	items := make([]SnapshotTierStatus, 0, len(all))
	for _, ts := range all {
		items = append(items, s.wireTierStatus(ts))
	}
	page, next, e := tierStatusKind.answer(items, r, nil)
	if e != nil {
		return nil, e
	}
	return &DescribeSnapshotTierStatusResponse{Items: page, NextToken: next}, nil
}

func (s *Server) wireTierStatus(ts cow.TierStatus) SnapshotTierStatus {
	si := ts.Snapshot
	w := SnapshotTierStatus{SnapshotID: si.ID, VolumeID: si.VolumeID, Status: string(si.State),
		OwnerID: cmp.Or(si.OwnerID, s.account), StorageTier: ts.StorageTier,
		LastTieringOperationStatus: string(ts.LastStatus), LastTieringOperationStatusDetail: ts.LastStatusDetail}
	for _, t := range si.Tags {
		w.Tags = append(w.Tags, Tag{Key: t.Key, Value: t.Value})
	}
	w.LastTieringStartTime = optionalTime(ts.LastStartTime)
	w.ArchivalCompleteTime = optionalTime(ts.ArchivalCompleteTime)
	w.RestoreExpiryTime = optionalTime(ts.RestoreExpiryTime)
	if ts.LastStatus != "" {
		progress := ts.LastProgress
		w.LastTieringProgress = &progress
	}
	return w
}
