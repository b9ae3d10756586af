package lifecycle

import (
	"errors"
	"maps"
	"testing"
	"time"
)

// TestPolicyTagsKeptAcrossReopen: TagPolicy and UntagPolicy change only
// the policy's own tags, durably; bad tags change nothing.
func TestPolicyTagsKeptAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	clock := func() time.Time { return at("2026-01-01T10:00:00Z") }
	m, err := Open(dir, Limits{}, clock)
	if err != nil {
		t.Fatal(err)
	}
	p, err := m.Create(hourlyPolicy(2))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.TagPolicy(p.ID, map[string]string{"team": "storage", "tier": "gold"}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.UntagPolicy(p.ID, []string{"tier", "absent"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		call func() error
		want error
	}{
		{"reserved key", func() error { _, err := m.TagPolicy(p.ID, map[string]string{"aws:x": "1"}); return err }, ErrInvalidRequest},
		{"no tags", func() error { _, err := m.TagPolicy(p.ID, nil); return err }, ErrInvalidRequest},
		{"no keys", func() error { _, err := m.UntagPolicy(p.ID, nil); return err }, ErrInvalidRequest},
		{"no such policy", func() error {
			_, err := m.TagPolicy("policy-0123456789abcdef0", map[string]string{"a": "b"})
			return err
		}, ErrNotFound},
	} {
		if err := tc.call(); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	m2, err := Open(dir, Limits{}, clock)
	if err != nil {
		t.Fatal(err)
	}
	got, err := m2.Get(p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"team": "storage"}; !maps.Equal(got.Tags, want) || !got.Modified.Equal(p.Modified) ||
		len(got.Details.Schedules) != 1 {
		t.Fatalf("after reopening: tags %v (want %v), modified %s (want %s)", got.Tags, want, got.Modified, p.Modified)
	}
}
