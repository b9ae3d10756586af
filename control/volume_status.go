package control

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"strconv"

	"github.com/cowvol/cowvol/cow"
)

// DescribeVolumeStatus reports each volume's health as EC2's volume status
// checks do. A volume restored from a snapshot whose data cannot be read
// (corrupt or missing objects) is impaired: its io-enabled check fails
// (reads of the blocks that need those objects fail) and an event of type
// potential-data-inconsistency per object names the snapshot, the object
// and the error. Every other volume is ok. DescribeVolumes keeps reporting
// the volume's state (available, in-use): EC2's volume states have no
// impaired.

// The checks, statuses and event type DescribeVolumeStatus reports.
const (
	volumeCheckIOEnabled     = "io-enabled"
	volumeCheckIOPerformance = "io-performance"
	checkPassed              = "passed"
	checkFailed              = "failed"
	checkNotApplicable       = "not-applicable" // io-performance of volumes without provisioned IOPS
	eventDataInconsistency   = "potential-data-inconsistency"
	maxVolumeStatusResults   = 1000
)

// DescribeVolumeStatusResponse answers DescribeVolumeStatus.
type DescribeVolumeStatusResponse struct {
	XMLName xml.Name `xml:"http://ec2.amazonaws.com/doc/2016-11-15/ DescribeVolumeStatusResponse"`
	ResponseMetadata
	VolumeStatusSet VolumeStatusSet `xml:"volumeStatusSet"`
	NextToken       string          `xml:"nextToken,omitempty"`
}

// VolumeStatusSet is the <volumeStatusSet> of DescribeVolumeStatus.
type VolumeStatusSet struct {
	Items []VolumeStatusItem `xml:"item"`
}

// VolumeStatusItem is one volume's status, with EC2's element names. The
// events and actions sets are always there, empty when there are none.
type VolumeStatusItem struct {
	VolumeID         string              `xml:"volumeId"`
	AvailabilityZone string              `xml:"availabilityZone"`
	VolumeStatus     VolumeStatusInfo    `xml:"volumeStatus"`
	Events           VolumeStatusEvents  `xml:"eventsSet"`
	Actions          VolumeStatusActions `xml:"actionsSet"`
}

// VolumeStatusInfo is a volume's overall status (ok, impaired) and its checks.
type VolumeStatusInfo struct {
	Status  string              `xml:"status"`
	Details VolumeStatusDetails `xml:"details"`
}

// VolumeStatusDetails are the <item>s of <details>.
type VolumeStatusDetails struct {
	Items []VolumeStatusDetail `xml:"item"`
}

// VolumeStatusDetail is one check: io-enabled (passed, failed) or
// io-performance (not-applicable).
type VolumeStatusDetail struct {
	Name   string `xml:"name"`
	Status string `xml:"status"`
}

// VolumeStatusEvents are the <item>s of <eventsSet>.
type VolumeStatusEvents struct {
	Items []VolumeStatusEvent `xml:"item"`
}

// VolumeStatusEvent is an event of a volume: here, an object of its
// snapshot that cannot be read, since NotBefore (it has no end yet).
type VolumeStatusEvent struct {
	EventID     string     `xml:"eventId"`
	EventType   string     `xml:"eventType"`
	Description string     `xml:"description"`
	NotBefore   Timestamp  `xml:"notBefore"`
	NotAfter    *Timestamp `xml:"notAfter,omitempty"`
}

// VolumeStatusActions are the <item>s of <actionsSet>. cowvol never asks
// for one (there is no EnableVolumeIO to call: I/O is never disabled), so
// it is always empty.
type VolumeStatusActions struct {
	Items []VolumeStatusAction `xml:"item"`
}

// VolumeStatusAction is an action EC2 asks of the user for an event.
type VolumeStatusAction struct {
	Code        string `xml:"code"`
	EventID     string `xml:"eventId"`
	EventType   string `xml:"eventType"`
	Description string `xml:"description"`
}

// volumeStatusKind describes volume statuses to the shared Describe
// machinery, with EC2's filters for DescribeVolumeStatus (no tag filters).
var volumeStatusKind = &describeKind[VolumeStatusItem]{
	idParam:   "VolumeId",
	setName:   "volumeSet",
	noun:      "volume",
	maxLimit:  maxVolumeStatusResults,
	validID:   cow.ValidVolumeID,
	malformed: malformedVolumeID,
	notFound:  volumeNotFound,
	id:        func(it *VolumeStatusItem) string { return it.VolumeID },
	attrs: map[string]func(*VolumeStatusItem) string{
		"volume-status.status": func(it *VolumeStatusItem) string { return it.VolumeStatus.Status },
		"availability-zone":    func(it *VolumeStatusItem) string { return it.AvailabilityZone },
	},
	lists: map[string]func(*VolumeStatusItem) []string{
		"volume-status.details-name": func(it *VolumeStatusItem) []string {
			return collect(it.VolumeStatus.Details.Items, func(d VolumeStatusDetail) string { return d.Name })
		},
		"volume-status.details-status": func(it *VolumeStatusItem) []string {
			return collect(it.VolumeStatus.Details.Items, func(d VolumeStatusDetail) string { return d.Status })
		},
		"event.description": func(it *VolumeStatusItem) []string {
			return collect(it.Events.Items, func(e VolumeStatusEvent) string { return e.Description })
		},
		"event.event-id": func(it *VolumeStatusItem) []string {
			return collect(it.Events.Items, func(e VolumeStatusEvent) string { return e.EventID })
		},
		"event.event-type": func(it *VolumeStatusItem) []string {
			return collect(it.Events.Items, func(e VolumeStatusEvent) string { return e.EventType })
		},
		"event.not-before": func(it *VolumeStatusItem) []string {
			return collect(it.Events.Items, func(e VolumeStatusEvent) string { return e.NotBefore.String() })
		},
		"event.not-after": func(it *VolumeStatusItem) []string {
			return collect(it.Events.Items, func(e VolumeStatusEvent) string {
				if e.NotAfter == nil {
					return ""
				}
				return e.NotAfter.String()
			})
		},
		"action.code": func(it *VolumeStatusItem) []string {
			return collect(it.Actions.Items, func(a VolumeStatusAction) string { return a.Code })
		},
		"action.description": func(it *VolumeStatusItem) []string {
			return collect(it.Actions.Items, func(a VolumeStatusAction) string { return a.Description })
		},
		"action.event-id": func(it *VolumeStatusItem) []string {
			return collect(it.Actions.Items, func(a VolumeStatusAction) string { return a.EventID })
		},
	},
}

// collect maps items to strings, for the list filters.
func collect[T any](items []T, f func(T) string) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = f(it)
	}
	return out
}

// describeVolumeStatus: VolumeId.N, Filter.N, MaxResults (5 or more; pages of at most 1000),
// NextToken, DryRun.
func (s *Server) describeVolumeStatus(ctx context.Context, p *params) (response, error) {
	r, e := volumeStatusKind.readAlone(p)
	if e != nil {
		return nil, e
	}
	infos, err := s.backend.DescribeVolumes(ctx)
	if err != nil {
		return nil, backendErr("describe volumes", err, "")
	}
	snaps, err := s.backend.DescribeSnapshots(ctx)
	if err != nil {
		return nil, backendErr("describe snapshots", err, "")
	}
	retrying := flushEvents(snaps) // flush_events.go
	all := make([]VolumeStatusItem, 0, len(infos))
	for _, info := range infos {
		it := s.wireVolumeStatus(info)
		it.Events.Items = append(it.Events.Items, retrying[info.ID]...)
		all = append(all, it)
	}
	page, next, e := volumeStatusKind.answer(all, r, nil)
	if e != nil {
		return nil, e
	}
	return &DescribeVolumeStatusResponse{VolumeStatusSet: VolumeStatusSet{Items: page}, NextToken: next}, nil
}

// wireVolumeStatus is volume v's status on the wire.
func (s *Server) wireVolumeStatus(v cow.VolumeInfo) VolumeStatusItem {
	it := VolumeStatusItem{VolumeID: v.ID, AvailabilityZone: s.zone}
	ioEnabled := checkPassed
	it.VolumeStatus.Status = string(cow.VolumeStatusOK)
	if v.Status == cow.VolumeStatusImpaired {
		ioEnabled = checkFailed
		it.VolumeStatus.Status = string(cow.VolumeStatusImpaired)
	}
	it.VolumeStatus.Details.Items = []VolumeStatusDetail{
		{Name: volumeCheckIOEnabled, Status: ioEnabled},
		{Name: volumeCheckIOPerformance, Status: checkNotApplicable},
	}
	for i, f := range v.Faults {
		desc := f.Reason()
		if more := v.FaultCount - len(v.Faults); i == len(v.Faults)-1 && more > 0 {
			desc += " (and " + strconv.Itoa(more) + " more objects of the snapshot cannot be read)"
		}
		it.Events.Items = append(it.Events.Items, VolumeStatusEvent{
			EventID:     volumeEventID(v.ID, f),
			EventType:   eventDataInconsistency,
			Description: desc,
			NotBefore:   Timestamp{f.Since},
		})
	}
	return it
}

// volumeEventID names the event of fault f of volume volID, the same in
// every answer while the fault lasts: evol- and 17 hex digits.
func volumeEventID(volID string, f cow.VolumeFault) string {
	h := sha256.Sum256([]byte(volID + "\x00" + f.Key + "\x00" + f.Since.String()))
	return "evol-" + hex.EncodeToString(h[:9])[:17]
}
