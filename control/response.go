package control

import (
	"encoding/xml"
	"fmt"
	"time"
)

// APIVersion is the EC2 API version the socket speaks.
const APIVersion = "2016-11-15"

// TimeFormat is how EC2 writes timestamps (always UTC, milliseconds).
const TimeFormat = "2006-01-02T15:04:05.000Z"

// Timestamp is a time on the wire, in TimeFormat.
type Timestamp struct{ time.Time }

// MarshalText writes t in TimeFormat, in UTC.
func (t Timestamp) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText reads an RFC 3339 time (TimeFormat is one).
func (t *Timestamp) UnmarshalText(b []byte) error {
	v, err := time.Parse(time.RFC3339Nano, string(b))
	if err != nil {
		return fmt.Errorf("timestamp %q: %w", b, err)
	}
	t.Time = v.UTC()
	return nil
}

// optionalTime is t on the wire, or nil (an element left out) when zero.
func optionalTime(t time.Time) *Timestamp {
	if t.IsZero() {
		return nil
	}
	return &Timestamp{t}
}

// String formats t in TimeFormat, in UTC.
func (t Timestamp) String() string { return t.UTC().Format(TimeFormat) }

// Tag is a key/value pair on the wire (an <item> of a <tagSet>).
type Tag struct {
	Key   string `xml:"key"`
	Value string `xml:"value"`
}

// TagSet is a <tagSet> of <item>s. It is its own type so that an empty
// set is omitted, as EC2 omits it (encoding/xml would write an empty
// <tagSet> for a tagSet>item path).
type TagSet []Tag

type tagItems struct {
	Items []Tag `xml:"item"`
}

// MarshalXML writes the tags as <item>s of start.
func (ts TagSet) MarshalXML(e *xml.Encoder, start xml.StartElement) error {
	return e.EncodeElement(tagItems{ts}, start)
}

// UnmarshalXML reads the <item>s of a <tagSet>.
func (ts *TagSet) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	var v tagItems
	if err := d.DecodeElement(&v, &start); err != nil {
		return err
	}
	*ts = v.Items
	return nil
}

// Volume is a volume as CreateVolume answers it and as an <item> of
// DescribeVolumes' <volumeSet>. SizeBytes and BlockSize are cowvol
// extensions (SDKs ignore elements they do not know).
type Volume struct {
	VolumeID         string    `xml:"volumeId"`
	Size             int64     `xml:"size"`       // GiB, rounded up
	SnapshotID       string    `xml:"snapshotId"` // empty element when none, as EC2
	AvailabilityZone string    `xml:"availabilityZone"`
	Status           string    `xml:"status"`
	CreateTime       Timestamp `xml:"createTime"`
	// Attachments is present (and empty) in DescribeVolumes answers,
	// absent in CreateVolume's.
	Attachments        *AttachmentSet `xml:"attachmentSet"`
	VolumeType         string         `xml:"volumeType"`
	Encrypted          bool           `xml:"encrypted"`
	KmsKeyID           string         `xml:"kmsKeyId,omitempty"`
	MultiAttachEnabled bool           `xml:"multiAttachEnabled"`
	Tags               TagSet         `xml:"tagSet,omitempty"`
	SizeBytes          int64          `xml:"sizeBytes"`
	BlockSize          int            `xml:"blockSize"`
}

// AttachmentSet lists a volume's EC2 attachments: the loop device it is
// attached to on this host, if any (attach_volume.go).
type AttachmentSet struct {
	Items []Attachment `xml:"item"`
}

// Attachment is an EC2 volume attachment.
type Attachment struct {
	VolumeID            string     `xml:"volumeId"`
	InstanceID          string     `xml:"instanceId"`
	Device              string     `xml:"device"`
	Status              string     `xml:"status"`
	AttachTime          *Timestamp `xml:"attachTime,omitempty"`
	DeleteOnTermination *bool      `xml:"deleteOnTermination,omitempty"`
}

// ResponseMetadata is the first element of every successful answer.
type ResponseMetadata struct {
	RequestID string `xml:"requestId"`
}

func (m *ResponseMetadata) setRequestID(id string) { m.RequestID = id }

// response is what an action handler answers.
type response interface{ setRequestID(string) }

// CreateVolumeResponse answers CreateVolume.
type CreateVolumeResponse struct {
	XMLName xml.Name `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ CreateVolumeResponse"`
	ResponseMetadata
	Volume
}

// DescribeVolumesResponse answers DescribeVolumes.
type DescribeVolumesResponse struct {
	XMLName xml.Name `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ DescribeVolumesResponse"`
	ResponseMetadata
	VolumeSet VolumeSet `xml:"volumeSet"`
	NextToken string    `xml:"nextToken,omitempty"`
}

// VolumeSet is the <volumeSet> of DescribeVolumes.
type VolumeSet struct {
	Items []Volume `xml:"item"`
}

// DeleteVolumeResponse answers DeleteVolume.
type DeleteVolumeResponse struct {
	XMLName xml.Name `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ DeleteVolumeResponse"`
	ResponseMetadata
	Return bool `xml:"return"`
}

// Snapshot is a snapshot as CreateSnapshot answers it and as an <item> of
// DescribeSnapshots' <snapshotSet>, with EC2's element names and order.
// Optional elements are omitted when unset, as EC2 omits them: kmsKeyId
// and dataEncryptionKeyId come with encryption (the latter from
// DescribeSnapshots only).
type Snapshot struct {
	SnapshotID              string     `xml:"snapshotId"`
	VolumeID                string     `xml:"volumeId"`
	Status                  string     `xml:"status"`
	StatusMessage           string     `xml:"statusMessage,omitempty"` // DescribeSnapshots only
	StartTime               Timestamp  `xml:"startTime"`
	Progress                string     `xml:"progress"`
	OwnerID                 string     `xml:"ownerId"`
	VolumeSize              int64      `xml:"volumeSize"` // GiB, rounded up
	Description             string     `xml:"description"`
	Encrypted               bool       `xml:"encrypted"`
	KmsKeyID                string     `xml:"kmsKeyId,omitempty"`
	DataEncryptionKeyID     string     `xml:"dataEncryptionKeyId,omitempty"`
	StorageTier             string     `xml:"storageTier"`
	SseType                 string     `xml:"sseType,omitempty"`
	RestoreExpiryTime       *Timestamp `xml:"restoreExpiryTime,omitempty"` // temporarily restored from the archive tier
	Tags                    TagSet     `xml:"tagSet,omitempty"`
	OutpostArn              string     `xml:"outpostArn,omitempty"`
	CompletionTime          *Timestamp `xml:"completionTime,omitempty"`
	FullSnapshotSizeInBytes *int64     `xml:"fullSnapshotSizeInBytes,omitempty"`
}

// CreateSnapshotResponse answers CreateSnapshot.
type CreateSnapshotResponse struct {
	XMLName xml.Name `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ CreateSnapshotResponse"`
	ResponseMetadata
	Snapshot
}

// DescribeSnapshotsResponse answers DescribeSnapshots.
type DescribeSnapshotsResponse struct {
	XMLName xml.Name `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ DescribeSnapshotsResponse"`
	ResponseMetadata
	SnapshotSet SnapshotSet `xml:"snapshotSet"`
	NextToken   string      `xml:"nextToken,omitempty"`
}

// SnapshotSet is the <snapshotSet> of DescribeSnapshots.
type SnapshotSet struct {
	Items []Snapshot `xml:"item"`
}

// CopySnapshotResponse answers CopySnapshot.
type CopySnapshotResponse struct {
	XMLName xml.Name `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ CopySnapshotResponse"`
	ResponseMetadata
	SnapshotID string `xml:"snapshotId"`
	Tags       TagSet `xml:"tagSet,omitempty"`
}

// DeleteSnapshotResponse answers DeleteSnapshot.
type DeleteSnapshotResponse struct {
	XMLName xml.Name `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ DeleteSnapshotResponse"`
	ResponseMetadata
	Return bool `xml:"return"`
}
