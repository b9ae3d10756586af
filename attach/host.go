package attach

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"sync"
	"time"

	"github.com/cowvol/cowvol/cow"
)

// Engine is what Host needs of the engine; *cow.Engine has it.
type Engine interface {
	VolumeInfo(id string) (cow.VolumeInfo, error)
	RecordAttachment(ctx context.Context, id string, a *cow.VolumeAttachment) error
	RecordedAttachments() map[string]cow.VolumeAttachment
	UnfinishedModifications() []string
	FinishVolumeModification(ctx context.Context, id string) (cow.VolumeModification, error)
}

var _ Engine = (*cow.Engine)(nil)

// Host attaches the volumes served under one FUSE mount to this host's
// loop devices.
type Host struct {
	eng        Engine
	mount      string // the FUSE mount, symbolic links resolved
	instanceID string
	log        *slog.Logger

	// mu serialises attaching and detaching, and guards the fields
	// that follow.
	mu sync.Mutex
	// firstSeen is when this process first saw a loop device set up by
	// hand (the kernel does not say when it was), by device.
	firstSeen map[string]time.Time
	// detaching: devices a forced detach let go of while still in use
	// (the kernel frees them when their last user closes them).
	detaching map[string]bool
}

// New returns the Host of the volumes under mount (resolved: the path the
// kernel records as a loop device's backing file).
func New(eng Engine, mount, instanceID string, log *slog.Logger) *Host {
	return &Host{eng: eng, mount: mount, instanceID: instanceID, log: log,
		firstSeen: map[string]time.Time{}, detaching: map[string]bool{}}
}

// InstanceID is this host's instance ID (see InstanceID).
func (h *Host) InstanceID() string { return h.instanceID }

func (h *Host) volumePath(id string) string { return filepath.Join(h.mount, id) }

// Attachments lists the volumes attached on this host, by volume ID: the
// loop devices whose backing file is a volume file under the mount (set
// up by AttachVolume or by hand), and those the engine has records of.
func (h *Host) Attachments(ctx context.Context) (map[string]cow.VolumeAttachment, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.attachmentsLocked()
}

func (h *Host) attachmentsLocked() (map[string]cow.VolumeAttachment, error) {
	devs, err := h.volumeLoops()
	if err != nil {
		return nil, err
	}
	out := h.eng.RecordedAttachments()
	h.forgetGone(devs)
	now := time.Now().UTC().Truncate(time.Second)
	for id, list := range devs {
		rec, recorded := out[id]
		d := list[0]
		for _, l := range list {
			if recorded && l.dev == rec.Device {
				d = l
			}
		}
		state := cow.AttachmentAttached
		if h.detaching[d.dev] {
			state = cow.AttachmentDetaching
		}
		if recorded && rec.Device == d.dev {
			rec.State = state
			out[id] = rec
			continue
		}
		if _, ok := h.firstSeen[d.dev]; !ok {
			h.firstSeen[d.dev] = now
		}
		out[id] = cow.VolumeAttachment{VolumeID: id, Device: d.dev, AttachTime: h.firstSeen[d.dev], Recorded: recorded, State: state}
	}
	return out, nil
}

// forgetGone drops what h remembers of loop devices that are no longer
// backed by a volume file (detached, or reused for something else).
func (h *Host) forgetGone(devs map[string][]loopDevice) {
	live := map[string]bool{}
	for _, list := range devs {
		for _, l := range list {
			live[l.dev] = true
		}
	}
	for dev := range h.detaching {
		if !live[dev] {
			delete(h.detaching, dev)
		}
	}
	for dev := range h.firstSeen {
		if !live[dev] {
			delete(h.firstSeen, dev)
		}
	}
}

// volumeLoops returns the loop devices backed by volume files, by volume
// ID, in device order.
func (h *Host) volumeLoops() (map[string][]loopDevice, error) {
	loops, err := loopDevices()
	if err != nil {
		return nil, err
	}
	out := map[string][]loopDevice{}
	for _, l := range loops {
		if filepath.Dir(l.backing) != h.mount || !cow.ValidVolumeID(filepath.Base(l.backing)) {
			continue
		}
		same, err := backedBy(l.dev, l.backing)
		if err != nil || !same {
			h.log.Debug("a loop device names a volume file it is not backed by (a mount that is gone)", "device", l.dev,
				"backing_file", l.backing, "err", err)
			continue
		}
		id := filepath.Base(l.backing)
		out[id] = append(out[id], l)
	}
	for _, list := range out {
		sort.Slice(list, func(i, j int) bool { return loopNumber(list[i].dev) < loopNumber(list[j].dev) })
	}
	return out, nil
}

var loopDeviceName = regexp.MustCompile(`^/dev/loop([0-9]{1,7})$`)

// IsLoopDevice reports whether dev names a loop device (/dev/loopN).
func IsLoopDevice(dev string) bool { return loopDeviceName.MatchString(dev) }

func loopNumber(dev string) int {
	n := 0
	for _, c := range dev[len("/dev/loop"):] {
		n = n*10 + int(c-'0')
	}
	return n
}

// Attach attaches volume id to a loop device with direct I/O and records
// it. device is /dev/loopN for that device, or any other (EC2) name for a
// free one. A volume attached already is refused (cow.ErrVolumeInUse), as
// is a loop device in use (cow.ErrDeviceInUse).
func (h *Host) Attach(ctx context.Context, id, device string) (cow.VolumeAttachment, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, err := h.eng.VolumeInfo(id); err != nil {
		return cow.VolumeAttachment{}, err
	}
	current, err := h.attachmentsLocked()
	if err != nil {
		return cow.VolumeAttachment{}, err
	}
	if a, ok := current[id]; ok {
		return cow.VolumeAttachment{}, fmt.Errorf("%w: %s is attached to %s already", cow.ErrVolumeInUse, id, a.Device)
	}
	want := ""
	if IsLoopDevice(device) {
		want = device
		if _, err := os.ReadFile(filepath.Join(sysBlock, filepath.Base(device), "loop", "backing_file")); err == nil {
			return cow.VolumeAttachment{}, fmt.Errorf("%w: %s has a backing file already", cow.ErrDeviceInUse, device)
		}
	}
	dev, err := attachLoop(h.volumePath(id), want)
	if errors.Is(err, os.ErrNotExist) && want != "" {
		return cow.VolumeAttachment{}, fmt.Errorf("%w: %s does not exist", cow.ErrDeviceInUse, want)
	}
	if err != nil {
		return cow.VolumeAttachment{}, err
	}
	a := cow.VolumeAttachment{VolumeID: id, Device: dev, AttachTime: time.Now().UTC().Truncate(time.Millisecond), Recorded: true,
		State: cow.AttachmentAttaching}
	if err := h.eng.RecordAttachment(ctx, id, &a); err != nil {
		if derr := detachLoop(dev); derr != nil {
			h.log.Error("the attachment could not be recorded, nor the device detached", "volume", id, "device", dev, "err", derr)
		}
		return cow.VolumeAttachment{}, err
	}
	delete(h.detaching, dev)
	h.log.Info("volume attached", "volume", id, "device", dev)
	return a, nil
}

// Detach detaches volume id from its loop device and drops its record. A
// device that is mounted or open is refused (cow.ErrVolumeInUse) unless
// force: then the kernel detaches it when its last user lets go of it.
func (h *Host) Detach(ctx context.Context, id string, force bool) (cow.VolumeAttachment, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	current, err := h.attachmentsLocked()
	if err != nil {
		return cow.VolumeAttachment{}, err
	}
	a, ok := current[id]
	if !ok {
		if _, err := h.eng.VolumeInfo(id); err != nil {
			return cow.VolumeAttachment{}, err
		}
		return cow.VolumeAttachment{}, fmt.Errorf("%w: %s", cow.ErrNotAttached, id)
	}
	user, err := settledUser(ctx, a.Device)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return cow.VolumeAttachment{}, err
	}
	if user != "" && !force {
		return cow.VolumeAttachment{}, fmt.Errorf("%w: %s", cow.ErrVolumeInUse, user)
	}
	if err == nil {
		opens := h.openCount(id)
		if err := detachLoop(a.Device); err != nil {
			return cow.VolumeAttachment{}, err
		}
		if user == "" {
			h.waitReleased(ctx, id, opens)
		}
	}
	if a.Recorded {
		if err := h.eng.RecordAttachment(ctx, id, nil); err != nil {
			return cow.VolumeAttachment{}, err
		}
	}
	if user != "" {
		h.detaching[a.Device] = true
	}
	delete(h.firstSeen, a.Device)
	h.log.Info("volume detached", "volume", id, "device", a.Device, "force", force, "in_use", user)
	a.State = cow.AttachmentDetaching
	return a, nil
}

// VolumeGrew has the loop devices backed by volume id see its new size:
// a stat of the volume file (whose attributes the FUSE server dropped from
// the kernel's caches) updates its size in the kernel, then each device
// re-reads it (LOOP_SET_CAPACITY).
func (h *Host) VolumeGrew(ctx context.Context, id string) error {
	path := h.volumePath(id)
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("stat %s: %w", path, err)
	}
	loops, err := h.volumeLoops()
	if err != nil {
		return err
	}
	var errs []error
	for _, l := range loops[id] {
		if err := setCapacity(l.dev); err != nil {
			errs = append(errs, err)
			continue
		}
		h.log.Info("loop device capacity refreshed", "volume", id, "device", l.dev)
	}
	return errors.Join(errs...)
}

// releaseWait bounds how long Detach waits for the kernel to close the
// volume file a detached loop device held.
const releaseWait = 5 * time.Second

func (h *Host) openCount(id string) int {
	vi, err := h.eng.VolumeInfo(id)
	if err != nil {
		return 0
	}
	return vi.OpenCount
}

// waitReleased waits (up to releaseWait) until volume id has fewer open
// handles than before: the kernel closes a detached loop device's backing
// file asynchronously, and the volume is available again only then.
func (h *Host) waitReleased(ctx context.Context, id string, before int) {
	deadline := time.Now().Add(releaseWait)
	for h.openCount(id) >= before && before > 0 && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}
