package lifecycle

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// StateFile is the file, in the directory given to Open, that holds the
// policies and the scheduler's progress.
const StateFile = "lifecycle.json"

// stateVersion is the format of StateFile.
const stateVersion = 1

// runState is a schedule's progress: the scheduled time it serves (or
// last served) and the volumes it has made a snapshot of for it.
type runState struct {
	// Instant is the scheduled time.
	Instant time.Time `json:"instant"`
	// Opened is when the scheduler began serving Instant: jitter counts
	// from the later of the two, so that a run missed during downtime is
	// spread too.
	Opened time.Time `json:"opened"`
	// Done are the volumes served for Instant.
	Done []string `json:"done,omitempty"`
	// Baseline: Instant is not a scheduled time but when the schedule
	// began (created, changed or enabled); nothing is due until the
	// first scheduled time after it.
	Baseline bool `json:"baseline,omitempty"`
}

// state is everything StateFile holds.
type state struct {
	Version  int                  `json:"version"`
	Policies []*Policy            `json:"policies"`
	Runs     map[string]*runState `json:"runs"` // by runKey
}

// runKey names a schedule's progress.
func runKey(policyID, schedule string) string { return policyID + "/" + schedule }

// store keeps state in a file, replaced atomically on each change.
type store struct {
	path string
}

// load reads the state, or an empty one if the file does not exist yet.
func (s *store) load() (*state, error) {
	b, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return &state{Version: stateVersion, Runs: map[string]*runState{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lifecycle state: %w", err)
	}
	st, err := decodeState(b)
	if err != nil {
		return nil, fmt.Errorf("lifecycle state %s: %w", s.path, err)
	}
	return st, nil
}

// decodeState parses StateFile's content.
func decodeState(b []byte) (*state, error) {
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("damaged: %w", err)
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("format version %d, this daemon reads %d", st.Version, stateVersion)
	}
	if st.Runs == nil {
		st.Runs = map[string]*runState{}
	}
	for i, p := range st.Policies {
		if p == nil || !validPolicyID(p.ID) {
			return nil, fmt.Errorf("damaged: policy %d has no valid ID", i)
		}
		// As loose as any daemon may have accepted (minute intervals).
		if err := validateDetails(&p.Details, Limits{MinuteIntervals: true}); err != nil {
			return nil, fmt.Errorf("damaged: policy %s: %w", p.ID, err)
		}
	}
	for k, r := range st.Runs {
		if r == nil {
			delete(st.Runs, k)
		}
	}
	return &st, nil
}

// save writes st: a temporary file, synced, renamed over the old one,
// the directory synced.
func (s *store) save(st *state) error {
	b, err := json.MarshalIndent(st, "", " ")
	if err != nil {
		return fmt.Errorf("lifecycle state: %w", err)
	}
	tmp := s.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("lifecycle state: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, s.path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("lifecycle state: %w", err)
	}
	if d, err := os.Open(filepath.Dir(s.path)); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return fmt.Errorf("lifecycle state: syncing the directory: %w", err)
		}
	}
	return nil
}
