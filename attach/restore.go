package attach

import (
	"context"
	"errors"
	"slices"
)

// Restore brings the host back to what the engine recorded, at a start:
//
//   - an attachment whose loop device is still there (a restart of the
//     daemon: the kernel kept it) is kept; if the device backing the
//     volume is another than the record says (set up again by hand), the
//     record follows it;
//   - one whose loop device is gone (a reboot, or a detach by hand) is
//     re-created on a free loop device, keeping its attach time;
//   - a modification a stop interrupted is finished: the devices re-read
//     the volume's size, and the modification completes.
//
// It goes on after a failure, and returns every failure.
func (h *Host) Restore(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	loops, err := h.volumeLoops()
	if err != nil {
		return err
	}
	var errs []error
	for id, rec := range h.eng.RecordedAttachments() {
		list := loops[id]
		if slices.ContainsFunc(list, func(l loopDevice) bool { return l.dev == rec.Device }) {
			h.log.Info("attachment kept", "volume", id, "device", rec.Device)
			continue
		}
		dev := ""
		if len(list) > 0 {
			dev = list[0].dev
		} else if dev, err = attachLoop(h.volumePath(id), ""); err != nil {
			errs = append(errs, err)
			h.log.Error("cannot re-create an attachment", "volume", id, "device", rec.Device, "err", err)
			continue
		}
		old := rec.Device
		rec.Device = dev
		if err := h.eng.RecordAttachment(ctx, id, &rec); err != nil {
			errs = append(errs, err)
			continue
		}
		h.log.Info("attachment re-created", "volume", id, "device", dev, "was", old)
	}
	for _, id := range h.eng.UnfinishedModifications() {
		if err := h.VolumeGrew(ctx, id); err != nil {
			errs = append(errs, err)
		}
		if _, err := h.eng.FinishVolumeModification(ctx, id); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
