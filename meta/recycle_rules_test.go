package meta

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// TestDecodeRecycleRule: a record written before rule locks decodes with
// no lock; one with a lock keeps it; a lock in a state the API does not
// have, or pending an unlock that never ends, is refused.
func TestDecodeRecycleRule(t *testing.T) {
	end := time.Date(2026, 12, 10, 3, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		record string
		ok     bool
		lock   *RecycleRuleLock
	}{
		{"before rule locks", `{"id":"abcdefghijk","resource_type":"EBS_SNAPSHOT","retention_value":7,"retention_unit":"DAYS","created":"2026-01-02T03:04:05Z"}`, true, nil},
		{"locked", `{"id":"abcdefghijk","lock":{"state":"locked","unlock_delay_value":7,"unlock_delay_unit":"DAYS"}}`, true,
			&RecycleRuleLock{State: RuleLocked, UnlockDelayValue: 7, UnlockDelayUnit: "DAYS"}},
		{"pending unlock", `{"id":"abcdefghijk","lock":{"state":"pending_unlock","unlock_delay_value":30,"unlock_delay_unit":"DAYS","unlock_at":"2026-12-10T03:00:00Z"}}`, true,
			&RecycleRuleLock{State: RulePendingUnlock, UnlockDelayValue: 30, UnlockDelayUnit: "DAYS", UnlockAt: end}},
		{"unknown state", `{"id":"abcdefghijk","lock":{"state":"frozen"}}`, false, nil},
		{"pending without an end", `{"id":"abcdefghijk","lock":{"state":"pending_unlock","unlock_delay_value":7}}`, false, nil},
		{"not JSON", `{"id":`, false, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := DecodeRecycleRule([]byte(tc.record))
			if (err == nil) != tc.ok {
				t.Fatalf("DecodeRecycleRule = %+v, %v; want ok %v", r, err, tc.ok)
			}
			if !tc.ok {
				return
			}
			switch {
			case tc.lock == nil && r.Lock != nil:
				t.Fatalf("lock %+v, want none", *r.Lock)
			case tc.lock != nil && (r.Lock == nil || r.Lock.State != tc.lock.State || r.Lock.UnlockDelayValue != tc.lock.UnlockDelayValue ||
				!r.Lock.UnlockAt.Equal(tc.lock.UnlockAt)):
				t.Fatalf("lock %+v, want %+v", r.Lock, *tc.lock)
			}
		})
	}
}

// FuzzDecodeRecycleRule: a rule record, whatever its bytes, decodes
// without panicking, and one that decodes encodes back to the same bytes
// after a second round (its lock included).
func FuzzDecodeRecycleRule(f *testing.F) {
	f.Add([]byte(`{"id":"abcdefghijk","resource_type":"EBS_SNAPSHOT","retention_value":7,"retention_unit":"DAYS","created":"2026-01-02T03:04:05Z"}`))
	f.Add([]byte(`{"id":"abcdefghijk","lock":{"state":"locked","unlock_delay_value":7,"unlock_delay_unit":"DAYS"}}`))
	f.Add([]byte(`{"id":"abcdefghijk","lock":{"state":"pending_unlock","unlock_delay_value":30,"unlock_delay_unit":"DAYS","unlock_at":"2026-12-10T03:00:00Z"}}`))
	f.Add([]byte(`{"lock":{"state":"unlocked","unlock_at":"not a time"}}`))
	f.Add([]byte(`{"lock":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRecycleRule(b)
		if err != nil {
			return
		}
		once, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("a decoded record does not encode: %v", err)
		}
		r2, err := DecodeRecycleRule(once)
		if err != nil {
			t.Fatalf("a re-encoded record does not decode: %v", err)
		}
		twice, err := json.Marshal(r2)
		if err != nil || !bytes.Equal(once, twice) {
			t.Fatalf("round trip changed the record:\n%s\n%s (%v)", once, twice, err)
		}
	})
}
