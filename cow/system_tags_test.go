package cow

import (
	"errors"
	"fmt"
	"testing"
)

func TestValidateSnapshotSystemTags(t *testing.T) {
	many := make([]Tag, MaxTags-1)
	for i := range many {
		many[i] = Tag{Key: fmt.Sprintf("k%d", i)}
	}
	dlm := []Tag{{Key: "aws:dlm:lifecycle-policy-id", Value: "policy-0123456789abcdef0"}, {Key: "aws:dlm:lifecycle-schedule-name", Value: "daily"}}
	for _, tc := range []struct {
		name string
		p    CreateSnapshotParams
		want error
	}{
		{"system tags", CreateSnapshotParams{Tags: []Tag{{Key: "team", Value: "db"}}, SystemTags: dlm}, nil},
		{"client aws: tag still refused", CreateSnapshotParams{Tags: dlm[:1]}, ErrInvalidParameter},
		{"system tag outside aws:", CreateSnapshotParams{SystemTags: []Tag{{Key: "team"}}}, ErrInvalidParameter},
		{"duplicate system tag", CreateSnapshotParams{SystemTags: []Tag{dlm[0], dlm[0]}}, ErrInvalidParameter},
		{"over the limit together", CreateSnapshotParams{Tags: many, SystemTags: dlm}, ErrTagLimitExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := validateSnapshotParams(tc.p); !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("validateSnapshotParams = %v, want %v", err, tc.want)
			}
		})
	}
}
