package control

import (
	"net/http"
	"net/http/pprof"
	"strings"

	"github.com/google/uuid"
)

// pprofPrefix is where the profiles are served when Options.Profiling is
// on: GET /debug/pprof/ on the unix socket, for callers with full access.
const pprofPrefix = "/debug/pprof/"

// profilingHandler serves net/http/pprof's handlers to unix socket peers
// with full access, and answers everyone else as the API would answer
// anyone it refuses. It never serves on TCP.
func (s *Server) profilingHandler(w http.ResponseWriter, r *http.Request) {
	caller, err := callerFrom(r.Context())
	if err != nil || !caller.Unix || s.policy.access(caller) != AccessFull {
		s.writeError(w, uuid.NewString(), errUnauthorized(caller, "profiling"))
		return
	}
	switch name := strings.TrimPrefix(r.URL.Path, pprofPrefix); name {
	case "cmdline":
		pprof.Cmdline(w, r)
	case "profile":
		pprof.Profile(w, r)
	case "symbol":
		pprof.Symbol(w, r)
	case "trace":
		pprof.Trace(w, r)
	default:
		pprof.Index(w, r) // also heap, goroutine, mutex, block, allocs by name
	}
}
