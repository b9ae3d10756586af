package meta

import "time"

// VolumeModification records a volume's last ModifyVolume: its state
// (modifying, optimizing, completed), progress in percent, times, and the
// sizes before and after, in bytes.
type VolumeModification struct {
	State        string    `json:"state"`
	Progress     int       `json:"progress"`
	StartTime    time.Time `json:"start"`
	EndTime      time.Time `json:"end,omitzero"`
	OriginalSize int64     `json:"original_size"`
	TargetSize   int64     `json:"target_size"`
}

// VolumeAttachment records the loop device AttachVolume attached a volume
// to, and when. Device changes when the attachment is re-created after a
// reboot (the loop device the kernel hands out may differ).
type VolumeAttachment struct {
	Device     string    `json:"device"`
	AttachTime time.Time `json:"attach_time"`
}
