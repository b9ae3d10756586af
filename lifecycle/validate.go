package lifecycle

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits of policies, as DLM's API reference gives them.
const (
	MaxPolicies        = 100
	maxSchedules       = 4
	maxTargetTags      = 50
	maxTagsToAdd       = 45
	maxDescriptionLen  = 500
	maxScheduleNameLen = 120
	maxRetainCount     = 1000
	maxRetainInterval  = 1000
	maxTagKeyLen       = 128
	maxTagValueLen     = 256
	maxMinuteInterval  = 24 * 60
	// MinInterval is the shortest time between two runs of a schedule
	// DLM allows (a cron's too).
	MinInterval = time.Hour
)

// Limits are what a daemon accepts beyond DLM's rules.
type Limits struct {
	// MinuteIntervals accepts IntervalUnit MINUTES and crons that fire
	// every minute: for tests only (DLM's shortest interval is an hour).
	MinuteIntervals bool
}

var (
	descriptionRE = regexp.MustCompile(`^[0-9A-Za-z _-]+$`)
	timeRE        = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]$`)
	hourIntervals = []int{1, 2, 3, 4, 6, 8, 12, 24}
	retainUnits   = []string{"DAYS", "WEEKS", "MONTHS", "YEARS"}
)

// validateDescription checks a policy's description.
func validateDescription(d string) error {
	if d == "" {
		return invalidf("Description is required.")
	}
	if utf8.RuneCountInString(d) > maxDescriptionLen || !descriptionRE.MatchString(d) {
		return invalidf("Description must be 1 to %d characters of 0-9A-Za-z, space, _ and -.", maxDescriptionLen)
	}
	return nil
}

// validateState checks a settable state.
func validateState(s string) error {
	if s != StateEnabled && s != StateDisabled {
		return invalidf("State must be ENABLED or DISABLED, not %q.", s)
	}
	return nil
}

// validateDetails checks a policy's details and fills in defaults
// (PolicyType, ResourceTypes, schedule names).
func validateDetails(d *PolicyDetails, lim Limits) error {
	if d.PolicyType == "" {
		d.PolicyType = PolicyTypeEBSSnapshot
	}
	if d.PolicyType != PolicyTypeEBSSnapshot {
		return invalidf("PolicyType %s is not supported: cowvol manages EBS snapshots only (EBS_SNAPSHOT_MANAGEMENT).", d.PolicyType)
	}
	if d.PolicyLanguage != "" && d.PolicyLanguage != "STANDARD" {
		return invalidf("PolicyLanguage %s is not supported: only STANDARD (custom) policies.", d.PolicyLanguage)
	}
	if len(d.ResourceTypes) == 0 {
		return invalidf("ResourceTypes is required: [VOLUME].")
	}
	for _, t := range d.ResourceTypes {
		if t != ResourceTypeVolume {
			return invalidf("ResourceTypes %s is not supported: cowvol has volumes only (VOLUME).", t)
		}
	}
	for _, l := range d.ResourceLocations {
		if l != "CLOUD" {
			return invalidf("ResourceLocations %s is not supported: only CLOUD.", l)
		}
	}
	if n := len(d.TargetTags); n < 1 || n > maxTargetTags {
		return invalidf("TargetTags must have 1 to %d tags.", maxTargetTags)
	}
	if err := validateTags("TargetTags", d.TargetTags, false); err != nil {
		return err
	}
	if n := len(d.Schedules); n < 1 || n > maxSchedules {
		return invalidf("Schedules must have 1 to %d schedules.", maxSchedules)
	}
	var names []string
	for i := range d.Schedules {
		s := &d.Schedules[i]
		if s.Name == "" {
			s.Name = fmt.Sprintf("Schedule %d", i+1)
		}
		if slices.Contains(names, s.Name) {
			return invalidf("Schedule names must be unique: %q appears twice.", s.Name)
		}
		names = append(names, s.Name)
		if err := validateSchedule(s, lim); err != nil {
			return err
		}
	}
	return nil
}

// validateSchedule checks one schedule.
func validateSchedule(s *Schedule, lim Limits) error {
	if utf8.RuneCountInString(s.Name) > maxScheduleNameLen {
		return invalidf("Schedule name %q is longer than %d characters.", s.Name, maxScheduleNameLen)
	}
	if len(s.TagsToAdd) > maxTagsToAdd {
		return invalidf("Schedule %q: TagsToAdd has more than %d tags.", s.Name, maxTagsToAdd)
	}
	if err := validateTags("TagsToAdd", s.TagsToAdd, true); err != nil {
		return err
	}
	if s.CreateRule == nil {
		return invalidf("Schedule %q: CreateRule is required.", s.Name)
	}
	if err := validateCreateRule(s.CreateRule, lim); err != nil {
		return fmt.Errorf("schedule %q: %w", s.Name, err)
	}
	if s.RetainRule != nil {
		if err := validateRetainRule(s.RetainRule); err != nil {
			return fmt.Errorf("schedule %q: %w", s.Name, err)
		}
	}
	return nil
}

// validateTags checks tag keys and values; reserved refuses keys
// beginning with aws: (tags the policy adds to snapshots).
func validateTags(field string, tags []Tag, reserved bool) error {
	seen := map[string]bool{}
	for _, t := range tags {
		switch {
		case t.Key == "" || utf8.RuneCountInString(t.Key) > maxTagKeyLen:
			return invalidf("%s: a tag key must be 1 to %d characters.", field, maxTagKeyLen)
		case utf8.RuneCountInString(t.Value) > maxTagValueLen:
			return invalidf("%s: the value of tag %q is longer than %d characters.", field, t.Key, maxTagValueLen)
		case reserved && strings.HasPrefix(strings.ToLower(t.Key), "aws:"):
			return invalidf("%s: tag keys starting with aws: are reserved (%q).", field, t.Key)
		case reserved && seen[t.Key]:
			return invalidf("%s: duplicate tag key %q.", field, t.Key)
		}
		seen[t.Key] = true
	}
	return nil
}

// validateCreateRule checks when a schedule runs.
func validateCreateRule(r *CreateRule, lim Limits) error {
	if r.Location != "" && r.Location != LocationCloud {
		return invalidf("CreateRule Location %s is not supported: only CLOUD.", r.Location)
	}
	if r.CronExpression != "" {
		if r.Interval != 0 || r.IntervalUnit != "" || len(r.Times) > 0 {
			return invalidf("CreateRule: CronExpression excludes Interval, IntervalUnit and Times.")
		}
		c, err := parseCron(r.CronExpression)
		if err != nil {
			return invalidf("CreateRule: %v.", err)
		}
		if gap := c.minGap(time.Now()); !lim.MinuteIntervals && gap < MinInterval {
			return invalidf("CreateRule: the schedule interval of %s must be between 1 hour and 1 year (it fires %s apart).",
				r.CronExpression, gap)
		}
		return nil
	}
	switch {
	case r.Interval == 0 || r.IntervalUnit == "":
		return invalidf("CreateRule: either CronExpression, or Interval and IntervalUnit, is required.")
	case r.IntervalUnit == UnitHours && !slices.Contains(hourIntervals, r.Interval):
		return invalidf("CreateRule: Interval %d is not supported: 1, 2, 3, 4, 6, 8, 12 or 24 hours.", r.Interval)
	case r.IntervalUnit == UnitMinutes && lim.MinuteIntervals && (r.Interval < 1 || r.Interval > maxMinuteInterval):
		return invalidf("CreateRule: Interval %d MINUTES is out of range (1 to %d).", r.Interval, maxMinuteInterval)
	case r.IntervalUnit != UnitHours && (r.IntervalUnit != UnitMinutes || !lim.MinuteIntervals):
		return invalidf("CreateRule: IntervalUnit %s is not supported: HOURS.", r.IntervalUnit)
	case len(r.Times) > 1:
		return invalidf("CreateRule: Times takes one start time (hh:mm, UTC).")
	case len(r.Times) == 1 && !timeRE.MatchString(r.Times[0]):
		return invalidf("CreateRule: Times %q is not a time hh:mm (UTC).", r.Times[0])
	}
	return nil
}

// validateRetainRule checks what a schedule keeps.
func validateRetainRule(r *RetainRule) error {
	switch {
	case r.Count != 0 && (r.Interval != 0 || r.IntervalUnit != ""):
		return invalidf("RetainRule: Count excludes Interval and IntervalUnit.")
	case r.Count != 0 && (r.Count < 1 || r.Count > maxRetainCount):
		return invalidf("RetainRule: Count must be 1 to %d.", maxRetainCount)
	case r.Count != 0:
		return nil
	case r.Interval < 1 || r.Interval > maxRetainInterval:
		return invalidf("RetainRule: either Count (1 to %d) or Interval (1 to %d) with IntervalUnit is required.",
			maxRetainCount, maxRetainInterval)
	case !slices.Contains(retainUnits, r.IntervalUnit):
		return invalidf("RetainRule: IntervalUnit %q is not one of DAYS, WEEKS, MONTHS, YEARS.", r.IntervalUnit)
	}
	return nil
}

// maxPolicyTags bounds a policy's own tags (DLM's TagMap).
const maxPolicyTags = 200

// validatePolicyTags checks a policy's own tags.
func validatePolicyTags(tags map[string]string) error {
	if len(tags) > maxPolicyTags {
		return invalidf("Tags: at most %d tags.", maxPolicyTags)
	}
	list := make([]Tag, 0, len(tags))
	for k, v := range tags {
		list = append(list, Tag{Key: k, Value: v})
	}
	return validateTags("Tags", list, true)
}
