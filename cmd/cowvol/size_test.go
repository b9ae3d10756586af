package main

import "testing"

func TestParseSize(t *testing.T) {
	tests := []struct {
		in    string
		plain int64
		want  int64 // 0: error
	}{
		{"4GiB", gib, 4 << 30},
		{"512MiB", gib, 512 << 20},
		{"1TiB", gib, 1 << 40},
		{"64KiB", 1, 64 << 10},
		{"4G", gib, 4 << 30},
		{"4g", gib, 4 << 30},
		{"4gib", gib, 4 << 30},
		{"512M", gib, 512 << 20},
		{"1T", gib, 1 << 40},
		{"64K", 1, 64 << 10},
		{"4096B", 1, 4096},
		{"10", gib, 10 << 30}, // plain integer: GiB, as aws
		{"4096", 1, 4096},     // plain integer: bytes for --block-size
		{"0", gib, 0},
		{"0GiB", gib, 0},
		{"", gib, 0},
		{"GiB", gib, 0},
		{"-1", gib, 0},
		{"1.5GiB", gib, 0},
		{"4GB", gib, 0},
		{"4 parsecs", gib, 0},
		{"99999999999TiB", gib, 0},
		{"99999999999999999999", gib, 0},
	}
	for _, tt := range tests {
		got, err := parseSize(tt.in, tt.plain)
		if tt.want == 0 {
			if err == nil {
				t.Errorf("parseSize(%q) = %d, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}
