package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestNewLogger(t *testing.T) {
	tests := []struct {
		level, format string
		wantErr       string
		check         func(t *testing.T, out string)
	}{
		{level: "info", format: "json", check: func(t *testing.T, out string) {
			var rec map[string]any
			if err := json.Unmarshal([]byte(out), &rec); err != nil {
				t.Fatalf("not one JSON object: %q: %v", out, err)
			}
			if rec["msg"] != "hello" || rec["volume"] != "vol-1" || rec["level"] != "INFO" {
				t.Errorf("record %v", rec)
			}
		}},
		{level: "info", format: "text", check: func(t *testing.T, out string) {
			if !strings.Contains(out, "level=INFO msg=hello volume=vol-1") {
				t.Errorf("text record %q", out)
			}
		}},
		{level: "warn", format: "text", check: func(t *testing.T, out string) {
			if out != "" {
				t.Errorf("info logged at level warn: %q", out)
			}
		}},
		{level: "info", format: "yaml", wantErr: `--log-format "yaml": want text or json`},
		{level: "loud", format: "text", wantErr: "--log-level"},
	}
	for _, tt := range tests {
		t.Run(tt.level+"/"+tt.format, func(t *testing.T) {
			var buf bytes.Buffer
			log, err := newLogger(&buf, tt.level, tt.format)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			log.Info("hello", "volume", "vol-1")
			tt.check(t, buf.String())
		})
	}
}
