package control

import (
	"context"
	"encoding/xml"
	"errors"
	"time"

	"github.com/cowvol/cowvol/cow"
)

// EnableFastSnapshotRestores, DisableFastSnapshotRestores and
// DescribeFastSnapshotRestores, as EC2's, for the daemon's one
// Availability Zone (cow/fast_restore.go does the work). A zone that is
// not the daemon's, or a malformed snapshot ID, refuses the whole call
// and changes nothing; a snapshot that does not exist or cannot be
// (dis)abled now is an <unsuccessful> item, the others go on.

// fastRestoreBackend is what the three actions need of the engine.
type fastRestoreBackend interface {
	EnableFastSnapshotRestore(ctx context.Context, id, owner string) (cow.FastRestoreInfo, error)
	DisableFastSnapshotRestore(ctx context.Context, id string) (cow.FastRestoreInfo, error)
	DescribeFastSnapshotRestores(ctx context.Context) ([]cow.FastRestoreInfo, error)
}

// EnableFastSnapshotRestoresResponse answers EnableFastSnapshotRestores.
type EnableFastSnapshotRestoresResponse struct {
	XMLName xml.Name `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ EnableFastSnapshotRestoresResponse"`
	ResponseMetadata
	FastSnapshotRestoresResult
}

// DisableFastSnapshotRestoresResponse answers DisableFastSnapshotRestores.
type DisableFastSnapshotRestoresResponse struct {
	XMLName xml.Name `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ DisableFastSnapshotRestoresResponse"`
	ResponseMetadata
	FastSnapshotRestoresResult
}

// FastSnapshotRestoresResult is what Enable and Disable answer: the
// snapshots done and those that could not be.
type FastSnapshotRestoresResult struct {
	Successful   []FastSnapshotRestore          `xml:"successful>item"`
	Unsuccessful []FastSnapshotRestoreErrorItem `xml:"unsuccessful>item"`
}

// DescribeFastSnapshotRestoresResponse answers DescribeFastSnapshotRestores.
type DescribeFastSnapshotRestoresResponse struct {
	XMLName xml.Name `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ DescribeFastSnapshotRestoresResponse"`
	ResponseMetadata
	FastSnapshotRestores []FastSnapshotRestore `xml:"fastSnapshotRestoreSet>item"`
	NextToken            string                `xml:"nextToken,omitempty"`
}

// FastSnapshotRestore is one snapshot's state in one zone, with EC2's
// element names; a time is absent until the state was entered.
type FastSnapshotRestore struct {
	SnapshotID            string     `xml:"snapshotId"`
	AvailabilityZone      string     `xml:"availabilityZone"`
	AvailabilityZoneID    string     `xml:"availabilityZoneId"`
	State                 string     `xml:"state"`
	StateTransitionReason string     `xml:"stateTransitionReason"`
	OwnerID               string     `xml:"ownerId"`
	EnablingTime          *Timestamp `xml:"enablingTime,omitempty"`
	OptimizingTime        *Timestamp `xml:"optimizingTime,omitempty"`
	EnabledTime           *Timestamp `xml:"enabledTime,omitempty"`
	DisablingTime         *Timestamp `xml:"disablingTime,omitempty"`
	DisabledTime          *Timestamp `xml:"disabledTime,omitempty"`
}

// FastSnapshotRestoreErrorItem is a snapshot that could not be done, with
// the error in each zone.
type FastSnapshotRestoreErrorItem struct {
	SnapshotID string                          `xml:"snapshotId"`
	Errors     []FastSnapshotRestoreStateError `xml:"fastSnapshotRestoreStateErrorSet>item"`
}

// FastSnapshotRestoreStateError is the error in one zone.
type FastSnapshotRestoreStateError struct {
	AvailabilityZone string `xml:"availabilityZone"`
	Code             string `xml:"error>code"`
	Message          string `xml:"error>message"`
}

func stamp(t time.Time) *Timestamp {
	if t.IsZero() {
		return nil
	}
	return &Timestamp{t}
}

func (s *Server) fastSnapshotRestore(fi cow.FastRestoreInfo) FastSnapshotRestore {
	return FastSnapshotRestore{SnapshotID: fi.SnapshotID, AvailabilityZone: s.zone, AvailabilityZoneID: s.zoneID,
		State: string(fi.State), StateTransitionReason: fi.Reason, OwnerID: fi.OwnerID,
		EnablingTime: stamp(fi.EnablingTime), OptimizingTime: stamp(fi.OptimizingTime), EnabledTime: stamp(fi.EnabledTime),
		DisablingTime: stamp(fi.DisablingTime), DisabledTime: stamp(fi.DisabledTime)}
}

// fastRestoreKind gives DescribeFastSnapshotRestores EC2's filters.
var fastRestoreKind = &describeKind[FastSnapshotRestore]{
	idParam:   "SourceSnapshotId", // not EC2's: Describe takes no IDs, only filters
	setName:   "fastSnapshotRestoreSet",
	noun:      "snapshot",
	maxLimit:  200,
	validID:   cow.ValidSnapshotID,
	malformed: malformedSnapshotID,
	notFound:  snapshotNotFound,
	id:        func(f *FastSnapshotRestore) string { return f.SnapshotID },
	attrs: map[string]func(*FastSnapshotRestore) string{
		"availability-zone":    func(f *FastSnapshotRestore) string { return f.AvailabilityZone },
		"availability-zone-id": func(f *FastSnapshotRestore) string { return f.AvailabilityZoneID },
		"owner-id":             func(f *FastSnapshotRestore) string { return f.OwnerID },
		"snapshot-id":          func(f *FastSnapshotRestore) string { return f.SnapshotID },
		"state":                func(f *FastSnapshotRestore) string { return f.State },
	},
}

// readFastRestoreRequest reads Enable's and Disable's parameters:
// AvailabilityZone.N (the daemon's zone, by name or ID), SourceSnapshotId.N
// and DryRun.
func (s *Server) readFastRestoreRequest(p *params) (ids []string, dryRun bool, e *APIError) {
	if dryRun, e = p.boolean("DryRun"); e != nil {
		return nil, false, e
	}
	zones, e := p.stringList("AvailabilityZone")
	if e != nil {
		return nil, false, e
	}
	if ids, e = p.stringList("SourceSnapshotId"); e != nil {
		return nil, false, e
	}
	if e := p.unknown(); e != nil {
		return nil, false, e
	}
	switch {
	case len(zones) == 0:
		return nil, false, missingParam("AvailabilityZone")
	case len(ids) == 0:
		return nil, false, missingParam("SourceSnapshotId")
	}
	for _, z := range zones {
		if z != s.zone && z != s.zoneID {
			return nil, false, s.invalidZone(z)
		}
	}
	for _, id := range ids {
		if !cow.ValidSnapshotID(id) {
			return nil, false, malformedSnapshotID(id)
		}
	}
	return ids, dryRun, nil
}

// changeFastRestores runs change on every snapshot of an Enable or
// Disable request.
func (s *Server) changeFastRestores(ctx context.Context, p *params, change func(fastRestoreBackend, string) (cow.FastRestoreInfo, error)) (FastSnapshotRestoresResult, error) {
	var out FastSnapshotRestoresResult
	ids, dryRun, e := s.readFastRestoreRequest(p)
	if e != nil {
		return out, e
	}
	b, e := optionalBackend[fastRestoreBackend](s, "fast snapshot restores")
	if e != nil {
		return out, e
	}
	if dryRun {
		return out, errDryRun()
	}
	out.Successful, out.Unsuccessful = []FastSnapshotRestore{}, []FastSnapshotRestoreErrorItem{}
	for _, id := range ids {
		fi, err := change(b, id)
		if err == nil {
			out.Successful = append(out.Successful, s.fastSnapshotRestore(fi))
			continue
		}
		ae, ok := backendError(err, id)
		if !ok {
			return out, err
		}
		out.Unsuccessful = append(out.Unsuccessful, FastSnapshotRestoreErrorItem{SnapshotID: id,
			Errors: []FastSnapshotRestoreStateError{{AvailabilityZone: s.zone, Code: ae.Code, Message: ae.Message}}})
	}
	return out, nil
}

// enableFastSnapshotRestores: AvailabilityZone.N, SourceSnapshotId.N, DryRun.
func (s *Server) enableFastSnapshotRestores(ctx context.Context, p *params) (response, error) {
	res, err := s.changeFastRestores(ctx, p, func(b fastRestoreBackend, id string) (cow.FastRestoreInfo, error) {
		return b.EnableFastSnapshotRestore(ctx, id, s.account)
	})
	if err != nil {
		return nil, err
	}
	return &EnableFastSnapshotRestoresResponse{FastSnapshotRestoresResult: res}, nil
}

// disableFastSnapshotRestores: AvailabilityZone.N, SourceSnapshotId.N, DryRun.
func (s *Server) disableFastSnapshotRestores(ctx context.Context, p *params) (response, error) {
	res, err := s.changeFastRestores(ctx, p, func(b fastRestoreBackend, id string) (cow.FastRestoreInfo, error) {
		return b.DisableFastSnapshotRestore(ctx, id)
	})
	if err != nil {
		return nil, err
	}
	return &DisableFastSnapshotRestoresResponse{FastSnapshotRestoresResult: res}, nil
}

// describeFastSnapshotRestores: Filter.N (availability-zone,
// availability-zone-id, owner-id, snapshot-id, state), MaxResults,
// NextToken, DryRun.
func (s *Server) describeFastSnapshotRestores(ctx context.Context, p *params) (response, error) {
	r, e := fastRestoreKind.read(p)
	if e != nil {
		return nil, e
	}
	if e := p.unknown(); e != nil {
		return nil, e
	}
	if len(r.ids) > 0 {
		return nil, apiErr(CodeUnknownParameter, "The parameter SourceSnapshotId is not recognized")
	}
	b, e := optionalBackend[fastRestoreBackend](s, "fast snapshot restores")
	if e != nil {
		return nil, e
	}
	if r.dryRun {
		return nil, errDryRun()
	}
	all, err := b.DescribeFastSnapshotRestores(ctx)
	if err != nil {
		return nil, errors.Join(errors.New("describe fast snapshot restores"), err)
	}
	items := make([]FastSnapshotRestore, 0, len(all))
	for _, fi := range all {
		items = append(items, s.fastSnapshotRestore(fi))
	}
	page, next, e := fastRestoreKind.answer(items, r, nil)
	if e != nil {
		return nil, e
	}
	return &DescribeFastSnapshotRestoresResponse{FastSnapshotRestores: page, NextToken: next}, nil
}
