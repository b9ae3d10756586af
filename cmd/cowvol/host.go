package main

import (
	"context"
	"log/slog"

	"github.com/cowvol/cowvol/attach"
	"github.com/cowvol/cowvol/control"
	"github.com/cowvol/cowvol/cow"
)

// newHost makes the host the control server attaches volumes on, and
// restores the attachments the engine recorded (re-created after a reboot)
// and the modifications a stop interrupted. The FUSE connection is served
// already: restoring opens volume files. A host without a machine ID has
// no instance: AttachVolume is refused there.
func newHost(ctx context.Context, eng *cow.Engine, mount string, log *slog.Logger) control.Host {
	id, err := attach.InstanceID()
	if err != nil {
		log.Warn("attaching volumes is off", "err", err)
		return nil
	}
	h := attach.New(eng, mount, id, log)
	if err := h.Restore(ctx); err != nil {
		log.Error("restoring attachments", "err", err)
	}
	return h
}
