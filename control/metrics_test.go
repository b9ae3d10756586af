package control

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cowvol/cowvol/cow"
)

// TestMetricsAccess: /metrics answers unix socket peers with full or
// read-only access, and refuses strangers and callers not on the socket.
func TestMetricsAccess(t *testing.T) {
	env := newTestEnvWith(t, cow.Options{}, Options{})
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("cowvol_up 1\n")) })
	policy := Policy{ReadOnlyGIDs: []uint32{3000}}
	tests := []struct {
		name     string
		caller   Caller
		handler  http.Handler
		wantCode int
		wantBody string
	}{
		{"root", Caller{Unix: true, UID: 0, GID: 0}, metrics, http.StatusOK, "cowvol_up 1"},
		{"read-only group", Caller{Unix: true, UID: 1002, GID: 3000}, metrics, http.StatusOK, "cowvol_up 1"},
		{"stranger", Caller{Unix: true, UID: 65534, GID: 65534}, metrics, http.StatusForbidden, CodeUnauthorizedOperation},
		{"not on the socket", Caller{AccessKeyID: "AKIAEXAMPLE00001", KeyAccess: AccessFull}, metrics, http.StatusForbidden, CodeUnauthorizedOperation},
		{"no metrics: an API request without an Action", Caller{Unix: true, UID: 0, GID: 0}, nil, http.StatusBadRequest, CodeMissingAction},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := NewServer(env.engine, Options{Logger: quietLogger(), Policy: policy, Metrics: tt.handler})
			auth := func(r *http.Request, _ []byte) (Caller, *APIError) { return tt.caller, nil }
			r := httptest.NewRequest(http.MethodGet, metricsPath, nil)
			r = r.WithContext(context.WithValue(r.Context(), callerKey{}, callerOrErr{c: tt.caller}))
			w := httptest.NewRecorder()
			srv.handler(auth).ServeHTTP(w, r)
			if w.Code != tt.wantCode || !strings.Contains(w.Body.String(), tt.wantBody) {
				t.Errorf("GET /metrics: %d %s, want %d with %q", w.Code, w.Body, tt.wantCode, tt.wantBody)
			}
		})
	}
}
