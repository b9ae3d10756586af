package control

import (
	"net/http"

	"github.com/google/uuid"
)

// metricsPath is where the Prometheus metrics are served when
// Options.Metrics is set: GET /metrics on the unix socket, for callers
// with full or read-only access.
const metricsPath = "/metrics"

// metricsHandler serves the metrics to unix socket peers with full or
// read-only access (the metrics describe, they change nothing), and
// answers everyone else as the API would answer anyone it refuses. It
// never serves on TCP, whose callers sign requests (SigV4), which a
// scraper does not: --metrics-listen is the plain HTTP way.
func (s *Server) metricsHandler(w http.ResponseWriter, r *http.Request) {
	caller, err := callerFrom(r.Context())
	if err != nil || !caller.Unix || s.policy.access(caller) == AccessNone {
		s.writeError(w, uuid.NewString(), errUnauthorized(caller, "metrics"))
		return
	}
	s.metrics.ServeHTTP(w, r)
}
