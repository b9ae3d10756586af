package lifecycle

import (
	"errors"
	"strings"
	"testing"
)

func validDetails() PolicyDetails {
	return PolicyDetails{
		ResourceTypes: []string{ResourceTypeVolume},
		TargetTags:    []Tag{{Key: "backup", Value: "yes"}},
		Schedules: []Schedule{{
			Name:       "hourly",
			CopyTags:   true,
			TagsToAdd:  []Tag{{Key: "made-by", Value: "dlm"}},
			CreateRule: &CreateRule{Interval: 1, IntervalUnit: UnitHours, Times: []string{"03:00"}},
			RetainRule: &RetainRule{Count: 3},
		}},
	}
}

func TestValidateDetails(t *testing.T) {
	for _, tc := range []struct {
		name    string
		change  func(*PolicyDetails)
		minutes bool
		want    string // "" valid; else a part of the message
	}{
		{"valid", func(*PolicyDetails) {}, false, ""},
		{"cron hourly", func(d *PolicyDetails) {
			d.Schedules[0].CreateRule = &CreateRule{CronExpression: "cron(0 * * * ? *)"}
		}, false, ""},
		{"retain by age", func(d *PolicyDetails) { d.Schedules[0].RetainRule = &RetainRule{Interval: 2, IntervalUnit: "WEEKS"} }, false, ""},
		{"image policy", func(d *PolicyDetails) { d.PolicyType = "IMAGE_MANAGEMENT" }, false, "PolicyType"},
		{"instances", func(d *PolicyDetails) { d.ResourceTypes = []string{"INSTANCE"} }, false, "ResourceTypes"},
		{"no resource types", func(d *PolicyDetails) { d.ResourceTypes = nil }, false, "ResourceTypes"},
		{"no target tags", func(d *PolicyDetails) { d.TargetTags = nil }, false, "TargetTags"},
		{"no schedules", func(d *PolicyDetails) { d.Schedules = nil }, false, "Schedules"},
		{"five schedules", func(d *PolicyDetails) {
			for i := 0; i < 4; i++ {
				s := d.Schedules[0]
				s.Name = strings.Repeat("x", i+1)
				d.Schedules = append(d.Schedules, s)
			}
		}, false, "Schedules"},
		{"duplicate names", func(d *PolicyDetails) { d.Schedules = append(d.Schedules, d.Schedules[0]) }, false, "unique"},
		{"interval 5 hours", func(d *PolicyDetails) { d.Schedules[0].CreateRule.Interval = 5 }, false, "Interval 5"},
		{"minutes refused", func(d *PolicyDetails) {
			d.Schedules[0].CreateRule = &CreateRule{Interval: 1, IntervalUnit: UnitMinutes}
		}, false, "IntervalUnit MINUTES"},
		{"minutes in tests", func(d *PolicyDetails) {
			d.Schedules[0].CreateRule = &CreateRule{Interval: 1, IntervalUnit: UnitMinutes}
		}, true, ""},
		{"cron every 30 minutes", func(d *PolicyDetails) {
			d.Schedules[0].CreateRule = &CreateRule{CronExpression: "cron(0/30 * * * ? *)"}
		}, false, "between 1 hour and 1 year"},
		{"cron every minute in tests", func(d *PolicyDetails) {
			d.Schedules[0].CreateRule = &CreateRule{CronExpression: "cron(* * * * ? *)"}
		}, true, ""},
		{"cron and interval", func(d *PolicyDetails) { d.Schedules[0].CreateRule.CronExpression = "cron(0 * * * ? *)" }, false, "excludes"},
		{"bad cron", func(d *PolicyDetails) { d.Schedules[0].CreateRule = &CreateRule{CronExpression: "cron(0 0 L * ? *)"} }, false, "cron"},
		{"bad time", func(d *PolicyDetails) { d.Schedules[0].CreateRule.Times = []string{"24:00"} }, false, "Times"},
		{"two times", func(d *PolicyDetails) { d.Schedules[0].CreateRule.Times = []string{"01:00", "02:00"} }, false, "Times"},
		{"outpost", func(d *PolicyDetails) { d.Schedules[0].CreateRule.Location = "OUTPOST_LOCAL" }, false, "Location"},
		{"no create rule", func(d *PolicyDetails) { d.Schedules[0].CreateRule = nil }, false, "CreateRule"},
		{"count and interval", func(d *PolicyDetails) { d.Schedules[0].RetainRule.Interval = 1 }, false, "excludes"},
		{"count too big", func(d *PolicyDetails) { d.Schedules[0].RetainRule.Count = 1001 }, false, "Count"},
		{"empty retain", func(d *PolicyDetails) { d.Schedules[0].RetainRule = &RetainRule{} }, false, "RetainRule"},
		{"retain hours", func(d *PolicyDetails) { d.Schedules[0].RetainRule = &RetainRule{Interval: 1, IntervalUnit: "HOURS"} }, false, "IntervalUnit"},
		{"aws tag to add", func(d *PolicyDetails) { d.Schedules[0].TagsToAdd = []Tag{{Key: "aws:x", Value: "y"}} }, false, "reserved"},
		{"empty target key", func(d *PolicyDetails) { d.TargetTags = []Tag{{Key: "", Value: "y"}} }, false, "key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := validDetails()
			tc.change(&d)
			err := validateDetails(&d, Limits{MinuteIntervals: tc.minutes})
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrInvalidRequest) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want InvalidRequestException containing %q", err, tc.want)
			}
		})
	}
}

func TestValidateDefaults(t *testing.T) {
	d := validDetails()
	d.Schedules[0].Name = ""
	if err := validateDetails(&d, Limits{}); err != nil {
		t.Fatal(err)
	}
	if d.PolicyType != PolicyTypeEBSSnapshot || d.Schedules[0].Name != "Schedule 1" {
		t.Fatalf("defaults not filled in: %+v", d)
	}
}

func TestCreateParams(t *testing.T) {
	m, err := Open(t.TempDir(), Limits{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := validDetails()
	ok := CreateParams{Description: "nightly backups", State: StateEnabled, ExecutionRoleArn: "arn:aws:iam::111122223333:role/x", Details: &d}
	for _, tc := range []struct {
		name   string
		change func(*CreateParams)
		want   string
	}{
		{"no role", func(p *CreateParams) { p.ExecutionRoleArn = "" }, "ExecutionRoleArn"},
		{"no details", func(p *CreateParams) { p.Details = nil }, "PolicyDetails"},
		{"no description", func(p *CreateParams) { p.Description = "" }, "Description"},
		{"bad description", func(p *CreateParams) { p.Description = "a;b" }, "Description"},
		{"bad state", func(p *CreateParams) { p.State = "ERROR" }, "State"},
		{"aws: policy tag", func(p *CreateParams) { p.Tags = map[string]string{"aws:x": "y"} }, "reserved"},
	} {
		p := ok
		tc.change(&p)
		if _, err := m.Create(p); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error about %s", tc.name, err, tc.want)
		}
	}
	if n := len(m.List()); n != 0 {
		t.Fatalf("refused creates left %d policies", n)
	}
	p, err := m.Create(ok)
	if err != nil {
		t.Fatal(err)
	}
	if !validPolicyID(p.ID) {
		t.Fatalf("policy ID %q", p.ID)
	}
}
