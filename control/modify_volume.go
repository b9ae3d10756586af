package control

import (
	"context"
	"encoding/xml"
	"errors"
	"strconv"

	"github.com/cowvol/cowvol/cow"
)

// ModifyVolume grows a volume online, as EC2's Elastic Volumes do:
//
//   - Size (GiB) larger than the volume's: the engine records the new size
//     and the FUSE file grows; the Host then refreshes the capacity of the
//     loop devices backed by the volume (LOOP_SET_CAPACITY), so that
//     `resize2fs` grows a mounted file system. A smaller Size is refused
//     with InvalidParameterValue ("New size cannot be smaller than existing
//     size"), as EC2 refuses it.
//   - VolumeType "standard" (the type cowvol volumes have) and
//     MultiAttachEnabled false change nothing and are accepted; another
//     type, MultiAttachEnabled true, Iops and Throughput are refused as EC2
//     refuses them for a standard volume (InvalidParameterValue,
//     InvalidParameterCombination).
//   - A request that changes nothing is refused with InvalidParameterValue
//     (cowvol's choice).
//   - EC2 allows one modification per volume every 6 hours
//     (VolumeModificationRateExceeded); cowvol has no such limit, only a
//     modification not completed yet is refused (IncorrectModificationState).
//
// The answer carries the modification in state modifying, progress 0, as
// EC2's does; DescribeVolumesModifications shows it completed once the
// host has seen the new size (modifying -> optimizing -> completed, each
// step durable: the last modification of each volume survives restarts).

// CodeIncorrectModificationState answers a modification of a volume whose
// last one has not completed.
const CodeIncorrectModificationState = "IncorrectModificationState"

// volumeModifier is what ModifyVolume and DescribeVolumesModifications need
// from the engine; *cow.Engine has it.
type volumeModifier interface {
	VolumeInfo(id string) (cow.VolumeInfo, error)
	ModifyVolumeSize(ctx context.Context, id string, size int64) (cow.VolumeModification, error)
	FinishVolumeModification(ctx context.Context, id string) (cow.VolumeModification, error)
	VolumeModifications(ctx context.Context) ([]cow.VolumeModification, error)
}

var _ volumeModifier = (*cow.Engine)(nil)

// ModifyVolumeResponse answers ModifyVolume.
type ModifyVolumeResponse struct {
	XMLName xml.Name `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ ModifyVolumeResponse"`
	ResponseMetadata
	VolumeModification VolumeModification `xml:"volumeModification"`
}

// VolumeModification is a volume's modification, with EC2's element names.
type VolumeModification struct {
	VolumeID                   string     `xml:"volumeId"`
	ModificationState          string     `xml:"modificationState"`
	StatusMessage              string     `xml:"statusMessage,omitempty"`
	TargetSize                 int64      `xml:"targetSize"` // GiB
	TargetVolumeType           string     `xml:"targetVolumeType"`
	TargetMultiAttachEnabled   bool       `xml:"targetMultiAttachEnabled"`
	OriginalSize               int64      `xml:"originalSize"` // GiB
	OriginalVolumeType         string     `xml:"originalVolumeType"`
	OriginalMultiAttachEnabled bool       `xml:"originalMultiAttachEnabled"`
	Progress                   int64      `xml:"progress"`
	StartTime                  Timestamp  `xml:"startTime"`
	EndTime                    *Timestamp `xml:"endTime,omitempty"`
}

// modifyVolumeRequest is ModifyVolume's parameters, read and checked.
type modifyVolumeRequest struct {
	id      string
	sizeGiB int64
	hasSize bool
	dryRun  bool
}

// modifyVolume: VolumeId, Size (GiB), VolumeType, Iops, Throughput,
// MultiAttachEnabled, DryRun.
func (s *Server) modifyVolume(ctx context.Context, p *params) (response, error) {
	m, e := optionalBackend[volumeModifier](s, "volume modifications")
	if e != nil {
		return nil, e
	}
	r, e := readModifyVolume(p)
	if e != nil {
		return nil, e
	}
	vi, err := m.VolumeInfo(r.id)
	if err != nil {
		return nil, backendErr("modify volume", err, r.id)
	}
	if vi.State == cow.VolumeDeleting {
		return nil, volumeNotFound(r.id)
	}
	switch {
	case !r.hasSize || r.sizeGiB<<30 == vi.Size:
		return nil, invalidValue("The modification changes nothing: volume %s is %d GiB, type %s, without Multi-Attach.",
			r.id, gib(vi.Size), volumeType)
	case r.sizeGiB<<30 < vi.Size:
		return nil, invalidValue("New size cannot be smaller than existing size")
	}
	if mods, err := m.VolumeModifications(ctx); err == nil {
		for _, mod := range mods {
			if mod.VolumeID == r.id && mod.State != cow.ModificationCompleted {
				return nil, incorrectModificationState(r.id, mod.State)
			}
		}
	}
	if r.dryRun {
		return nil, errDryRun()
	}
	mod, err := m.ModifyVolumeSize(ctx, r.id, r.sizeGiB<<30)
	if errors.Is(err, cow.ErrModificationInProgress) {
		return nil, incorrectModificationState(r.id, cow.ModificationModifying)
	}
	if err != nil {
		return nil, backendErr("modify volume", err, r.id)
	}
	s.finishModification(ctx, m, r.id)
	return &ModifyVolumeResponse{VolumeModification: wireModification(mod)}, nil
}

// finishModification has the host see volume id's new size, then completes
// the modification. A host that fails is logged: the volume has its new
// size, and the devices get it with the next refresh (losetup -c).
func (s *Server) finishModification(ctx context.Context, m volumeModifier, id string) {
	ctx = context.WithoutCancel(ctx)
	if s.host != nil {
		if err := s.host.VolumeGrew(ctx, id); err != nil {
			s.log.Error("the volume grew; refreshing the size of its devices failed (run `losetup -c DEVICE`)", "volume", id, logErr, err)
		}
	}
	if _, err := m.FinishVolumeModification(ctx, id); err != nil {
		s.log.Error("the volume grew; recording its modification completed failed", "volume", id, logErr, err)
	}
}

func incorrectModificationState(id string, state cow.ModificationState) *APIError {
	return apiErr(CodeIncorrectModificationState, "Volume %s cannot be modified in %s state.", id, state)
}

func readModifyVolume(p *params) (modifyVolumeRequest, *APIError) {
	var r modifyVolumeRequest
	var e *APIError
	if r.dryRun, e = p.boolean("DryRun"); e != nil {
		return r, e
	}
	r.id, _ = p.get("VolumeId")
	if r.sizeGiB, r.hasSize, e = p.integer("Size"); e != nil {
		return r, e
	}
	vtype, hasType := p.get("VolumeType")
	_, hasIops, e := p.integer("Iops")
	if e != nil {
		return r, e
	}
	_, hasThroughput, e := p.integer("Throughput")
	if e != nil {
		return r, e
	}
	multiAttach, e := p.boolean("MultiAttachEnabled")
	if e != nil {
		return r, e
	}
	if e := p.unknown(); e != nil {
		return r, e
	}
	switch {
	case r.id == "":
		return r, missingParam("VolumeId")
	case !cow.ValidVolumeID(r.id):
		return r, malformedVolumeID(r.id)
	case hasType && vtype != volumeType:
		return r, invalidValue("The volume type '%s' is not supported: cowvol volumes are '%s'.", clip(vtype), volumeType)
	case hasIops:
		return r, apiErr(CodeInvalidParameterCombination, "The parameter iops is not supported for %s volumes.", volumeType)
	case hasThroughput:
		return r, apiErr(CodeInvalidParameterCombination, "The parameter throughput is not supported for %s volumes.", volumeType)
	case multiAttach:
		return r, apiErr(CodeInvalidParameterCombination, "Multi-Attach is supported only for io1 and io2 volumes.")
	case r.hasSize && (r.sizeGiB < 1 || r.sizeGiB > maxVolumeSizeGiB):
		return r, invalidValue("Volume of %d GiB is out of range: the size must be from 1 to %d GiB.", r.sizeGiB, maxVolumeSizeGiB)
	}
	return r, nil
}

// gib is a size in bytes in GiB, rounded up, as EC2 and EBS report sizes.
func gib(bytes int64) int64 { return (bytes + 1<<30 - 1) >> 30 }

func wireModification(m cow.VolumeModification) VolumeModification {
	w := VolumeModification{
		VolumeID:           m.VolumeID,
		ModificationState:  string(m.State),
		TargetSize:         gib(m.TargetSize),
		TargetVolumeType:   volumeType,
		OriginalSize:       gib(m.OriginalSize),
		OriginalVolumeType: volumeType,
		Progress:           int64(m.Progress),
		StartTime:          Timestamp{m.StartTime},
	}
	if !m.EndTime.IsZero() {
		w.EndTime = &Timestamp{m.EndTime}
	}
	return w
}

// DescribeVolumesModificationsResponse answers DescribeVolumesModifications.
type DescribeVolumesModificationsResponse struct {
	XMLName xml.Name `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ DescribeVolumesModificationsResponse"`
	ResponseMetadata
	VolumeModificationSet VolumeModificationSet `xml:"volumeModificationSet"`
	NextToken             string                `xml:"nextToken,omitempty"`
}

// VolumeModificationSet is the <volumeModificationSet>.
type VolumeModificationSet struct {
	Items []VolumeModification `xml:"item"`
}

// CodeInvalidVolumeModificationNotFound answers a DescribeVolumesModifications
// naming a volume that was never modified.
const CodeInvalidVolumeModificationNotFound = "InvalidVolumeModification.NotFound"

const maxModificationResults = 500

// modificationKind describes modifications to the shared Describe machinery,
// with EC2's filters.
var modificationKind = &describeKind[VolumeModification]{
	idParam:  "VolumeId",
	setName:  "volumeSet",
	noun:     "volume modification",
	maxLimit: maxModificationResults,
	validID:  cow.ValidVolumeID,
	malformed: func(id string) *APIError {
		return malformedVolumeID(id)
	},
	notFound: func(id string) *APIError {
		return apiErr(CodeInvalidVolumeModificationNotFound, "Modification for volume '%s' does not exist.", clip(id))
	},
	id: func(m *VolumeModification) string { return m.VolumeID },
	attrs: map[string]func(*VolumeModification) string{
		"volume-id":                     func(m *VolumeModification) string { return m.VolumeID },
		"modification-state":            func(m *VolumeModification) string { return m.ModificationState },
		"target-size":                   func(m *VolumeModification) string { return strconv.FormatInt(m.TargetSize, 10) },
		"original-size":                 func(m *VolumeModification) string { return strconv.FormatInt(m.OriginalSize, 10) },
		"target-volume-type":            func(m *VolumeModification) string { return m.TargetVolumeType },
		"original-volume-type":          func(m *VolumeModification) string { return m.OriginalVolumeType },
		"target-multi-attach-enabled":   func(m *VolumeModification) string { return strconv.FormatBool(m.TargetMultiAttachEnabled) },
		"original-multi-attach-enabled": func(m *VolumeModification) string { return strconv.FormatBool(m.OriginalMultiAttachEnabled) },
		"start-time":                    func(m *VolumeModification) string { return m.StartTime.String() },
	},
}

// describeVolumesModifications: VolumeId.N, Filter.N, MaxResults,
// NextToken, DryRun. Each volume's last modification.
func (s *Server) describeVolumesModifications(ctx context.Context, p *params) (response, error) {
	m, e := optionalBackend[volumeModifier](s, "volume modifications")
	if e != nil {
		return nil, e
	}
	r, e := modificationKind.read(p)
	if e != nil {
		return nil, e
	}
	if e := p.unknown(); e != nil {
		return nil, e
	}
	for _, id := range r.ids {
		if _, err := m.VolumeInfo(id); err != nil {
			return nil, backendErr("describe volumes modifications", err, id)
		}
	}
	if r.dryRun {
		return nil, errDryRun()
	}
	mods, err := m.VolumeModifications(ctx)
	if err != nil {
		return nil, backendErr("describe volumes modifications", err, "")
	}
	all := make([]VolumeModification, 0, len(mods))
	for _, mod := range mods {
		all = append(all, wireModification(mod))
	}
	page, next, e := modificationKind.answer(all, r, nil)
	if e != nil {
		return nil, e
	}
	return &DescribeVolumesModificationsResponse{VolumeModificationSet: VolumeModificationSet{Items: page}, NextToken: next}, nil
}
