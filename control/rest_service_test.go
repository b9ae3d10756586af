package control

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestRESTServiceAdmission: each REST + JSON service answers a request
// naming none of its operations, and a body larger than it takes, with its
// own error type and message, before any operation runs.
func TestRESTServiceAdmission(t *testing.T) {
	env, _ := dlmEnv(t, Options{})
	for _, tc := range []struct {
		name, method, path string
		body               int64
		status             int
		typ, msg           string
	}{
		{"DLM route", http.MethodPut, "/policies", 0, 400, "InvalidRequestException", "No DLM operation is PUT /policies."},
		{"DLM body", http.MethodPost, "/policies", maxDLMBody + 1, 400, "InvalidRequestException", "larger than 65536 bytes"},
		{"rbin route", http.MethodGet, "/rules/a/b", 0, 400, "ValidationException", "No Recycle Bin operation is GET /rules/a/b."},
		{"rbin body", http.MethodPost, "/rules", rbinMaxBody + 1, 400, "ValidationException", "larger than 65536 bytes"},
		{"EBS route", http.MethodDelete, "/snapshots", 0, 400, "ValidationException", "No EBS operation is DELETE /snapshots."},
		{"EBS body", http.MethodPost, "/snapshots", maxEBSBody + 1, 400, "ValidationException", "larger than a block"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, "http://cowvol"+tc.path, bytes.NewReader(bytes.Repeat([]byte("x"), int(tc.body))))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := env.raw.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.status || resp.Header.Get("X-Amzn-ErrorType") != tc.typ || !strings.Contains(string(b), tc.msg) {
				t.Errorf("%d %s %s, want %d %s with %q", resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"), b, tc.status, tc.typ, tc.msg)
			}
		})
	}
}
