package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/cowvol/cowvol/control"
)

// volumeJSON is a volume as `aws ec2` prints it, plus cowvol's SizeBytes
// and BlockSize.
type volumeJSON struct {
	// Attachments is printed by describe-volumes only, as aws.
	Attachments        *[]attachmentJSON `json:"Attachments,omitempty"`
	AvailabilityZone   string            `json:"AvailabilityZone"`
	CreateTime         string            `json:"CreateTime"`
	Encrypted          bool              `json:"Encrypted"`
	KmsKeyID           string            `json:"KmsKeyId,omitempty"`
	Size               int64             `json:"Size"`
	SnapshotID         string            `json:"SnapshotId"`
	State              string            `json:"State"`
	VolumeID           string            `json:"VolumeId"`
	Tags               []tagJSON         `json:"Tags,omitempty"`
	VolumeType         string            `json:"VolumeType"`
	MultiAttachEnabled bool              `json:"MultiAttachEnabled"`
	SizeBytes          int64             `json:"SizeBytes"`
	BlockSize          int               `json:"BlockSize"`
}

type tagJSON struct {
	Key   string `json:"Key"`
	Value string `json:"Value"`
}

func volumeOutput(v control.Volume, describe bool) volumeJSON {
	out := volumeJSON{
		AvailabilityZone:   v.AvailabilityZone,
		CreateTime:         v.CreateTime.String(),
		Encrypted:          v.Encrypted,
		KmsKeyID:           v.KmsKeyID,
		Size:               v.Size,
		SnapshotID:         v.SnapshotID,
		State:              v.Status,
		VolumeID:           v.VolumeID,
		VolumeType:         v.VolumeType,
		MultiAttachEnabled: v.MultiAttachEnabled,
		SizeBytes:          v.SizeBytes,
		BlockSize:          v.BlockSize,
	}
	if describe {
		out.Attachments = attachmentsOutput(v.Attachments)
	}
	for _, t := range v.Tags {
		out.Tags = append(out.Tags, tagJSON{Key: t.Key, Value: t.Value})
	}
	return out
}

// printJSON prints v as the aws CLI does: 4-space indent, no HTML escaping.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "    ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// snapshotJSON is a snapshot as `aws ec2 create-snapshot` and
// `describe-snapshots` print it. The wire's statusMessage is StateMessage,
// as the aws CLI names it (the SDK's Snapshot.StateMessage).
type snapshotJSON struct {
	Description             string    `json:"Description"`
	Encrypted               bool      `json:"Encrypted"`
	KmsKeyID                string    `json:"KmsKeyId,omitempty"`
	DataEncryptionKeyID     string    `json:"DataEncryptionKeyId,omitempty"`
	OwnerID                 string    `json:"OwnerId"`
	Progress                string    `json:"Progress"`
	SnapshotID              string    `json:"SnapshotId"`
	StartTime               string    `json:"StartTime"`
	State                   string    `json:"State"`
	StateMessage            string    `json:"StateMessage,omitempty"`
	VolumeID                string    `json:"VolumeId"`
	VolumeSize              int64     `json:"VolumeSize"`
	StorageTier             string    `json:"StorageTier"`
	SseType                 string    `json:"SseType,omitempty"`
	Tags                    []tagJSON `json:"Tags,omitempty"`
	OutpostArn              string    `json:"OutpostArn,omitempty"`
	CompletionTime          string    `json:"CompletionTime,omitempty"`
	RestoreExpiryTime       string    `json:"RestoreExpiryTime,omitempty"`
	FullSnapshotSizeInBytes *int64    `json:"FullSnapshotSizeInBytes,omitempty"`
}

func snapshotOutput(s control.Snapshot) snapshotJSON {
	out := snapshotJSON{
		Description:             s.Description,
		Encrypted:               s.Encrypted,
		KmsKeyID:                s.KmsKeyID,
		DataEncryptionKeyID:     s.DataEncryptionKeyID,
		OwnerID:                 s.OwnerID,
		Progress:                s.Progress,
		SnapshotID:              s.SnapshotID,
		StartTime:               s.StartTime.String(),
		State:                   s.Status,
		StateMessage:            s.StatusMessage,
		VolumeID:                s.VolumeID,
		VolumeSize:              s.VolumeSize,
		StorageTier:             s.StorageTier,
		SseType:                 s.SseType,
		OutpostArn:              s.OutpostArn,
		FullSnapshotSizeInBytes: s.FullSnapshotSizeInBytes,
	}
	if s.RestoreExpiryTime != nil {
		out.RestoreExpiryTime = s.RestoreExpiryTime.String()
	}
	if s.CompletionTime != nil {
		out.CompletionTime = s.CompletionTime.String()
	}
	for _, t := range s.Tags {
		out.Tags = append(out.Tags, tagJSON{Key: t.Key, Value: t.Value})
	}
	return out
}
