package control

import "testing"

func TestWildcardMatch(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"", "", true},
		{"", "a", false},
		{"*", "", true},
		{"*", "anything", true},
		{"available", "available", true},
		{"available", "Available", false},
		{"avail*", "available", true},
		{"*able", "available", true},
		{"a*a*e", "available", true},
		{"a*x", "available", false},
		{"?", "a", true},
		{"?", "", false},
		{"??", "é1", true}, // runes, not bytes
		{"vol-????", "vol-abcd", true},
		{"vol-????", "vol-abc", false},
		{"**a**", "bab", true},
		{`\*`, "*", true},
		{`\*`, "a", false},
		{`a\?`, "a?", true},
		{`a\?`, "ab", false},
		{`\\`, `\`, true},
		{`a\`, `a\`, true}, // trailing backslash is literal
		{"*a*b*c*", "xxaxxbxxcxx", true},
		{"*a*b*c*", "xxaxxcxxbxx", false},
	}
	for _, tt := range tests {
		if got := wildcardMatch(tt.pattern, tt.s); got != tt.want {
			t.Errorf("wildcardMatch(%q, %q) = %v, want %v", tt.pattern, tt.s, got, tt.want)
		}
	}
}

func TestVolumeMatches(t *testing.T) {
	v := Volume{
		VolumeID: "vol-0123456789abcdef0", Size: 4, Status: "available", VolumeType: "standard",
		AvailabilityZone: "local", Tags: []Tag{{"env", "prod"}, {"team", "db"}},
	}
	tests := []struct {
		name    string
		filters []Filter
		want    bool
	}{
		{"none", nil, true},
		{"status", []Filter{{"status", []string{"available"}}}, true},
		{"status or", []Filter{{"status", []string{"in-use", "available"}}}, true},
		{"status miss", []Filter{{"status", []string{"in-use"}}}, false},
		{"and", []Filter{{"status", []string{"available"}}, {"size", []string{"5"}}}, false},
		{"size", []Filter{{"size", []string{"4"}}}, true},
		{"volume-id wildcard", []Filter{{"volume-id", []string{"vol-0123*"}}}, true},
		{"encrypted", []Filter{{"encrypted", []string{"false"}}}, true},
		{"snapshot-id empty", []Filter{{"snapshot-id", []string{"snap-*"}}}, false},
		{"tag", []Filter{{"tag:env", []string{"prod"}}}, true},
		{"tag wildcard", []Filter{{"tag:env", []string{"pr*"}}}, true},
		{"tag other value", []Filter{{"tag:env", []string{"dev"}}}, false},
		{"tag absent", []Filter{{"tag:owner", []string{"*"}}}, false},
		{"tag key is exact", []Filter{{"tag:en*", []string{"*"}}}, false},
		{"tag-key", []Filter{{"tag-key", []string{"te*"}}}, true},
		{"tag-key miss", []Filter{{"tag-key", []string{"owner"}}}, false},
		{"zone and type", []Filter{{"availability-zone", []string{"local"}}, {"volume-type", []string{"standard"}}}, true},
	}
	for _, tt := range tests {
		if got := volumeKind.matches(&v, tt.filters); got != tt.want {
			t.Errorf("%s: volumeMatches = %v, want %v", tt.name, got, tt.want)
		}
	}
	for name, want := range map[string]bool{
		"status": true, "tag:x": true, "tag-key": true, "create-time": true,
		"tag:": false, "bogus": false, "attachment.status": true, "attachment.bogus": false, "Status": false,
	} {
		if got := volumeKind.validFilter(name); got != want {
			t.Errorf("validVolumeFilter(%q) = %v, want %v", name, got, want)
		}
	}
}
