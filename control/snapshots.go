package control

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/cowvol/cowvol/cow"
)

// maxDescribeSnapshots is EC2's largest MaxResults for DescribeSnapshots.
const maxDescribeSnapshots = 1000

// outpostArnPattern is the shape of an Outpost ARN, loosely:
// arn:<partition>:outposts:<region>:<12-digit account>:outpost/op-<hex>.
// Whether it names this daemon's Outpost is the engine's decision.
var outpostArnPattern = regexp.MustCompile(`^arn:aws[a-z-]*:outposts:[a-z0-9-]+:[0-9]{12}:outpost/op-[0-9a-f]+$`)

// descriptionError refuses a snapshot description the engine cannot store:
// at most 255 characters, and at most 255 bytes of UTF-8.
func descriptionError(desc string) *APIError {
	switch {
	case utf8.RuneCountInString(desc) > cow.MaxDescriptionLen:
		return invalidValue("The description is longer than %d characters.", cow.MaxDescriptionLen)
	case len(desc) > cow.MaxDescriptionLen:
		return invalidValue("The description is longer than %d bytes of UTF-8.", cow.MaxDescriptionLen)
	}
	return nil
}

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
	descErr := descriptionError(desc)
	switch {
	case volID == "":
		return nil, missingParam("VolumeId")
	case !cow.ValidVolumeID(volID):
		return nil, malformedVolumeID(volID)
	case descErr != nil:
		return nil, descErr
	case hasOutpost && outpost != s.backend.OutpostArn() && !outpostArnPattern.MatchString(outpost):
		return nil, invalidValue("Value (%s) for parameter OutpostArn is invalid: expected arn:aws:outposts:<region>:<account>:outpost/op-<id>.", clip(outpost))
	}
	if err := cow.ValidateTags(tags); err != nil {
		return nil, backendErr("validate tags", err, "")
	}
	if dryRun {
		if err := s.checkCreateSnapshot(ctx, volID, outpost); err != nil {
			return nil, err
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
	// Not among CreateSnapshot's response elements: DescribeSnapshots only.
	w.StatusMessage = ""
	w.DataEncryptionKeyID = ""
	w.FullSnapshotSizeInBytes = nil
	return &CreateSnapshotResponse{Snapshot: w}, nil
}

// checkCreateSnapshot answers, for a dry run of CreateSnapshot, what the
// real call would: the volume must exist, the Outpost must be the
// daemon's, and the volume must have fewer than the most pending
// snapshots allowed.
func (s *Server) checkCreateSnapshot(ctx context.Context, volID, outpost string) error {
	vols, err := s.backend.DescribeVolumes(ctx)
	if err != nil {
		return backendErr("describe volumes", err, volID)
	}
	found := false
	for _, vi := range vols {
		if vi.ID == volID && vi.State != cow.VolumeDeleting {
			found = true
		}
	}
	if !found {
		return volumeNotFound(volID)
	}
	if outpost != "" && outpost != s.backend.OutpostArn() {
		return backendErr("create snapshot", fmt.Errorf("%w: %s is not this host's Outpost", cow.ErrOutpostMismatch, outpost), volID)
	}
	snaps, err := s.backend.DescribeSnapshots(ctx)
	if err != nil {
		return backendErr("describe snapshots", err, volID)
	}
	pending := 0
	for _, si := range snaps {
		if si.VolumeID == volID && si.State == cow.SnapshotPending {
			pending++
		}
	}
	if pending >= cow.MaxPendingSnapshots {
		return backendErr("create snapshot", cow.ErrConcurrentSnapshotLimit, volID)
	}
	return nil
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
		OwnerID:       cmp.Or(si.OwnerID, s.account),
		VolumeSize:    (si.VolumeSize + 1<<30 - 1) >> 30,
		Description:   si.Description,
		Encrypted:     si.Encrypted,
		StorageTier:   si.StorageTier,
		OutpostArn:    si.OutpostArn,
	}
	if si.Encrypted {
		w.KmsKeyID, w.DataEncryptionKeyID, w.SseType = si.KMSKeyARN, si.DataKeyID, "sse-kms"
	}
	for _, t := range si.Tags {
		w.Tags = append(w.Tags, Tag{Key: t.Key, Value: t.Value})
	}
	if !si.CompletionTime.IsZero() {
		w.CompletionTime = &Timestamp{si.CompletionTime}
	}
	w.RestoreExpiryTime = optionalTime(si.RestoreExpiryTime)
	if si.State == cow.SnapshotCompleted {
		size := si.DataBytes
		w.FullSnapshotSizeInBytes = &size
	}
	return w
}

// snapshotKind describes snapshots to the shared Describe machinery.
var snapshotKind = &describeKind[Snapshot]{
	idParam:   "SnapshotId",
	setName:   "snapshotSet",
	noun:      "snapshot",
	maxLimit:  maxDescribeSnapshots,
	validID:   cow.ValidSnapshotID,
	malformed: malformedSnapshotID,
	notFound:  snapshotNotFound,
	id:        func(s *Snapshot) string { return s.SnapshotID },
	tags:      func(s *Snapshot) []Tag { return s.Tags },
	attrs: map[string]func(s *Snapshot) string{
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
	},
}

// describeSnapshots: SnapshotId.N, Owner.N, RestorableBy.N, Filter.N,
// MaxResults, NextToken, DryRun.
func (s *Server) describeSnapshots(ctx context.Context, p *params) (response, error) {
	r, e := snapshotKind.read(p)
	if e != nil {
		return nil, e
	}
	owners, e := p.stringList("Owner")
	if e != nil {
		return nil, e
	}
	restorable, e := p.stringList("RestorableBy")
	if e != nil {
		return nil, e
	}
	if e := p.unknown(); e != nil {
		return nil, e
	}
	if e := checkRestorableBy(restorable); e != nil {
		return nil, e
	}
	if r.dryRun {
		return nil, errDryRun()
	}
	infos, err := s.backend.DescribeSnapshots(ctx)
	if err != nil {
		return nil, backendErr("describe snapshots", err, "")
	}
	all := make([]Snapshot, 0, len(infos))
	byID := make(map[string]cow.SnapshotInfo, len(infos))
	hidden := map[string]bool{}
	for _, info := range infos {
		if !info.MayCreateVolume(s.account, s.account) {
			hidden[info.ID] = true // another account's, not shared with this one
			continue
		}
		all = append(all, s.wireSnapshot(info))
		byID[info.ID] = info
	}
	if len(r.ids) > 0 {
		// As EC2: a named snapshot this account may not use is left out of
		// the answer, not an error.
		r.ids = slices.DeleteFunc(r.ids, func(id string) bool { return hidden[id] })
		if len(r.ids) == 0 {
			return &DescribeSnapshotsResponse{SnapshotSet: SnapshotSet{Items: []Snapshot{}}}, nil
		}
	}
	page, next, e := snapshotKind.answer(all, r, func(w *Snapshot) bool {
		return s.ownedBy(owners, w.OwnerID) && s.restorableBy(restorable, byID[w.SnapshotID])
	})
	if e != nil {
		return nil, e
	}
	return &DescribeSnapshotsResponse{SnapshotSet: SnapshotSet{Items: page}, NextToken: next}, nil
}

// ownedBy reports whether this daemon's snapshots match an Owner.N list:
// "self" and the account ID match, anything else ("amazon", another
// account) does not.
func (s *Server) ownedBy(owners []string, owner string) bool {
	if len(owners) == 0 {
		return true
	}
	for _, o := range owners {
		if o == owner || o == "self" && owner == s.account {
			return true
		}
	}
	return false
}

// snapshotIDParam reads the required SnapshotId.
func snapshotIDParam(p *params) (string, *APIError) {
	id, _ := p.get("SnapshotId")
	if id == "" {
		return "", missingParam("SnapshotId")
	}
	if !cow.ValidSnapshotID(id) {
		return "", malformedSnapshotID(id)
	}
	return id, nil
}

// dryRunOnSnapshot is the answer to a DryRun naming snapshot id:
// DryRunOperation if it exists, its not-found error if not.
func (s *Server) dryRunOnSnapshot(id string) error {
	if _, err := s.backend.SnapshotInfo(id); err != nil {
		return backendErr("describe snapshot", err, id)
	}
	return errDryRun()
}

// deleteSnapshot: SnapshotId, DryRun.
func (s *Server) deleteSnapshot(ctx context.Context, p *params) (response, error) {
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
	if dryRun {
		return nil, s.dryRunOnSnapshot(id)
	}
	if err := s.backend.DeleteSnapshot(ctx, id); err != nil {
		return nil, backendErr("delete snapshot", err, id)
	}
	return &DeleteSnapshotResponse{Return: true}, nil
}

// checkSnapshotForVolume answers, for a dry run of CreateVolume from a
// snapshot, what the real call would: the snapshot must exist and be
// completed; the volume's size (0: the snapshot's) must not be smaller and
// its block size (0: the snapshot's) must be the snapshot's.
func (s *Server) checkSnapshotForVolume(id string, size int64, blockSize int) error {
	si, err := s.backend.SnapshotInfo(id)
	if err != nil {
		return backendErr("describe snapshot", err, id)
	}
	if size == 0 {
		size = si.VolumeSize
	}
	switch {
	case si.State != cow.SnapshotCompleted:
		return snapshotNotCompleted(id)
	case size < si.VolumeSize:
		return backendErr("create volume", fmt.Errorf("%w: %d bytes is smaller than snapshot %s (%d bytes)",
			cow.ErrInvalidSize, size, id, si.VolumeSize), id)
	case blockSize != 0 && blockSize != si.BlockSize:
		return backendErr("create volume", fmt.Errorf("%w: a volume from snapshot %s has its block size, %d",
			cow.ErrInvalidBlockSize, id, si.BlockSize), id)
	}
	if err := cow.ValidateGeometry(size, si.BlockSize); err != nil {
		return backendErr("validate geometry", err, id)
	}
	return nil
}

// copySnapshot: SourceSnapshotId, SourceRegion, Description, Encrypted,
// KmsKeyId, TagSpecification.N, DryRun; PresignedUrl and
// DestinationRegion (which SDKs fill in for cross-region copies) are
// accepted and must name this daemon's region.
func (s *Server) copySnapshot(ctx context.Context, p *params) (response, error) {
	dryRun, e := p.boolean("DryRun")
	if e != nil {
		return nil, e
	}
	encrypted, e := p.boolean("Encrypted")
	if e != nil {
		return nil, e
	}
	srcID, _ := p.get("SourceSnapshotId")
	srcRegion, hasSrcRegion := p.get("SourceRegion")
	dstRegion, hasDstRegion := p.get("DestinationRegion")
	p.get("PresignedUrl") // the SDK's presigned source request: nothing to check it against
	desc, _ := p.get("Description")
	kmsKeyID, _ := p.get("KmsKeyId")
	outpost, hasOutpost := p.get("DestinationOutpostArn")
	_, hasDuration := p.get("CompletionDurationMinutes")
	tags, e := readTagSpecifications(p, "snapshot")
	if e != nil {
		return nil, e
	}
	if e := p.unknown(); e != nil {
		return nil, e
	}
	descErr := descriptionError(desc)
	switch {
	case srcID == "":
		return nil, missingParam("SourceSnapshotId")
	case !cow.ValidSnapshotID(srcID):
		return nil, malformedSnapshotID(srcID)
	case hasSrcRegion && srcRegion != s.region:
		return nil, invalidValue("Cross-region copies are not supported: the source region must be %s, not %s.", s.region, clip(srcRegion))
	case hasDstRegion && dstRegion != s.region:
		return nil, invalidValue("Cross-region copies are not supported: the destination region must be %s, not %s.", s.region, clip(dstRegion))
	case hasOutpost:
		return nil, invalidValue("Copies to an Outpost are not supported (DestinationOutpostArn %s).", clip(outpost))
	case hasDuration:
		return nil, invalidValue("Time-based copies (CompletionDurationMinutes) are not supported: copies run as fast as the snapshot store allows.")
	case descErr != nil:
		return nil, descErr
	}
	if err := cow.ValidateTags(tags); err != nil {
		return nil, backendErr("validate tags", err, "")
	}
	cp := cow.CopySnapshotParams{SourceSnapshotID: srcID, Description: desc, Tags: tags, Encrypted: encrypted, KMSKeyID: kmsKeyID}
	if err := s.mayUseSnapshot(ctx, srcID); err != nil {
		return nil, err
	}
	if dryRun {
		if err := s.backend.CheckCopySnapshot(ctx, cp); err != nil {
			return nil, s.copyError(err, srcID)
		}
		return nil, errDryRun()
	}
	info, err := s.backend.CopySnapshot(ctx, cp)
	if err != nil {
		return nil, s.copyError(err, srcID)
	}
	out := &CopySnapshotResponse{SnapshotID: info.ID}
	for _, t := range info.Tags {
		out.Tags = append(out.Tags, Tag{Key: t.Key, Value: t.Value})
	}
	return out, nil
}

func (s *Server) copyError(err error, srcID string) error {
	if errors.Is(err, cow.ErrIncorrectState) {
		return snapshotNotCompleted(srcID)
	}
	return backendErr("copy snapshot", err, srcID)
}
