package control

import (
	"context"
	"errors"
	"strconv"

	"github.com/cowvol/cowvol/cow"
)

// Limits of the volume actions, as EC2's.
const (
	maxVolumeSizeGiB   = cow.MaxVolumeSize >> 30 // 65536
	minDescribeResults = 5
	maxDescribeResults = 500
	maxClientTokenLen  = 64
)

// volumeType is the only EC2 volume type cowvol reports and accepts.
const volumeType = "standard"

// createVolume: Size (GiB) or SizeBytes (cowvol), BlockSize (cowvol),
// TagSpecification.N, ClientToken, AvailabilityZone or AvailabilityZoneId,
// VolumeType, Encrypted, KmsKeyId, SnapshotId, DryRun.
func (s *Server) createVolume(ctx context.Context, p *params) (response, error) {
	dryRun, e := p.boolean("DryRun")
	if e != nil {
		return nil, e
	}
	snapshotID, hasSnapshot := p.get("SnapshotId")
	sizeGiB, hasSize, e := p.integer("Size")
	if e != nil {
		return nil, e
	}
	sizeBytes, hasSizeBytes, e := p.integer("SizeBytes")
	if e != nil {
		return nil, e
	}
	blockSize, hasBlockSize, e := p.integer("BlockSize")
	if e != nil {
		return nil, e
	}
	encrypted, e := p.boolean("Encrypted")
	if e != nil {
		return nil, e
	}
	kmsKeyID, _ := p.get("KmsKeyId")
	zone, hasZone := p.get("AvailabilityZone")
	zoneID, hasZoneID := p.get("AvailabilityZoneId")
	vtype, hasType := p.get("VolumeType")
	token, _ := p.get("ClientToken")
	tags, e := readTagSpecifications(p, "volume")
	if e != nil {
		return nil, e
	}
	if e := p.unknown(); e != nil {
		return nil, e
	}

	if hasSnapshot && !cow.ValidSnapshotID(snapshotID) {
		return nil, malformedSnapshotID(snapshotID)
	}
	switch {
	case hasZone && hasZoneID:
		return nil, apiErr(CodeInvalidParameterCombination, "Specify either AvailabilityZone or AvailabilityZoneId, not both.")
	case hasZone && zone != s.zone:
		return nil, s.invalidZone(zone)
	case hasZoneID && zoneID != s.zoneID:
		return nil, invalidValue("Invalid availability zone ID: [%s]. This daemon's zone is %s (ID %s).", clip(zoneID), s.zone, s.zoneID)
	}
	if hasType && vtype != volumeType {
		return nil, invalidValue("The volume type '%s' is not supported: cowvol volumes are '%s'.", clip(vtype), volumeType)
	}
	if len(token) > maxClientTokenLen {
		return nil, invalidValue("The client token is longer than %d characters.", maxClientTokenLen)
	}
	var size int64
	switch {
	case hasSize && hasSizeBytes:
		return nil, apiErr(CodeInvalidParameterCombination, "The parameters Size and SizeBytes cannot be used together.")
	case hasSnapshot && !hasSize && !hasSizeBytes:
		size = 0 // the snapshot's size
	case hasSize:
		if sizeGiB < 1 || sizeGiB > maxVolumeSizeGiB {
			return nil, invalidValue("Volume of %d GiB is out of range: the size must be from 1 to %d GiB.", sizeGiB, maxVolumeSizeGiB)
		}
		size = sizeGiB << 30
	case hasSizeBytes:
		size = sizeBytes
	default:
		return nil, missingParam("Size")
	}
	bs := cow.DefaultBlockSize
	if hasSnapshot {
		bs = 0 // the snapshot's
	}
	if hasBlockSize {
		if blockSize > cow.MaxBlockSize {
			blockSize = cow.MaxBlockSize + 1 // keep the conversion below safe; still invalid
		}
		bs = int(blockSize)
	}
	switch {
	case !hasSnapshot:
		if err := cow.ValidateGeometry(size, bs); err != nil {
			return nil, backendErr("validate geometry", err, "")
		}
	case (hasSize || hasSizeBytes) && (size <= 0 || size > cow.MaxVolumeSize):
		return nil, invalidValue("Volume size %d bytes is out of range: from 1 byte to 64 TiB, and at least the snapshot's.", size)
	case hasBlockSize && (bs < cow.MinBlockSize || bs > cow.MaxBlockSize || bs&(bs-1) != 0):
		return nil, backendErr("validate geometry", cow.ValidateGeometry(int64(cow.MinBlockSize), bs), "")
	}
	// With a snapshot, the engine checks size and block size against it.
	if err := cow.ValidateTags(tags); err != nil {
		return nil, backendErr("validate tags", err, "")
	}
	cp := cow.CreateVolumeParams{
		Size:        size,
		BlockSize:   bs,
		Tags:        tags,
		ClientToken: token,
		SnapshotID:  snapshotID,
		Encrypted:   encrypted,
		KMSKeyID:    kmsKeyID,
	}
	if dryRun {
		if hasSnapshot {
			if err := s.checkSnapshotForVolume(snapshotID, size, bs); err != nil {
				return nil, err
			}
			if err := s.mayUseSnapshot(ctx, snapshotID); err != nil {
				return nil, err
			}
		}
		if err := s.backend.CheckVolumeEncryption(ctx, cp); err != nil {
			return nil, backendErr("create volume", err, snapshotID)
		}
		return nil, errDryRun()
	}
	info, err := s.backend.CreateVolume(ctx, cp)
	if err != nil {
		if hasSnapshot && errors.Is(err, cow.ErrIncorrectState) {
			return nil, snapshotNotCompleted(snapshotID)
		}
		return nil, backendErr("create volume", err, snapshotID)
	}
	return &CreateVolumeResponse{Volume: s.wireVolume(info, false)}, nil
}

// readTagSpecifications parses TagSpecification.N.ResourceType and
// TagSpecification.N.Tag.M.{Key,Value}; only resourceType may be tagged.
func readTagSpecifications(p *params, resourceType string) ([]cow.Tag, *APIError) {
	idx, e := p.indexes("TagSpecification")
	if e != nil {
		return nil, e
	}
	var tags []cow.Tag
	seen := false
	for _, i := range idx {
		m := member("TagSpecification", i)
		rt, _ := p.get(m + ".ResourceType")
		switch {
		case rt == "":
			return nil, invalidValue("Tag specification resource type must have a value")
		case rt != resourceType:
			return nil, invalidValue("'%s' is not a valid taggable resource type for this operation.", clip(rt))
		case seen:
			return nil, invalidValue("The same resource type may not be specified more than once in tag specifications")
		}
		seen = true
		tidx, e := p.indexes(m + ".Tag")
		if e != nil {
			return nil, e
		}
		for _, j := range tidx {
			t := member(m+".Tag", j)
			key, ok := p.get(t + ".Key")
			if !ok {
				return nil, missingParam(t + ".Key")
			}
			value, _ := p.get(t + ".Value")
			tags = append(tags, cow.Tag{Key: key, Value: value})
		}
	}
	return tags, nil
}

// wireVolume converts an engine volume to its wire form; describe adds
// the (empty) attachmentSet DescribeVolumes answers carry.
func (s *Server) wireVolume(v cow.VolumeInfo, describe bool) Volume {
	w := Volume{
		VolumeID:         v.ID,
		Size:             (v.Size + 1<<30 - 1) >> 30,
		SnapshotID:       v.SnapshotID,
		AvailabilityZone: s.zone,
		Status:           string(v.State),
		CreateTime:       Timestamp{v.CreateTime},
		VolumeType:       volumeType,
		Encrypted:        v.Encrypted,
		KmsKeyID:         v.KMSKeyARN,
		SizeBytes:        v.Size,
		BlockSize:        v.BlockSize,
	}
	if describe {
		w.Attachments = &AttachmentSet{}
	}
	for _, t := range v.Tags {
		w.Tags = append(w.Tags, Tag{Key: t.Key, Value: t.Value})
	}
	return w
}

// volumeKind describes volumes to the shared Describe machinery.
var volumeKind = &describeKind[Volume]{
	idParam:   "VolumeId",
	setName:   "volumeSet",
	noun:      "volume",
	maxLimit:  maxDescribeResults,
	validID:   cow.ValidVolumeID,
	malformed: malformedVolumeID,
	notFound:  volumeNotFound,
	id:        func(v *Volume) string { return v.VolumeID },
	tags:      func(v *Volume) []Tag { return v.Tags },
	attrs: map[string]func(v *Volume) string{
		"status":            func(v *Volume) string { return v.Status },
		"size":              func(v *Volume) string { return strconv.FormatInt(v.Size, 10) },
		"volume-id":         func(v *Volume) string { return v.VolumeID },
		"encrypted":         func(v *Volume) string { return strconv.FormatBool(v.Encrypted) },
		"snapshot-id":       func(v *Volume) string { return v.SnapshotID },
		"create-time":       func(v *Volume) string { return v.CreateTime.String() },
		"availability-zone": func(v *Volume) string { return v.AvailabilityZone },
		"volume-type":       func(v *Volume) string { return v.VolumeType },
	},
	lists: attachmentFilters,
}

// describeVolumes: VolumeId.N, Filter.N, MaxResults, NextToken, DryRun.
func (s *Server) describeVolumes(ctx context.Context, p *params) (response, error) {
	r, e := volumeKind.readAlone(p)
	if e != nil {
		return nil, e
	}
	infos, err := s.backend.DescribeVolumes(ctx)
	if err != nil {
		return nil, backendErr("describe volumes", err, "")
	}
	all := make([]Volume, 0, len(infos))
	for _, info := range infos {
		all = append(all, s.wireVolume(info, true))
	}
	if err := s.withAttachments(ctx, all); err != nil {
		return nil, err
	}
	page, next, e := volumeKind.answer(all, r, nil)
	if e != nil {
		return nil, e
	}
	return &DescribeVolumesResponse{VolumeSet: VolumeSet{Items: page}, NextToken: next}, nil
}

// deleteVolume: VolumeId, DryRun.
func (s *Server) deleteVolume(ctx context.Context, p *params) (response, error) {
	dryRun, e := p.boolean("DryRun")
	if e != nil {
		return nil, e
	}
	id, _ := p.get("VolumeId")
	if e := p.unknown(); e != nil {
		return nil, e
	}
	if id == "" {
		return nil, missingParam("VolumeId")
	}
	if !cow.ValidVolumeID(id) {
		return nil, malformedVolumeID(id)
	}
	if dryRun {
		infos, err := s.backend.DescribeVolumes(ctx)
		if err != nil {
			return nil, backendErr("describe volumes", err, id)
		}
		for _, v := range infos {
			if v.ID != id {
				continue
			}
			switch v.State {
			case cow.VolumeInUse:
				return nil, backendErr("delete volume", cow.ErrVolumeInUse, id)
			case cow.VolumeDeleting:
				return nil, volumeNotFound(id)
			}
			return nil, errDryRun()
		}
		return nil, volumeNotFound(id)
	}
	if err := s.backend.DeleteVolume(ctx, id); err != nil {
		return nil, backendErr("delete volume", err, id)
	}
	return &DeleteVolumeResponse{Return: true}, nil
}
