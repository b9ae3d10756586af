package cow

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cowvol/cowvol/meta"
)

// VolumeAttachment says where a volume is attached on this host: a loop
// device backed by the volume's file. The engine records the attachments
// AttachVolume makes (RecordAttachment), so that they are restored after a
// restart or re-created after a reboot; package attach finds the others
// (a loop device set up by hand on the volume's file).
type VolumeAttachment struct {
	VolumeID   string
	Device     string // /dev/loopN
	AttachTime time.Time
	// Recorded: made by AttachVolume (the engine has a record of it),
	// not by hand.
	Recorded bool
	// State is attached, or detaching (a forced detach of a device still
	// in use: the kernel releases it when its last user closes it).
	State string
}

// The attachment states, as EC2 names them.
const (
	AttachmentAttaching = "attaching"
	AttachmentAttached  = "attached"
	AttachmentDetaching = "detaching"
	AttachmentDetached  = "detached"
)

// RecordAttachment durably records (a nil) that volume id is attached to
// a's device (or not attached).
func (e *Engine) RecordAttachment(ctx context.Context, id string, a *VolumeAttachment) error {
	v, err := e.lookup(id)
	if err != nil {
		return err
	}
	var m *meta.VolumeAttachment
	if a != nil {
		m = &meta.VolumeAttachment{Device: a.Device, AttachTime: a.AttachTime.UTC().Truncate(time.Millisecond)}
	}
	if err := v.updateRecord(func(r *meta.VolumeRecord) { r.Attachment = m }, nil); err != nil {
		return fmt.Errorf("record the attachment of %s: %w", id, err)
	}
	return nil
}

// RecordedAttachments returns the attachments the engine has records of,
// by volume ID.
func (e *Engine) RecordedAttachments() map[string]VolumeAttachment {
	out := map[string]VolumeAttachment{}
	for _, v := range e.allVolumes() {
		v.mapMu.Lock()
		a, doomed := v.record.Attachment, v.doomed
		v.mapMu.Unlock()
		if a != nil && !doomed {
			out[v.id] = VolumeAttachment{VolumeID: v.id, Device: a.Device, AttachTime: a.AttachTime, Recorded: true, State: AttachmentAttached}
		}
	}
	return out
}

// Sentinel errors of attaching and detaching.
var (
	// ErrDeviceInUse: the device asked for is attached to something
	// else already.
	ErrDeviceInUse = errors.New("device in use")
	// ErrNotAttached: the volume is attached to no device.
	ErrNotAttached = errors.New("volume not attached")
)
