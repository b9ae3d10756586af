package control

import (
	"context"
	"encoding/base64"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/cowvol/cowvol/cow"
)

// Limits of the snapshot actions, as EC2's.
const (
	maxDescribeSnapshots = 1000
)

// outpostArnPattern is the shape of an Outpost ARN.
var outpostArnPattern = regexp.MustCompile(`^arn:aws[a-z-]*:outposts:[a-z0-9-]+:[0-9]{12}:outpost/op-[0-9a-f]{17}$`)

// createSnapshot: VolumeId, Description, DryRun, TagSpecification.N, OutpostArn.
func (s *Server) createSnapshot(ctx context.Context, p *params) (response, error) {
	dryRun, e := p.boolean("DryRun")
	if e != nil {
		return nil, e
	}
	volID, _ := p.get("VolumeId")
	desc, _ := p.get("Description")
	outpost, hasOutpost := p.get("OutpostArn")
	tags, e := readTagSpecifications(p, "snapshot")
	if e != nil {
		return nil, e
	}
	if e := p.unknown(); e != nil {
		return nil, e
	}
	switch {
	case volID == "":
		return nil, missingParam("VolumeId")
	case !cow.ValidVolumeID(volID):
		return nil, malformedVolumeID(volID)
	case len([]rune(desc)) > cow.MaxDescriptionLen:
		return nil, invalidValue("The description is longer than %d characters.", cow.MaxDescriptionLen)
	case hasOutpost && !outpostArnPattern.MatchString(outpost):
		return nil, invalidValue("The Outpost ARN '%s' is malformed.", clip(outpost))
	}
	if err := cow.ValidateTags(tags); err != nil {
		return nil, backendErr("validate tags", err, "")
	}
	if dryRun {
		vols, err := s.backend.DescribeVolumes(ctx)
		if err != nil {
			return nil, backendErr("describe volumes", err, volID)
		}
		if _, e := selectVolumes(vols, []string{volID}); e != nil {
			return nil, e
		}
		if hasOutpost && outpost != s.outpostArn() {
			return nil, backendErr("create snapshot", cow.ErrOutpostMismatch, volID)
		}
		return nil, errDryRun()
	}
	info, err := s.backend.CreateSnapshot(ctx, cow.CreateSnapshotParams{
		VolumeID:    volID,
		Description: desc,
		Tags:        tags,
		OutpostArn:  outpost,
	})
	if err != nil {
		return nil, backendErr("create snapshot", err, volID)
	}
	w := s.wireSnapshot(info)
	w.StatusMessage = "" // DescribeSnapshots only
	return &CreateSnapshotResponse{Snapshot: w}, nil
}

// outpostArn is the daemon's Outpost ARN, if the backend knows one.
func (s *Server) outpostArn() string {
	if o, ok := s.backend.(interface{ OutpostArn() string }); ok {
		return o.OutpostArn()
	}
	return ""
}

// wireSnapshot converts an engine snapshot to its wire form.
func (s *Server) wireSnapshot(si cow.SnapshotInfo) Snapshot {
	w := Snapshot{
		SnapshotID:    si.ID,
		VolumeID:      si.VolumeID,
		Status:        string(si.State),
		StatusMessage: si.StatusMessage,
		StartTime:     Timestamp{si.StartTime},
		Progress:      strconv.Itoa(si.Progress) + "%",
		OwnerID:       s.account,
		VolumeSize:    (si.VolumeSize + 1<<30 - 1) >> 30,
		Description:   si.Description,
		Encrypted:     si.Encrypted,
		StorageTier:   si.StorageTier,
		OutpostArn:    si.OutpostArn,
	}
	for _, t := range si.Tags {
		w.Tags = append(w.Tags, Tag{Key: t.Key, Value: t.Value})
	}
	if !si.CompletionTime.IsZero() {
		w.CompletionTime = &Timestamp{si.CompletionTime}
	}
	if si.State == cow.SnapshotCompleted {
		size := si.DataBytes
		w.FullSnapshotSizeInBytes = &size
	}
	return w
}

// describeSnapshots: SnapshotId.N, Owner.N, RestorableBy.N, Filter.N,
// MaxResults, NextToken, DryRun.
func (s *Server) describeSnapshots(ctx context.Context, p *params) (response, error) {
	dryRun, e := p.boolean("DryRun")
	if e != nil {
		return nil, e
	}
	ids, e := p.stringList("SnapshotId")
	if e != nil {
		return nil, e
	}
	owners, e := p.stringList("Owner")
	if e != nil {
		return nil, e
	}
	if _, e := p.stringList("RestorableBy"); e != nil {
		return nil, e
	}
	filters, e := readFilters(p)
	if e != nil {
		return nil, e
	}
	maxResults, hasMax, e := p.integer("MaxResults")
	if e != nil {
		return nil, e
	}
	token, _ := p.get("NextToken")
	if e := p.unknown(); e != nil {
		return nil, e
	}
	for _, id := range ids {
		if !cow.ValidSnapshotID(id) {
			return nil, malformedSnapshotID(id)
		}
	}
	for _, f := range filters {
		if !validSnapshotFilter(f.Name) {
			return nil, invalidValue("The filter '%s' is invalid", clip(f.Name))
		}
	}
	if hasMax {
		if len(ids) > 0 {
			return nil, apiErr(CodeInvalidParameterCombination, "The parameter snapshotSet cannot be used with the parameter maxResults")
		}
		if maxResults < minDescribeResults || maxResults > maxDescribeSnapshots {
			return nil, invalidValue("Value ( %d ) for parameter maxResults is invalid. Expecting a value between %d and %d.",
				maxResults, minDescribeResults, maxDescribeSnapshots)
		}
	}
	after := ""
	if token != "" {
		b, err := base64.RawURLEncoding.DecodeString(token)
		if err != nil || !cow.ValidSnapshotID(string(b)) {
			return nil, apiErr(CodeInvalidPaginationToken, "The pagination token '%s' is invalid.", clip(token))
		}
		after = string(b)
	}
	if dryRun {
		return nil, errDryRun()
	}

	infos, err := s.backend.DescribeSnapshots(ctx)
	if err != nil {
		return nil, backendErr("describe snapshots", err, "")
	}
	if len(ids) > 0 {
		if infos, e = selectSnapshots(infos, ids); e != nil {
			return nil, e
		}
	}
	resp := &DescribeSnapshotsResponse{}
	for _, info := range infos {
		if info.ID <= after {
			continue
		}
		w := s.wireSnapshot(info)
		if !s.ownedBy(owners) || !snapshotMatches(w, filters) {
			continue
		}
		if hasMax && int64(len(resp.SnapshotSet.Items)) == maxResults {
			last := resp.SnapshotSet.Items[len(resp.SnapshotSet.Items)-1].SnapshotID
			resp.NextToken = base64.RawURLEncoding.EncodeToString([]byte(last))
			break
		}
		resp.SnapshotSet.Items = append(resp.SnapshotSet.Items, w)
	}
	return resp, nil
}

// ownedBy reports whether this daemon's snapshots match an Owner.N list:
// "self" and the account ID match, anything else ("amazon", another
// account) does not.
func (s *Server) ownedBy(owners []string) bool {
	if len(owners) == 0 {
		return true
	}
	for _, o := range owners {
		if o == "self" || o == s.account {
			return true
		}
	}
	return false
}

// selectSnapshots returns the snapshots of infos named in ids, or
// InvalidSnapshot.NotFound naming every missing one.
func selectSnapshots(infos []cow.SnapshotInfo, ids []string) ([]cow.SnapshotInfo, *APIError) {
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	var out []cow.SnapshotInfo
	for _, si := range infos {
		if want[si.ID] {
			out = append(out, si)
			delete(want, si.ID)
		}
	}
	if len(want) == 0 {
		return out, nil
	}
	var missing []string
	for _, id := range ids {
		if want[id] {
			missing = append(missing, id)
			delete(want, id)
		}
	}
	if len(missing) == 1 {
		return nil, snapshotNotFound(missing[0])
	}
	return nil, apiErr(CodeInvalidSnapshotNotFound, "The snapshots '%s' do not exist.", clip(strings.Join(missing, ", ")))
}

// snapshotFilters are the filter names DescribeSnapshots knows, besides
// tag:<key> and tag-key.
var snapshotFilters = map[string]func(s *Snapshot) string{
	"status":       func(s *Snapshot) string { return s.Status },
	"volume-id":    func(s *Snapshot) string { return s.VolumeID },
	"snapshot-id":  func(s *Snapshot) string { return s.SnapshotID },
	"description":  func(s *Snapshot) string { return s.Description },
	"owner-id":     func(s *Snapshot) string { return s.OwnerID },
	"start-time":   func(s *Snapshot) string { return s.StartTime.String() },
	"progress":     func(s *Snapshot) string { return s.Progress },
	"storage-tier": func(s *Snapshot) string { return s.StorageTier },
	"volume-size":  func(s *Snapshot) string { return strconv.FormatInt(s.VolumeSize, 10) },
	"encrypted":    func(s *Snapshot) string { return strconv.FormatBool(s.Encrypted) },
	"outpost-arn":  func(s *Snapshot) string { return s.OutpostArn },
}

func validSnapshotFilter(name string) bool {
	if _, ok := snapshotFilters[name]; ok {
		return true
	}
	_, ok := tagFilter(name, nil, nil)
	return ok
}

func snapshotMatches(s Snapshot, filters []Filter) bool {
	for _, f := range filters {
		if attr, ok := snapshotFilters[f.Name]; ok {
			if !matchAny(f.Values, attr(&s)) {
				return false
			}
			continue
		}
		if match, _ := tagFilter(f.Name, f.Values, s.Tags); !match {
			return false
		}
	}
	return true
}

// deleteSnapshot: SnapshotId, DryRun.
func (s *Server) deleteSnapshot(ctx context.Context, p *params) (response, error) {
	dryRun, e := p.boolean("DryRun")
	if e != nil {
		return nil, e
	}
	id, _ := p.get("SnapshotId")
	if e := p.unknown(); e != nil {
		return nil, e
	}
	if id == "" {
		return nil, missingParam("SnapshotId")
	}
	if !cow.ValidSnapshotID(id) {
		return nil, malformedSnapshotID(id)
	}
	if dryRun {
		infos, err := s.backend.DescribeSnapshots(ctx)
		if err != nil {
			return nil, backendErr("describe snapshots", err, id)
		}
		if _, e := selectSnapshots(infos, []string{id}); e != nil {
			return nil, e
		}
		return nil, errDryRun()
	}
	if err := s.backend.DeleteSnapshot(ctx, id); err != nil {
		return nil, backendErr("delete snapshot", err, id)
	}
	return &DeleteSnapshotResponse{Return: true}, nil
}

// checkSnapshotForVolume answers, for a dry run of CreateVolume from a
// snapshot, what the real call would: the snapshot must exist, be
// completed and not be larger than the volume asked for.
func (s *Server) checkSnapshotForVolume(ctx context.Context, id string, size int64) *APIError {
	infos, err := s.backend.DescribeSnapshots(ctx)
	if err != nil {
		return errInternal()
	}
	sel, e := selectSnapshots(infos, []string{id})
	if e != nil {
		return e
	}
	switch si := sel[0]; {
	case si.State != cow.SnapshotCompleted:
		return apiErr(CodeIncorrectState, "Snapshot '%s' is not 'completed'.", id)
	case size != 0 && size < si.VolumeSize:
		return invalidValue("%s", fmt.Sprintf("Volume of %d bytes is smaller than snapshot %s (%d bytes).", size, id, si.VolumeSize))
	}
	return nil
}
