package fusefs

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// The state directory (Config.StateDir, on tmpfs: it outlives the serving
// process, not the machine) holds what a process taking over a live
// connection needs from its predecessor:
//
//	session.json   the connection: what INIT negotiated, the mount point,
//	               the number of processes that have served it
//	opens          the open file handles (openTable)
const (
	sessionFile = "session.json"
	opensFile   = "opens"
)

// session describes the FUSE connection being served.
type session struct {
	// Init is what the kernel and the first server negotiated: INIT is
	// sent once per connection, so every successor starts from it.
	Init fuse.SessionState `json:"init"`
	// Mountpoint is where the connection is mounted.
	Mountpoint string `json:"mountpoint"`
	// Incarnation counts the processes that have served the connection;
	// it is the high half of every file handle, so a successor never
	// hands out a handle the kernel already holds.
	Incarnation uint32 `json:"incarnation"`
}

func loadSession(dir string) (*session, error) {
	b, err := os.ReadFile(filepath.Join(dir, sessionFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, errNoSession
	}
	if err != nil {
		return nil, fmt.Errorf("session: %w", err)
	}
	var s session
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("session %s: %w", filepath.Join(dir, sessionFile), err)
	}
	return &s, nil
}

// save replaces the session file (written whole, then renamed).
func (s *session) save(dir string) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, sessionFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("session: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, sessionFile)); err != nil {
		return fmt.Errorf("session: %w", err)
	}
	return nil
}
