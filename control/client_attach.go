package control

import (
	"context"
	"net/url"
)

// AttachVolumeInput are the parameters of AttachVolume.
type AttachVolumeInput struct {
	VolumeID   string
	InstanceID string
	Device     string
	DryRun     bool
}

// AttachVolume attaches a volume to one of the daemon's host's loop devices.
func (c *Client) AttachVolume(ctx context.Context, in AttachVolumeInput) (VolumeAttachment, error) {
	f := url.Values{}
	setString(f, "VolumeId", in.VolumeID)
	setString(f, "InstanceId", in.InstanceID)
	setString(f, "Device", in.Device)
	setBool(f, "DryRun", in.DryRun)
	var out AttachVolumeResponse
	if err := c.call(ctx, "AttachVolume", f, &out); err != nil {
		return VolumeAttachment{}, err
	}
	return out.VolumeAttachment, nil
}

// DetachVolumeInput are the parameters of DetachVolume.
type DetachVolumeInput struct {
	VolumeID   string
	InstanceID string
	Device     string
	Force      bool
	DryRun     bool
}

// DetachVolume detaches a volume from its loop device.
func (c *Client) DetachVolume(ctx context.Context, in DetachVolumeInput) (VolumeAttachment, error) {
	f := url.Values{}
	setString(f, "VolumeId", in.VolumeID)
	setString(f, "InstanceId", in.InstanceID)
	setString(f, "Device", in.Device)
	setBool(f, "Force", in.Force)
	setBool(f, "DryRun", in.DryRun)
	var out DetachVolumeResponse
	if err := c.call(ctx, "DetachVolume", f, &out); err != nil {
		return VolumeAttachment{}, err
	}
	return out.VolumeAttachment, nil
}
