package control

import (
	"context"
	"encoding/xml"
	"errors"
	"regexp"
	"slices"

	"github.com/cowvol/cowvol/cow"
)

// CreateSnapshots: crash-consistent snapshots of many volumes at one fork
// point (cow.Engine.CreateSnapshots). As EC2 has it, the volumes are those
// attached to an instance (InstanceSpecification): here, this host, whose
// instance ID and attached volumes (loop devices backed by volume files)
// the Instance option gives. ExcludeBootVolume is accepted and changes
// nothing (no cowvol volume is a boot volume); ExcludeDataVolumeId.N
// leaves volumes out. As a cowvol extension, VolumeId.N names the volumes
// instead, attached or not.

// InstanceVolumes is this host as an EC2 instance, for CreateSnapshots.
type InstanceVolumes interface {
	// InstanceID is this host's instance ID, as DescribeVolumes
	// reports attachments.
	InstanceID() string
	// AttachedVolumes lists the volumes attached to loop devices on
	// this host.
	AttachedVolumes(ctx context.Context) ([]string, error)
}

// hostInstance is a Host seen as an instance: its attached volumes, by
// AttachVolume or by hand with losetup.
type hostInstance struct{ host Host }

func (h hostInstance) InstanceID() string { return h.host.InstanceID() }

func (h hostInstance) AttachedVolumes(ctx context.Context) ([]string, error) {
	attached, err := h.host.Attachments(ctx)
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(attached))
	for id := range attached {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}

// multiSnapshotBackend is what CreateSnapshots needs of the engine.
type multiSnapshotBackend interface {
	CreateSnapshots(ctx context.Context, p cow.CreateSnapshotsParams) ([]cow.SnapshotInfo, error)
}

var instanceIDPattern = regexp.MustCompile(`^i-[0-9a-f]{8}([0-9a-f]{9})?$`)

// CreateSnapshotsResponse answers CreateSnapshots.
type CreateSnapshotsResponse struct {
	XMLName xml.Name `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ CreateSnapshotsResponse"`
	ResponseMetadata
	Snapshots SnapshotInfoSet `xml:"snapshotSet"`
}

// SnapshotInfoSet are the <item>s of CreateSnapshots' <snapshotSet>.
type SnapshotInfoSet struct {
	Items []SnapshotInfo `xml:"item"`
}

// SnapshotInfo is one snapshot CreateSnapshots made, with EC2's names.
type SnapshotInfo struct {
	SnapshotID  string    `xml:"snapshotId"`
	VolumeID    string    `xml:"volumeId"`
	State       string    `xml:"state"`
	VolumeSize  int64     `xml:"volumeSize"`
	StartTime   Timestamp `xml:"startTime"`
	Progress    string    `xml:"progress"`
	OwnerID     string    `xml:"ownerId"`
	Description string    `xml:"description"`
	Tags        TagSet    `xml:"tagSet,omitempty"`
	Encrypted   bool      `xml:"encrypted"`
	SseType     string    `xml:"sseType,omitempty"`
}

// createSnapshotsRequest is a parsed CreateSnapshots request.
type createSnapshotsRequest struct {
	instanceID  string
	hasInstance bool
	exclude     []string
	volumeIDs   []string
	params      cow.CreateSnapshotsParams
}

// readCreateSnapshots parses InstanceSpecification.{InstanceId,
// ExcludeBootVolume, ExcludeDataVolumeId.N}, VolumeId.N, Description,
// CopyTagsFromSource, TagSpecification.N, OutpostArn and DryRun.
func readCreateSnapshots(p *params) (createSnapshotsRequest, *APIError) {
	var r createSnapshotsRequest
	var e *APIError
	if r.params.DryRun, e = p.boolean("DryRun"); e != nil {
		return r, e
	}
	const spec = "InstanceSpecification."
	r.instanceID, r.hasInstance = p.get(spec + "InstanceId")
	if _, e = p.boolean(spec + "ExcludeBootVolume"); e != nil {
		return r, e
	}
	if r.exclude, e = p.stringList(spec + "ExcludeDataVolumeId"); e != nil {
		return r, e
	}
	if r.volumeIDs, e = p.stringList("VolumeId"); e != nil {
		return r, e
	}
	r.params.Description, _ = p.get("Description")
	copyTags, hasCopy := p.get("CopyTagsFromSource")
	r.params.CopyTagsFromSource = copyTags == "volume"
	if r.params.Tags, e = readTagSpecifications(p, "snapshot"); e != nil {
		return r, e
	}
	outpost, hasOutpost := p.get("OutpostArn")
	if e := p.unknown(); e != nil {
		return r, e
	}
	switch {
	case hasCopy && copyTags != "volume":
		return r, invalidValue("Value (%s) for parameter CopyTagsFromSource is invalid. Expected volume.", clip(copyTags))
	case hasOutpost:
		return r, invalidValue("Multi-volume snapshots on an Outpost (OutpostArn %s) are not supported: snapshot each volume with CreateSnapshot.", clip(outpost))
	case r.hasInstance == (len(r.volumeIDs) > 0):
		return r, missingParam("InstanceSpecification.InstanceId (or, as a cowvol extension, VolumeId.N, not both)")
	case r.hasInstance && !instanceIDPattern.MatchString(r.instanceID):
		return r, apiErr(CodeInvalidInstanceIDMalformed, "Invalid id: %q (expecting \"i-...\")", clip(r.instanceID))
	}
	for _, id := range slices.Concat(r.exclude, r.volumeIDs) {
		if !cow.ValidVolumeID(id) {
			return r, malformedVolumeID(id)
		}
	}
	if e := descriptionError(r.params.Description); e != nil {
		return r, e
	}
	return r, nil
}

// createSnapshots answers CreateSnapshots.
func (s *Server) createSnapshots(ctx context.Context, p *params) (response, error) {
	r, e := readCreateSnapshots(p)
	if e != nil {
		return nil, e
	}
	if err := cow.ValidateTags(r.params.Tags); err != nil {
		return nil, backendErr("validate tags", err, "")
	}
	mb, e := optionalBackend[multiSnapshotBackend](s, "multi-volume snapshots")
	if e != nil {
		return nil, e
	}
	r.params.VolumeIDs = r.volumeIDs
	if r.hasInstance {
		ids, err := s.instanceVolumes(ctx, r.instanceID, r.exclude)
		if err != nil {
			return nil, err
		}
		r.params.VolumeIDs = ids
	}
	infos, err := mb.CreateSnapshots(ctx, r.params)
	if err != nil {
		id := ""
		var re *cow.ResourceError
		if errors.As(err, &re) {
			id = re.ID
		}
		return nil, backendErr("create snapshots", err, id)
	}
	if r.params.DryRun {
		return nil, errDryRun()
	}
	out := &CreateSnapshotsResponse{Snapshots: SnapshotInfoSet{Items: []SnapshotInfo{}}}
	for _, si := range infos {
		w := s.wireSnapshot(si)
		out.Snapshots.Items = append(out.Snapshots.Items, SnapshotInfo{SnapshotID: w.SnapshotID, VolumeID: w.VolumeID,
			State: w.Status, VolumeSize: w.VolumeSize, StartTime: w.StartTime, Progress: w.Progress, OwnerID: w.OwnerID,
			Description: w.Description, Tags: w.Tags, Encrypted: w.Encrypted, SseType: w.SseType})
	}
	return out, nil
}

// instanceVolumes returns the volumes attached on this host, whose
// instance ID must be id, less those excluded (each of which must be
// attached).
func (s *Server) instanceVolumes(ctx context.Context, id string, exclude []string) ([]string, error) {
	if s.instance == nil || s.instance.InstanceID() != id {
		return nil, apiErr(CodeInvalidInstanceIDNotFound, "The instance ID '%s' does not exist%s", clip(id), s.instanceHint())
	}
	attached, err := s.instance.AttachedVolumes(ctx)
	if err != nil {
		return nil, err
	}
	slices.Sort(attached)
	for _, x := range exclude {
		if !slices.Contains(attached, x) {
			return nil, invalidValue("The volume %s is not attached to instance %s, so it cannot be excluded.", x, id)
		}
	}
	ids := slices.DeleteFunc(attached, func(v string) bool { return slices.Contains(exclude, v) })
	if len(ids) == 0 {
		return nil, invalidValue("Instance %s has no volumes to snapshot: none is attached to a loop device, or all are excluded.", id)
	}
	return ids, nil
}

func (s *Server) instanceHint() string {
	if s.instance == nil || s.instance.InstanceID() == "" {
		return ": this daemon knows no instance (this host has no machine ID)."
	}
	return ": this host is " + s.instance.InstanceID() + "."
}
