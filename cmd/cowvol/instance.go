package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/cowvol/cowvol/control"
	"github.com/cowvol/cowvol/cow"
)

// loopInstance is this host as an EC2 instance, for CreateSnapshots'
// InstanceSpecification: its instance ID is "i-" and the first 17 hex
// digits of SHA-256("cowvol instance " + the machine ID of
// /etc/machine-id), the same on every start and for every daemon of the
// host; its volumes are those attached to loop devices, found from each
// loop device's backing file: a volume's file under the daemon's FUSE
// mount.
type loopInstance struct {
	id    string
	mount string // the FUSE mount point, symlinks resolved
}

// machineIDFiles hold the host's machine ID (machine-id(5)); the second is
// where older systems keep it.
var machineIDFiles = []string{"/etc/machine-id", "/var/lib/dbus/machine-id"}

// newLoopInstance returns this host's instance, or nil (logged) if the
// host has no machine ID.
func newLoopInstance(mount string, log *slog.Logger) control.InstanceVolumes {
	id, err := hostInstanceID()
	if err != nil {
		log.Warn("CreateSnapshots by instance is off", "err", err)
		return nil
	}
	if real, err := filepath.EvalSymlinks(mount); err == nil {
		mount = real
	}
	return &loopInstance{id: id, mount: filepath.Clean(mount)}
}

func hostInstanceID() (string, error) {
	for _, path := range machineIDFiles {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		if id := strings.TrimSpace(string(b)); id != "" {
			sum := sha256.Sum256([]byte("cowvol instance " + id))
			return "i-" + hex.EncodeToString(sum[:9])[:17], nil
		}
	}
	return "", fmt.Errorf("this host has no machine ID (%s): it names the host's instance ID", strings.Join(machineIDFiles, ", "))
}

func (h *loopInstance) InstanceID() string { return h.id }

// AttachedVolumes lists the volumes whose files back a loop device.
func (h *loopInstance) AttachedVolumes(context.Context) ([]string, error) {
	loops, err := filepath.Glob("/sys/block/loop*/loop/backing_file")
	if err != nil {
		return nil, err
	}
	var out []string
	seen := map[string]bool{}
	for _, path := range loops {
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue // detached meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("attached volumes: %w", err)
		}
		backing := strings.TrimSuffix(string(b), "\n")
		id := filepath.Base(backing)
		if filepath.Dir(backing) == h.mount && cow.ValidVolumeID(id) && !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out, nil
}
