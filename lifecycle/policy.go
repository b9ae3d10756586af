package lifecycle

import (
	"time"
)

// The DLM API's names for what cowvol supports.
const (
	PolicyTypeEBSSnapshot = "EBS_SNAPSHOT_MANAGEMENT"
	ResourceTypeVolume    = "VOLUME"
	StateEnabled          = "ENABLED"
	StateDisabled         = "DISABLED"
	UnitHours             = "HOURS"
	// UnitMinutes is not DLM's: only a daemon started with the test-only
	// minute-interval flag accepts it (Limits.MinuteIntervals).
	UnitMinutes   = "MINUTES"
	LocationCloud = "CLOUD"
	// Tags every snapshot a policy makes carries.
	TagPolicyID     = "aws:dlm:lifecycle-policy-id"
	TagScheduleName = "aws:dlm:lifecycle-schedule-name"
)

// Tag is a key and a value, as the DLM API has them.
type Tag struct {
	Key   string `json:"Key"`
	Value string `json:"Value"`
}

// CreateRule says when a schedule creates snapshots: every Interval
// IntervalUnit from Times[0] (UTC, hh:mm; 00:00 when absent), or at the
// times of CronExpression.
type CreateRule struct {
	Interval       int      `json:"Interval,omitempty"`
	IntervalUnit   string   `json:"IntervalUnit,omitempty"`
	Times          []string `json:"Times,omitempty"`
	CronExpression string   `json:"CronExpression,omitempty"`
	Location       string   `json:"Location,omitempty"`
}

// RetainRule says which of a schedule's snapshots are kept: the newest
// Count, or those younger than Interval IntervalUnit (DAYS, WEEKS,
// MONTHS, YEARS).
type RetainRule struct {
	Count        int    `json:"Count,omitempty"`
	Interval     int    `json:"Interval,omitempty"`
	IntervalUnit string `json:"IntervalUnit,omitempty"`
}

// Schedule is one of a policy's schedules.
type Schedule struct {
	Name       string      `json:"Name,omitempty"`
	CopyTags   bool        `json:"CopyTags,omitempty"`
	TagsToAdd  []Tag       `json:"TagsToAdd,omitempty"`
	CreateRule *CreateRule `json:"CreateRule,omitempty"`
	RetainRule *RetainRule `json:"RetainRule,omitempty"`
}

// PolicyDetails are what a policy does.
type PolicyDetails struct {
	PolicyType        string     `json:"PolicyType,omitempty"`
	PolicyLanguage    string     `json:"PolicyLanguage,omitempty"`
	ResourceTypes     []string   `json:"ResourceTypes,omitempty"`
	ResourceLocations []string   `json:"ResourceLocations,omitempty"`
	TargetTags        []Tag      `json:"TargetTags,omitempty"`
	Schedules         []Schedule `json:"Schedules,omitempty"`
}

// Policy is a lifecycle policy as stored.
type Policy struct {
	ID               string            `json:"PolicyId"`
	Description      string            `json:"Description"`
	State            string            `json:"State"`
	ExecutionRoleArn string            `json:"ExecutionRoleArn"`
	Details          PolicyDetails     `json:"PolicyDetails"`
	Tags             map[string]string `json:"Tags,omitempty"`
	Created          time.Time         `json:"DateCreated"`
	Modified         time.Time         `json:"DateModified"`
}

// targets reports whether a resource with tags is one of p's targets:
// it carries at least one of p's TargetTags (key and value), as DLM
// targets the resources that have any of them.
func (p *Policy) targets(tags map[string]string) bool {
	for _, t := range p.Details.TargetTags {
		if v, ok := tags[t.Key]; ok && v == t.Value {
			return true
		}
	}
	return false
}
