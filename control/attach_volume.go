package control

import (
	"context"
	"encoding/xml"
	"errors"
	"regexp"
	"strings"

	"github.com/cowvol/cowvol/cow"
)

// AttachVolume and DetachVolume attach a volume to one of this host's loop
// devices, with direct I/O, and detach it; the Host does it, the engine
// records it (restored after a restart, re-created after a reboot).
//
//   - InstanceId must be this host's (Host.InstanceID: derived from
//     /etc/machine-id); another is InvalidInstanceID.NotFound.
//   - Device: what EC2 accepts for a Linux instance (/dev/sdf, /dev/xvdf,
//     sdf...) attaches to the first free loop device; /dev/loopN asks for
//     that one (InvalidParameterValue if it is in use). The answer and
//     DescribeVolumes report the real /dev/loopN.
//   - DeleteOnTermination is always false: there is no instance to
//     terminate.
//   - DetachVolume refuses a device that is mounted or held open
//     (VolumeInUse) unless Force, with which the kernel lets go of the
//     device when its last user does (the attachment shows detaching
//     until then).

// Attachment error codes.
const (
	CodeInvalidInstanceIDMalformed = "InvalidInstanceID.Malformed"
	CodeInvalidInstanceIDNotFound  = "InvalidInstanceID.NotFound"
	CodeInvalidAttachmentNotFound  = "InvalidAttachment.NotFound"
)

// AttachVolumeResponse answers AttachVolume.
type AttachVolumeResponse struct {
	XMLName xml.Name `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ AttachVolumeResponse"`
	ResponseMetadata
	VolumeAttachment
}

// DetachVolumeResponse answers DetachVolume.
type DetachVolumeResponse struct {
	XMLName xml.Name `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ DetachVolumeResponse"`
	ResponseMetadata
	VolumeAttachment
}

// VolumeAttachment is the body of AttachVolume's and DetachVolume's
// answers, as EC2's.
type VolumeAttachment struct {
	VolumeID            string    `xml:"volumeId"`
	InstanceID          string    `xml:"instanceId"`
	Device              string    `xml:"device"`
	Status              string    `xml:"status"`
	AttachTime          Timestamp `xml:"attachTime"`
	DeleteOnTermination bool      `xml:"deleteOnTermination"`
}

// ec2DeviceName matches the device names EC2 takes for a Linux instance.
var ec2DeviceName = regexp.MustCompile(`^(/dev/)?(sd|xvd|hd)[a-z]{1,2}[0-9]{0,2}$`)

// loopDeviceName matches a loop device asked for by name.
var loopDeviceName = regexp.MustCompile(`^/dev/loop[0-9]{1,7}$`)

// instanceIDForm matches an instance ID: i- and 8 or 17 hex digits.
var instanceIDForm = regexp.MustCompile(`^i-([0-9a-f]{8}|[0-9a-f]{17})$`)

func noHost() *APIError {
	return apiErr(CodeUnsupportedOperation, "This daemon attaches no volumes: the host has no machine ID (/etc/machine-id) to name its instance.")
}

// checkInstance checks an InstanceId parameter against this host's.
func (s *Server) checkInstance(id string) *APIError {
	switch {
	case !instanceIDForm.MatchString(id):
		return apiErr(CodeInvalidInstanceIDMalformed, "Invalid id: %q (expecting \"i-...\")", clip(id))
	case id != s.host.InstanceID():
		return apiErr(CodeInvalidInstanceIDNotFound, "The instance ID '%s' does not exist (this host is %s).", id, s.host.InstanceID())
	}
	return nil
}

// attachVolume: VolumeId, InstanceId, Device, DryRun.
func (s *Server) attachVolume(ctx context.Context, p *params) (response, error) {
	dryRun, e := p.boolean("DryRun")
	if e != nil {
		return nil, e
	}
	id, _ := p.get("VolumeId")
	instance, _ := p.get("InstanceId")
	device, _ := p.get("Device")
	if e := p.unknown(); e != nil {
		return nil, e
	}
	switch {
	case id == "":
		return nil, missingParam("VolumeId")
	case instance == "":
		return nil, missingParam("InstanceId")
	case device == "":
		return nil, missingParam("Device")
	case !cow.ValidVolumeID(id):
		return nil, malformedVolumeID(id)
	case !ec2DeviceName.MatchString(device) && !loopDeviceName.MatchString(device):
		return nil, invalidValue("Value (%s) for parameter device is invalid. %s is not a valid EBS device name.", clip(device), clip(device))
	case s.host == nil:
		return nil, noHost()
	}
	if e := s.checkInstance(instance); e != nil {
		return nil, e
	}
	if dryRun {
		if err := s.checkAttachable(ctx, id); err != nil {
			return nil, err
		}
		return nil, errDryRun()
	}
	a, err := s.host.Attach(ctx, id, device)
	if err != nil {
		return nil, s.attachmentErr("attach volume", err, id, device)
	}
	return &AttachVolumeResponse{VolumeAttachment: s.wireAttachment(a)}, nil
}

// checkAttachable answers a dry run of AttachVolume: the volume exists and
// is attached nowhere.
func (s *Server) checkAttachable(ctx context.Context, id string) error {
	if _, err := s.volumeInfo(ctx, id); err != nil {
		return err
	}
	attached, err := s.host.Attachments(ctx)
	if err != nil {
		return backendErr("list attachments", err, id)
	}
	if _, ok := attached[id]; ok {
		return alreadyAttached(id)
	}
	return nil
}

// volumeInfo describes volume id, or answers InvalidVolume.NotFound.
func (s *Server) volumeInfo(ctx context.Context, id string) (cow.VolumeInfo, error) {
	infos, err := s.backend.DescribeVolumes(ctx)
	if err != nil {
		return cow.VolumeInfo{}, backendErr("describe volumes", err, id)
	}
	for _, v := range infos {
		if v.ID == id && v.State != cow.VolumeDeleting {
			return v, nil
		}
	}
	return cow.VolumeInfo{}, volumeNotFound(id)
}

func alreadyAttached(id string) *APIError {
	return apiErr(CodeVolumeInUse, "%s is already attached to an instance", id)
}

// attachmentErr translates the Host's errors.
func (s *Server) attachmentErr(op string, err error, id, device string) error {
	switch {
	case errors.Is(err, cow.ErrDeviceInUse):
		return invalidValue("Invalid value '%s' for unixDevice. Attachment point %s is already in use (%s).", clip(device), clip(device),
			detail(err, cow.ErrDeviceInUse))
	case errors.Is(err, cow.ErrVolumeInUse) && op == "attach volume":
		return alreadyAttached(id)
	case errors.Is(err, cow.ErrVolumeInUse):
		return apiErr(CodeVolumeInUse, "Volume %s cannot be detached: %s. Unmount it and close it, or detach with Force.",
			id, detail(err, cow.ErrVolumeInUse))
	case errors.Is(err, cow.ErrNotAttached):
		return apiErr(CodeIncorrectState, "Volume '%s' is in the 'available' state.", id)
	}
	return backendErr(op, err, id)
}

// detachVolume: VolumeId, InstanceId, Device, Force, DryRun.
func (s *Server) detachVolume(ctx context.Context, p *params) (response, error) {
	dryRun, e := p.boolean("DryRun")
	if e != nil {
		return nil, e
	}
	force, e := p.boolean("Force")
	if e != nil {
		return nil, e
	}
	id, _ := p.get("VolumeId")
	instance, hasInstance := p.get("InstanceId")
	device, hasDevice := p.get("Device")
	if e := p.unknown(); e != nil {
		return nil, e
	}
	switch {
	case id == "":
		return nil, missingParam("VolumeId")
	case !cow.ValidVolumeID(id):
		return nil, malformedVolumeID(id)
	case s.host == nil:
		return nil, noHost()
	}
	if hasInstance {
		if e := s.checkInstance(instance); e != nil {
			return nil, e
		}
	}
	if _, err := s.volumeInfo(ctx, id); err != nil {
		return nil, err
	}
	attached, err := s.host.Attachments(ctx)
	if err != nil {
		return nil, backendErr("list attachments", err, id)
	}
	a, ok := attached[id]
	switch {
	case !ok:
		return nil, apiErr(CodeIncorrectState, "Volume '%s' is in the 'available' state.", id)
	case hasDevice && device != a.Device && !strings.HasSuffix(a.Device, "/"+device):
		return nil, apiErr(CodeInvalidAttachmentNotFound, "The volume %s is not attached to instance %s at device %s (it is at %s).",
			id, s.host.InstanceID(), clip(device), a.Device)
	case dryRun:
		return nil, errDryRun()
	}
	done, err := s.host.Detach(ctx, id, force)
	if err != nil {
		return nil, s.attachmentErr("detach volume", err, id, a.Device)
	}
	return &DetachVolumeResponse{VolumeAttachment: s.wireAttachment(done)}, nil
}

func (s *Server) wireAttachment(a cow.VolumeAttachment) VolumeAttachment {
	return VolumeAttachment{VolumeID: a.VolumeID, InstanceID: s.host.InstanceID(), Device: a.Device, Status: a.State,
		AttachTime: Timestamp{a.AttachTime}}
}

// withAttachments fills the attachment sets of DescribeVolumes' volumes
// from the host; an attached volume is in-use.
func (s *Server) withAttachments(ctx context.Context, vols []Volume) error {
	_, attached, err := s.HostAttachments(ctx)
	if err != nil {
		return backendErr("list attachments", err, "")
	}
	for i := range vols {
		a, ok := attached[vols[i].VolumeID]
		if !ok {
			continue
		}
		vols[i].Attachments = &AttachmentSet{Items: []Attachment{{
			VolumeID: a.VolumeID, InstanceID: s.host.InstanceID(), Device: a.Device, Status: a.State,
			AttachTime: &Timestamp{a.AttachTime}, DeleteOnTermination: new(bool),
		}}}
		if vols[i].Status == string(cow.VolumeAvailable) {
			vols[i].Status = string(cow.VolumeInUse)
		}
	}
	return nil
}

// attachmentFilters are DescribeVolumes' attachment.* filters.
var attachmentFilters = map[string]func(*Volume) []string{
	"attachment.instance-id": attachmentField(func(a Attachment) string { return a.InstanceID }),
	"attachment.device":      attachmentField(func(a Attachment) string { return a.Device }),
	"attachment.status":      attachmentField(func(a Attachment) string { return a.Status }),
	"attachment.attach-time": attachmentField(func(a Attachment) string {
		if a.AttachTime == nil {
			return ""
		}
		return a.AttachTime.String()
	}),
	"attachment.delete-on-termination": attachmentField(func(a Attachment) string { return "false" }),
}

func attachmentField(f func(Attachment) string) func(*Volume) []string {
	return func(v *Volume) []string {
		if v.Attachments == nil {
			return nil
		}
		return collect(v.Attachments.Items, f)
	}
}
