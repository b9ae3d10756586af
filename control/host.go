package control

import (
	"context"

	"github.com/cowvol/cowvol/cow"
)

// Host is the machine whose loop devices the daemon's volumes are
// attached to, standing for the EC2 instance of AttachVolume (package
// attach implements it). The control server consumes it for
// AttachVolume, DetachVolume, the attachments DescribeVolumes reports, and
// the refresh of attached devices after ModifyVolume.
type Host interface {
	// InstanceID is this host's instance ID ("i-" and 17 hex digits).
	InstanceID() string
	// Attachments lists the volumes attached on this host, by volume
	// ID: by AttachVolume, or by hand (losetup) on the volume's file.
	Attachments(ctx context.Context) (map[string]cow.VolumeAttachment, error)
	// Attach attaches volume id to a loop device (device: an EC2 device
	// name, or /dev/loopN for that loop device) and records it.
	Attach(ctx context.Context, id, device string) (cow.VolumeAttachment, error)
	// Detach detaches volume id from its loop device: refused
	// (cow.ErrVolumeInUse) while the device is mounted or open, unless
	// force.
	Detach(ctx context.Context, id string, force bool) (cow.VolumeAttachment, error)
	// VolumeGrew has the devices volume id is attached to see its new
	// size.
	VolumeGrew(ctx context.Context, id string) error
}

// HostAttachments returns this host's instance ID and the volumes attached
// on it (by volume ID), for the calls that act on "the volumes of an
// instance" (CreateSnapshots' InstanceSpecification, DescribeVolumeStatus).
// A daemon without a Host has no instance: "" and no attachments.
func (s *Server) HostAttachments(ctx context.Context) (instanceID string, attached map[string]cow.VolumeAttachment, err error) {
	if s.host == nil {
		return "", nil, nil
	}
	attached, err = s.host.Attachments(ctx)
	return s.host.InstanceID(), attached, err
}
